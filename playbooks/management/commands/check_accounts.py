"""Prepared access, checked by hand: can IR Portal still get into every enabled account?"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from playbooks.accounts import check_all


class Command(BaseCommand):
    help = (
        "Assume the response role of every enabled account and ask STS who it is. One line "
        "per failing account on stderr; exits 1 if any fails."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        checked = check_all()
        failing = [account for account in checked if not account.check_ok]
        for account in failing:
            self.stderr.write(f"{account}: {account.check_message}")
        self.stdout.write(
            f"{len(checked) - len(failing)} of {len(checked)} accounts reachable"
            + (f"; failing: {', '.join(a.account_id for a in failing)}" if failing else "")
        )
        if failing:
            # Not CommandError: it would add a line of its own to stderr.
            raise SystemExit(1)
