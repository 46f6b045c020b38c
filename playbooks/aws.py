"""The one place boto3 clients are made.

Every client uses botocore's standard retry mode and, where AWS_ENDPOINT_URL is set, talks
to that endpoint instead of AWS (the simulated account in tests and `make run`).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from django.conf import settings

RETRIES = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
)


def client(service: str, region: str | None = None) -> Any:
    """A client with the deployment's own credentials (the environment's, or its role)."""
    session = boto3.session.Session()
    return session.client(
        service,
        region_name=region or settings.AWS_DEFAULT_REGION,
        endpoint_url=settings.AWS_ENDPOINT_URL or None,
        config=RETRIES,
    )
