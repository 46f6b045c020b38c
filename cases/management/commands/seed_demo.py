import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from cases import services
from cases.choices import (
    Audience,
    Category,
    EntryKind,
    ObjectiveKind,
    ObjectiveStatus,
    ParticipantRole,
    Resolution,
    Severity,
    Status,
)
from cases.models import AffectedResource, Incident, Objective, Participant, Task
from irportal import roles
from irportal.actors import Actor

User = get_user_model()

# username: (role, is_staff, is_superuser)
DEMO_USERS = {
    "admin": (None, True, True),
    "alice": (roles.LEAD, True, False),
    "bob": (roles.RESPONDER, True, False),
    "carol": (roles.LEADERSHIP, True, False),
    "dave": (roles.RESPONDER, False, False),
    "ingest": (roles.INTEGRATION, False, False),
}
DEMO_ACCOUNT = "111122223333"


class Command(BaseCommand):
    help = "Create demo users and incidents (once) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        passwords = self._passwords()
        users = {name: self._user(name, passwords[name]) for name in DEMO_USERS}
        if Incident.objects.filter(created_by=users["alice"]).exists():
            self.stderr.write("Demo incidents exist already; left as they are.")
        else:
            with transaction.atomic():
                self._incidents(users)

        self.stdout.write("Demo logins (http://127.0.0.1:8000/):")
        for name, (role, _, superuser) in DEMO_USERS.items():
            what = "superuser" if superuser else role
            self.stdout.write(f"  {name:<8} {passwords[name]:<24} {what}")

    def _passwords(self) -> dict[str, str]:
        """Generated once and kept under var/, so every run prints the same logins."""
        path = Path(settings.VAR_DIR) / "demo-logins.json"
        stored = json.loads(path.read_text()) if path.exists() else {}
        for name in DEMO_USERS:
            stored.setdefault(name, secrets.token_urlsafe(12))
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
        return stored

    def _user(self, name: str, password: str) -> Any:
        role, staff, superuser = DEMO_USERS[name]
        user, _ = User.objects.get_or_create(username=name)
        user.is_staff, user.is_superuser = staff, superuser
        user.email = f"{name}@example.com"
        user.set_password(password)
        user.save()
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    def _incidents(self, users: dict[str, Any]) -> None:
        alice, bob, dave = (Actor.for_user(users[n]) for n in ("alice", "bob", "dave"))
        ingest = Actor.for_user(users["ingest"])
        now = timezone.now()

        mining = services.open_incident(
            ingest,
            title="Cryptomining from web-3 (i-0a1b2c3d4e5f67890)",
            summary="GuardDuty reports CryptoCurrency:EC2/BitcoinTool.B!DNS from a web node.",
            severity=Severity.SEV2,
            category=Category.MALWARE,
            detected_at=now - timedelta(hours=5),
            reported_at=now - timedelta(hours=4, minutes=50),
        )
        self._part(
            ingest,
            AffectedResource(
                incident=mining,
                account_id=DEMO_ACCOUNT,
                region="eu-west-1",
                identifier=f"arn:aws:ec2:eu-west-1:{DEMO_ACCOUNT}:instance/i-0a1b2c3d4e5f67890",
                resource_type="AWS::EC2::Instance",
                tags={"Name": "web-3", "env": "production"},
            ),
        )
        self._part(
            alice, Participant(incident=mining, user=users["alice"], role=ParticipantRole.COMMANDER)
        )
        self._part(
            alice, Participant(incident=mining, user=users["bob"], role=ParticipantRole.RESPONDER)
        )
        mining.move_to(alice, Status.TRIAGED, at=now - timedelta(hours=4, minutes=40))
        contain = self._part(
            alice,
            Objective(
                incident=mining,
                kind=ObjectiveKind.CONTAIN,
                owner=users["bob"],
                description="Cut web-3 off the network without losing its memory.",
                due_at=now - timedelta(hours=4),
            ),
        )
        self._part(
            alice,
            Objective(
                incident=mining,
                kind=ObjectiveKind.PRESERVE_EVIDENCE,
                owner=users["bob"],
                description="Snapshot web-3's volumes before anything is rebuilt.",
            ),
        )
        self._part(
            bob,
            Task(incident=mining, objective=contain, title="Isolate web-3", assignee=users["bob"]),
        )
        services.write_entry(
            bob, mining, EntryKind.DECISION, "Isolate rather than stop: keep memory for forensics."
        )
        mining.move_to(bob, Status.CONTAINED, at=now - timedelta(hours=4, minutes=5))
        services.change(bob, contain, {"status": ObjectiveStatus.MET})

        keys = services.open_incident(
            alice,
            title="Access key of ci-deployer used from an unknown ASN",
            severity=Severity.SEV1,
            category=Category.COMPROMISED_CREDENTIALS,
            restricted=True,
            detected_at=now - timedelta(minutes=40),
            reported_at=now - timedelta(minutes=30),
        )
        self._part(
            alice, Participant(incident=keys, user=users["alice"], role=ParticipantRole.COMMANDER)
        )
        self._part(
            alice, Participant(incident=keys, user=users["dave"], role=ParticipantRole.RESPONDER)
        )
        self._part(
            dave, Task(incident=keys, title="Deactivate the access key", assignee=users["dave"])
        )

        services.open_incident(
            ingest,
            title="S3 bucket customer-exports made public",
            severity=Severity.SEV3,
            category=Category.DATA_EXPOSURE,
            detected_at=now - timedelta(minutes=25),
            reported_at=now - timedelta(minutes=20),
        )

        probe = services.open_incident(
            ingest,
            title="Port probe on bastion from a known scanner",
            severity=Severity.SEV4,
            category=Category.OTHER,
            detected_at=now - timedelta(days=2),
            reported_at=now - timedelta(days=2),
        )
        probe.move_to(
            bob, Status.CLOSED, resolution=Resolution.BENIGN, reason="Authorized scanner."
        )
        mining.refresh_from_db()
        services.write_entry(
            alice, mining, EntryKind.NOTE, f"Leadership briefed; see {Audience.LEADERSHIP} update."
        )

    def _part(self, actor: Actor, part: Any) -> Any:
        return services.add(actor, part)
