"""The one place boto3 sessions and clients are made.

Every client uses botocore's standard retry mode (throttling and transient errors are
retried with backoff) and, where AWS_ENDPOINT_URL is set, talks to that endpoint instead of
AWS: the simulated account in tests and `make run`.

Response actions act in an account through `session_for`: STS AssumeRole into the
account's response role, with a session name that names the incident and who asked, so
the account's own CloudTrail says why IR Portal was there. Credentials live only in memory,
in a bounded cache that lets them go before they expire.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from django.conf import settings

if TYPE_CHECKING:
    from playbooks.models import CloudAccount

# Attempts at one request, the first included; botocore's standard mode backs off between
# them (with jitter, at most 20 s) on throttling and transient errors.
MAX_ATTEMPTS = 6
RETRIES = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=5,
    read_timeout=30,
)

# Temporary credentials are reused until this long before they expire.
_REFRESH_MARGIN_SECONDS = 300
_SESSION_SECONDS = 3600
# Sessions kept per worker, one per account, incident and asker: more than an hour of a busy
# response needs. Past it, the least recently used is dropped and assumed again when asked for.
_CACHED_SESSIONS = 256


class Credentials:
    """Clients with one set of credentials, made from one shared boto3 session: a new
    session per action would load and parse every service's model again (~0.15 s per
    client). boto3 sessions are not thread-safe, hence the lock around making a client;
    the clients themselves are."""

    _shared: boto3.session.Session | None = None
    _lock = threading.Lock()

    def __init__(self, credentials: dict[str, Any] | None = None) -> None:
        self.credentials = credentials or {}

    def client(self, service: str, **options: Any) -> Any:
        with Credentials._lock:
            if Credentials._shared is None:
                Credentials._shared = boto3.session.Session()
            return Credentials._shared.client(service, **self.credentials, **options)


_deployment = Credentials()


def client(service: str, region: str | None = None) -> Any:
    """A client with the deployment's own credentials (the environment's, or its role)."""
    return session_client(_deployment, service, region)


def session_client(session: Credentials, service: str, region: str | None) -> Any:
    """A client from a session `session_for` gave, with the same retries and endpoint."""
    return session.client(
        service,
        region_name=region or settings.AWS_DEFAULT_REGION,
        endpoint_url=settings.AWS_ENDPOINT_URL or None,
        config=RETRIES,
    )


def session_name(incident_reference: str, asked_by: str) -> str:
    """`IR-2026-0042.alice`: what CloudTrail shows as the assumed role's session."""
    name = re.sub(r"[^\w+=,.@-]", "-", f"{incident_reference}.{asked_by}")
    return name[:64]


@dataclass(frozen=True)
class _Cached:
    credentials: dict[str, Any]
    expires_at: float

    def stale(self) -> bool:
        return self.expires_at - _REFRESH_MARGIN_SECONDS < time.time()


_cache: OrderedDict[tuple[str, str, str], _Cached] = OrderedDict()
_cache_lock = threading.Lock()


def session_for(account: CloudAccount, name: str) -> Credentials:
    """A session in `account`: its response role assumed under `name`, or the deployment's
    own credentials for an account registered without a role."""
    if not account.role_arn:
        return _deployment
    key = (account.role_arn, account.external_id, name)
    cached = _reuse(key)
    if cached is None:
        request: dict[str, Any] = {
            "RoleArn": account.role_arn,
            "RoleSessionName": name,
            "DurationSeconds": _SESSION_SECONDS,
        }
        if account.external_id:
            request["ExternalId"] = account.external_id
        response = client("sts").assume_role(**request)
        credentials = response["Credentials"]
        cached = _Cached(credentials, credentials["Expiration"].timestamp())
        _keep(key, cached)
    return Credentials(
        {
            "aws_access_key_id": cached.credentials["AccessKeyId"],
            "aws_secret_access_key": cached.credentials["SecretAccessKey"],
            "aws_session_token": cached.credentials["SessionToken"],
        }
    )


def _reuse(key: tuple[str, str, str]) -> _Cached | None:
    """The cached credentials for `key` while they are not near expiry."""
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None or cached.stale():
            return None
        _cache.move_to_end(key)
        return cached


def _keep(key: tuple[str, str, str], cached: _Cached) -> None:
    """Cache `cached`, dropping credentials near expiry and, past the bound, the least
    recently used. The scan is over at most _CACHED_SESSIONS entries, once per AssumeRole."""
    with _cache_lock:
        _cache[key] = cached
        _cache.move_to_end(key)
        for old in [k for k, kept in _cache.items() if kept.stale()]:
            del _cache[old]
        while len(_cache) > _CACHED_SESSIONS:
            _cache.popitem(last=False)


def forget_sessions() -> None:
    """Drop cached credentials (tests that reset the simulated account)."""
    with _cache_lock:
        _cache.clear()


class AwsContext:
    """What an action acts with: clients in the target's account and region, which note
    every AWS request id they see, and the incident and action run it acts for (to tag
    what it creates, and to find what an earlier attempt created)."""

    def __init__(
        self,
        session: Credentials,
        region: str,
        *,
        incident_reference: str,
        action_run_id: int | None = None,
    ) -> None:
        self._session = session
        self.region = region
        self.incident_reference = incident_reference
        self.action_run_id = action_run_id
        # What an earlier attempt of this action run saw before it acted, when there was
        # one: actions take their `before` (and whether they changed anything) from it.
        self.first_seen: dict[str, Any] | None = None
        # The role IR Portal itself acts through in this account: no action may lock it out.
        self.response_role = ""
        self.request_ids: list[str] = []
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        """A client for `service` (cached per context)."""
        if service not in self._clients:
            made = session_client(self._session, service, self.region)
            made.meta.events.register("after-call", self._note_request_id)
            self._clients[service] = made
        return self._clients[service]

    def _note_request_id(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        request_id = ((parsed or {}).get("ResponseMetadata") or {}).get("RequestId")
        if request_id:
            self.request_ids.append(request_id)
