"""Who or what acted: carried from a request or a task into every service call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import models

from irportal import roles

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ActorKind(models.TextChoices):
    USER = "user", "User"
    INTEGRATION = "integration", "Integration"
    RULE = "rule", "Triage rule"
    PLAYBOOK = "playbook", "Playbook run"
    SYSTEM = "system", "System"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str
    user: User | None = None

    @classmethod
    def for_user(cls, user: User) -> Actor:
        kind = (
            ActorKind.INTEGRATION if roles.INTEGRATION in roles.roles_of(user) else ActorKind.USER
        )
        return cls(kind=kind, name=user.get_username(), user=user)

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(kind=ActorKind.SYSTEM, name=component)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"
