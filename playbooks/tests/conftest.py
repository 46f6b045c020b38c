"""Fixtures for the response engine: a registered simulated account and a way to run the
engine's tasks in the test's own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from irportal.actors import Actor
from irportal.celery import app
from playbooks.aws import forget_sessions
from playbooks.choices import Environment
from playbooks.models import CloudAccount

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "eu-west-1"
# moto launches instances from any image id; listing its images takes seconds.
IMAGE_ID = "ami-0123456789abcdef0"


@pytest.fixture
def account(aws: str) -> CloudAccount:
    """The simulated account, registered with a response role as a real one would be."""
    forget_sessions()
    return CloudAccount.objects.create(
        account_id=ACCOUNT_ID,
        name="Simulated workload account",
        environment=Environment.DEMO,
        regions=[REGION],
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/ir-portal-responder",
        external_id="ir-portal-tests",
    )


@pytest.fixture
def engine(django_capture_on_commit_callbacks: Any) -> Iterator[Callable[[], Any]]:
    """`with engine():` runs, in this process, every task the block sends after commit,
    and the tasks those send in turn, as a worker would."""
    app.conf.task_always_eager = True

    @contextmanager
    def running() -> Iterator[None]:
        with django_capture_on_commit_callbacks(execute=True):
            yield

    try:
        yield running
    finally:
        app.conf.task_always_eager = False


@pytest.fixture
def lead_actor(lead: Any) -> Actor:
    return Actor.for_user(lead)


@pytest.fixture
def responder_actor(responder: Any) -> Actor:
    return Actor.for_user(responder)
