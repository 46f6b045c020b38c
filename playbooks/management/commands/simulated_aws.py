"""Serve moto as the simulated AWS account of `make run`, seeded with the demo estate."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from moto.server import ThreadedMotoServer

from playbooks.estate import seed_estate

DEFAULT_PORT = 5000


def _default_port() -> int:
    """AWS_ENDPOINT_URL's port, so that the server is where every other process looks."""
    return urlsplit(settings.AWS_ENDPOINT_URL).port or DEFAULT_PORT


class Command(BaseCommand):
    help = "Run moto's server as the simulated AWS account, seed the demo estate, and wait."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=None, help="0: any free port")
        parser.add_argument("--region", default=None, help="AWS_DEFAULT_REGION otherwise")
        parser.add_argument("--no-seed", action="store_true", help="serve an empty account")

    def handle(
        self, *args: Any, host: str, port: int | None, region: str | None, no_seed: bool, **_: Any
    ) -> None:
        port = _default_port() if port is None else port
        _refuse_taken_port(host, port)
        _use_fake_credentials()
        # One line per request would drown the other processes' output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())

        server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        server.start()
        try:
            bound_host, bound_port = server.get_host_and_port()
            endpoint = f"http://{bound_host}:{bound_port}"
            # This process seeds through the server it runs, whatever the environment said.
            settings.AWS_ENDPOINT_URL = endpoint
            self.stdout.write(f"Simulated AWS (moto) at {endpoint}")
            self.stdout.flush()
            if not no_seed:
                for line in seed_estate(region or settings.AWS_DEFAULT_REGION).lines():
                    self.stdout.write(line)
            self.stdout.write("Ready; stop with Ctrl-C.")
            self.stdout.flush()
            stop.wait()
        finally:
            server.stop()
        self.stdout.write("Simulated AWS stopped.")


def _refuse_taken_port(host: str, port: int) -> None:
    """moto's server binds in a thread and would wait forever for a port that is taken."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server will: a port left in TIME_WAIT by the last run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CommandError(
                f"cannot serve on {host}:{port} ({error.strerror}); is another simulated_aws "
                "running? Set AWS_ENDPOINT_URL to use another port."
            ) from None


def _use_fake_credentials() -> None:
    """Credentials for this process's own clients; moto accepts any. Real ones that happen to
    be in the environment are not sent even to moto."""
    os.environ["AWS_ACCESS_KEY_ID"] = "demo"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "demo"  # noqa: S105 (moto takes any; not a secret)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
