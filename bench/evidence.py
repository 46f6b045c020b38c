"""Evidence uploads: throughput into the local store and into S3 (moto), against
`sha256sum` of the same file in the same run, and the app process's peak memory.

    .venv/bin/python bench/evidence.py [--size-mib 1024]

The file goes through the app's own upload path, as a client would send it: an HTTP POST
of the raw body to /api/v1/incidents/{ref}/evidence/upload/ on gunicorn (one sync worker),
which streams it into the store, hashing on the way. The client sends from this process
on the other core. Peak memory is the gunicorn worker's high-water mark (VmHWM), Django
and all.

Targets (issue 5): at least 70% of sha256sum's throughput into the local store; peak
memory under 150 MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    DEFAULT_SERVER,
    ROOT,
    VENV_BIN,
    Server,
    app_environment,
    create_users,
    free_port,
    gunicorn,
    migrate,
    scratch_database,
    setup_django,
)

MIB = 1024 * 1024
PROBE = "/api/v1/incidents/?page_size=1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default="irportal_bench_evidence")
    parser.add_argument("--skip-s3", action="store_true", help="only the local store")
    return parser.parse_args()


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))


def time_sha256sum(path: Path) -> tuple[float, str]:
    """The best of two runs (the first also warms the page cache)."""
    best, digest = float("inf"), ""
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - started)
        digest = done.stdout.split()[0]
    return best, digest


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def upload(
    server: Server, token: str, reference: str, path: Path
) -> tuple[float, dict[str, object]]:
    size = path.stat().st_size
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600, blocksize=MIB)
    headers = {
        "Authorization": f"Token {token}",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
    }
    url = f"/api/v1/incidents/{reference}/evidence/upload/?name={path.name}&kind=disk_snapshot"
    with path.open("rb") as body:
        started = time.perf_counter()
        connection.request("POST", url, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 201:
        raise RuntimeError(f"upload answered {response.status}: {answer[:500]!r}")
    return elapsed, json.loads(answer)


def measure(
    env: dict[str, str], token: str, reference: str, path: Path, label: str
) -> tuple[float, float, str]:
    """(seconds, worker peak MiB, sha256) of one upload into the store `env` selects."""
    with gunicorn(env, 1, PROBE, token, "--timeout", "600") as server:
        (worker,) = worker_pids(server.pid)
        before = peak_memory_mib(worker)
        elapsed, item = upload(server, token, reference, path)
        peak = peak_memory_mib(worker)
    print(
        f"  {label:<12} {path.stat().st_size / MIB / elapsed:8.1f} MiB/s  "
        f"({elapsed:.2f} s)  worker peak {peak:.0f} MiB (before the upload {before:.0f} MiB)"
    )
    return elapsed, peak, str(item["sha256"])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    deadline = time.monotonic() + 30
    while True:
        try:
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="eu-west-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",  # noqa: S106  (moto takes any)
            )
            s3.create_bucket(
                Bucket="irportal-bench-evidence",
                ObjectLockEnabledForBucket=True,
                CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
            )
            return process, endpoint
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.3)


def main() -> None:
    args = parse_args()
    size = args.size_mib * MIB
    scratch = Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    try:
        source = scratch / "disk.img"
        print(f"writing {args.size_mib} MiB of random bytes to {source} ...")
        make_file(source, size)
        reference_seconds, reference_digest = time_sha256sum(source)
        reference_rate = size / MIB / reference_seconds
        print(f"sha256sum: {reference_rate:.1f} MiB/s ({reference_seconds:.2f} s)")

        with scratch_database(args.server, args.database) as database_url:
            env = app_environment(database_url)
            env["EVIDENCE_LOCAL_DIR"] = str(scratch / "store")
            env["EVIDENCE_BUCKET"] = ""
            migrate(env)
            setup_django(env)
            from cases.services import open_incident
            from irportal.actors import Actor

            token = create_users("responder")["responder"]
            incident = open_incident(Actor.system("bench"), title="Evidence bench")
            from django.contrib.auth.models import User

            from cases.models import Participant

            Participant.objects.create(
                incident=incident, user=User.objects.get(username="bench-responder")
            )
            print("upload through the app (gunicorn, 1 sync worker):")
            seconds, peak, digest = measure(env, token, incident.reference, source, "local store")
            assert digest == reference_digest, "the stored hash differs from sha256sum's"
            local_rate = size / MIB / seconds

            s3_line, s3_peak = "skipped", None
            if not args.skip_s3:
                moto, endpoint = start_moto()
                try:
                    s3_env = {
                        **env,
                        "EVIDENCE_BUCKET": "irportal-bench-evidence",
                        "EVIDENCE_BUCKET_REGION": "eu-west-1",
                        "AWS_ENDPOINT_URL": endpoint,
                        "AWS_ACCESS_KEY_ID": "bench",
                        "AWS_SECRET_ACCESS_KEY": "bench",
                    }
                    s3_seconds, s3_peak, s3_digest = measure(
                        s3_env, token, incident.reference, source, "S3 (moto)"
                    )
                    assert s3_digest == reference_digest
                    s3_line = f"{size / MIB / s3_seconds:.1f} MiB/s, worker peak {s3_peak:.0f} MiB"
                finally:
                    moto.terminate()
                    moto.wait(timeout=15)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    share = local_rate / reference_rate
    peaks = [peak] + ([] if s3_peak is None else [s3_peak])
    highest_mb = max(peaks) * MIB / 1e6
    print()
    print(f"local store: {local_rate:.1f} MiB/s = {share:.0%} of sha256sum  (target >= 70%)")
    print(
        f"peak memory of the app process: {highest_mb:.0f} MB, the higher of the local and S3 "
        f"uploads  (target < 150 MB)"
    )
    print(f"S3 (moto): {s3_line}")
    print("verdict:", "met" if share >= 0.70 and highest_mb < 150 else "NOT met")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
