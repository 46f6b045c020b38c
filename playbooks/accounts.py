"""Prepared access: whether IR Portal can still get into each registered account."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.utils import timezone

from playbooks.aws import session_client, session_for, session_name
from playbooks.models import CloudAccount

logger = logging.getLogger(__name__)


def check_access(account: CloudAccount) -> CloudAccount:
    """Assume the account's response role and ask STS who we are; record the answer."""
    try:
        session = session_for(account, session_name("access-check", "ir-portal"))
        identity = session_client(session, "sts", None).get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        ok, message = False, f"{type(error).__name__}: {error}"[:500]
    else:
        seen = identity["Account"]
        ok = seen == account.account_id
        message = "ok" if ok else f"the role answers from account {seen}"
    account.checked_at, account.check_ok, account.check_message = timezone.now(), ok, message
    account.save(update_fields=["checked_at", "check_ok", "check_message"])
    logger.info("account.checked account=%s ok=%s message=%s", account.account_id, ok, message)
    return account


def check_all() -> list[CloudAccount]:
    return [check_access(account) for account in CloudAccount.objects.filter(enabled=True)]
