"""What the API benchmarks share: the app, served as deployed, on a scratch database.

It measures nothing itself. It provides:

- a PostgreSQL database of the benchmark's own, created empty, migrated, and dropped at
  the end (`scratch_database`, `migrate`);
- the environment of a production-like deployment (DEBUG off) and Django set up in the
  benchmark's process too, for users, tokens, seeding and in-process SQL counts;
- users with a role and a knox token each;
- `gunicorn irportal.wsgi -w N` on a free port, stopped however the run ends;
- HTTP on http.client, and a fixed-time load from N client threads (`run_load`);
- nearest-rank percentiles, and the CPU used by gunicorn, PostgreSQL, this client and
  everything else, read from /proc: on a 2-core machine they share the cores, so that says
  where the time goes, and whether another process disturbed the run.
"""

from __future__ import annotations

import http.client
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# --- database and app ----------------------------------------------------------------


def recreate_database(server: str, name: str, *, create: bool = True) -> None:
    """Drop the bench database, ending its sessions, and create it empty."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        database = sql.Identifier(name)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        if create:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(database))


@contextmanager
def scratch_database(server: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """An empty database for the block, dropped when it ends (unless `keep`); its URL."""
    recreate_database(server, name)
    try:
        yield f"{server}/{name}"
    finally:
        if not keep:
            close_django_connections()
            recreate_database(server, name, create=False)


def app_environment(database_url: str) -> dict[str, str]:
    """The environment of a production-like deployment on the bench database."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "irportal.settings",
    }


def manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `manage.py` with `arguments` in the app's environment; output captured."""
    command = [str(VENV_BIN / "python"), "manage.py", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def migrate(env: dict[str, str]) -> None:
    command = [str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"]
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def setup_django(env: dict[str, str]) -> None:
    """Configure Django in this process too, for users, tokens, seeding and SQL counts."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def close_django_connections() -> None:
    from django.conf import settings
    from django.db import connections

    if settings.configured:
        connections.close_all()


def create_users(*roles: str) -> dict[str, str]:
    """A user per role, `bench-<role>`, each with a knox token as `issue_token` issues
    them; the tokens by role."""
    from django.contrib.auth.models import Group, User
    from knox.models import AuthToken

    keys = {}
    for role in roles:
        user = User.objects.create_user(f"bench-{role}", password=None)
        user.groups.add(Group.objects.get(name=role))
        _, keys[role] = AuthToken.objects.create(user=user)
    return keys


# --- gunicorn ------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    pid: int
    log: Path  # gunicorn's output, Django's error reports included; gone once it stops

    def errors_logged(self, lines: int = 20) -> list[str]:
        """The last `lines` lines of the log that name an exception."""
        text = self.log.read_text(errors="replace").splitlines()
        return [line for line in text if "Error" in line or "Exception" in line][-lines:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def gunicorn(
    env: dict[str, str], workers: int, probe: str, token: str, *options: str
) -> Iterator[Server]:
    """Serve the app on a free port until the block ends, however it ends.

    It is up once GET `probe` answers 200 to `token`. `options` go to gunicorn as they are.
    """
    port = free_port()
    command = [str(VENV_BIN / "gunicorn"), "irportal.wsgi", "-w", str(workers)]
    command += ["-b", f"127.0.0.1:{port}", *options]
    with tempfile.NamedTemporaryFile("w+", prefix="bench-gunicorn-", suffix=".log") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_until_answering(process, port, probe, token, Path(log.name))
            yield Server(port, process.pid, Path(log.name))
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_answering(
    process: subprocess.Popen[bytes], port: int, probe: str, token: str, log: Path
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get_once(port, probe, token)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within 30 s:\n{log.read_text()}")


# --- HTTP ----------------------------------------------------------------------------


def connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
) -> tuple[int, bytes]:
    """One request. Gunicorn's sync workers close each connection; it reopens by itself."""
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def get_once(port: int, path: str, token: str) -> tuple[int, bytes]:
    connection = connect(port)
    try:
        return request(connection, "GET", path, token)
    finally:
        connection.close()


# --- load ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of a load, prepared before its clock starts.

    `check` reads the answer (status 0: the connection failed) after the clock stops,
    and says whether it succeeded.
    """

    method: str
    path: str
    body: bytes | None
    check: Callable[[int, bytes], bool]


@dataclass(frozen=True)
class LoadResult:
    clients: int
    elapsed: float
    latencies: list[float]  # sorted
    errors: int
    cpu: CpuUse

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.elapsed


def run_load(
    server: Server, token: str, clients: int, seconds: float, prepare: Callable[[], Call]
) -> LoadResult:
    """`clients` threads, each sending `prepare()`'s requests back to back for `seconds`.

    Only the request and its answer are timed: preparing and checking are not.
    """
    start = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = math.inf

    def client(index: int) -> None:
        connection = connect(server.port)
        start.wait()
        while time.perf_counter() < stop_at:
            call = prepare()
            began = time.perf_counter()
            try:
                status, answer = request(connection, call.method, call.path, token, call.body)
            except (OSError, http.client.HTTPException):
                status, answer = 0, b""
                connection.close()
            latencies[index].append(time.perf_counter() - began)
            if not call.check(status, answer):
                errors[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    cpu = cpu_snapshot(server.pid)
    began = time.perf_counter()
    stop_at = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = sorted(latency for per_client in latencies for latency in per_client)
    return LoadResult(clients, elapsed, every, sum(errors), cpu_since(cpu, server.pid))


# --- measuring -----------------------------------------------------------------------


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of values sorted in ascending order."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(1, math.ceil(share * len(sorted_values))) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.1f} ms"


@dataclass(frozen=True)
class CpuSnapshot:
    app: dict[int, float]  # gunicorn's processes: CPU seconds by pid
    database: dict[int, float]  # PostgreSQL's processes
    client: float  # this process
    busy: int  # clock ticks the machine's cores were busy, and in all
    total: int


@dataclass(frozen=True)
class CpuUse:
    app: float  # CPU seconds
    database: float
    client: float
    machine_busy: float  # share of all the cores' time, 0..1
    others: float  # share of the cores' time used by other processes (a disturbed run)

    def per_request(self, requests: int) -> str:
        return self.per(requests, "request")

    def per(self, count: int, unit: str, digits: int = 1) -> str:
        """CPU milliseconds per `unit`, of which `count` were done, and how busy the
        machine was."""
        app, database, client = (
            f"{x / max(count, 1) * 1000:.{digits}f}" for x in (self.app, self.database, self.client)
        )
        return (
            f"CPU/{unit}: gunicorn {app} ms, PostgreSQL {database} ms,"
            f" client {client} ms; cores {self.machine_busy:.0%} busy,"
            f" {self.others:.0%} by other processes"
        )


def process_stat(pid: str) -> tuple[str, int, float] | None:
    """A process's command name, parent pid and CPU seconds, from /proc/PID/stat.

    The seconds include those of its children that ended: PostgreSQL's backends, which
    come and go with the app's connections, are counted in the postmaster's once gone.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    command = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return command, int(fields[1]), sum(int(x) for x in fields[11:15]) / CLOCK_TICK


def cpu_snapshot(server_pid: int | None) -> CpuSnapshot:
    """CPU seconds so far; `server_pid` None when no app server runs."""
    app, database = {}, {}
    for entry in Path("/proc").iterdir():
        stat = process_stat(entry.name) if entry.name.isdigit() else None
        if stat is None:
            continue
        command, parent, seconds = stat
        if server_pid is not None and server_pid in (int(entry.name), parent):
            app[int(entry.name)] = seconds
        elif command == "postgres":
            database[int(entry.name)] = seconds
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return CpuSnapshot(app, database, time.process_time(), sum(ticks) - idle, sum(ticks))


def cpu_since(before: CpuSnapshot, server_pid: int | None) -> CpuUse:
    """CPU used since `before`, by gunicorn, PostgreSQL, this client and the rest."""
    after = cpu_snapshot(server_pid)

    def used(now: dict[int, float], then: dict[int, float]) -> float:
        return sum(seconds - then.get(pid, 0.0) for pid, seconds in now.items())

    app = used(after.app, before.app)
    database = used(after.database, before.database)
    client = after.client - before.client
    cores_time = max(1, after.total - before.total) / CLOCK_TICK
    busy = (after.busy - before.busy) / CLOCK_TICK
    others = max(0.0, busy - app - database - client)
    return CpuUse(app, database, client, busy / cores_time, others / cores_time)


# --- report --------------------------------------------------------------------------


def verdict(target: str, met: bool, measured: str) -> str:
    return f"  {'met   ' if met else 'MISSED'} {target}: {measured}"
