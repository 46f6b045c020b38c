"""The production shape in docker-compose.yml, read as data (no Docker engine runs here)."""

from pathlib import Path

import yaml

from irportal.celery import app

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_it_runs_the_production_shape():
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(SERVICES)


def test_long_running_services_have_health_checks():
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in SERVICES[name], name


def test_state_lives_in_named_volumes():
    assert {"postgres-data", "redis-data"} <= set(COMPOSE["volumes"])


def test_the_app_uses_postgresql_and_redis_and_requires_a_secret_key():
    environment = SERVICES["web"]["environment"]

    assert environment["DATABASE_URL"].startswith("postgres://")
    assert environment["REDIS_URL"].startswith("redis://")
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_worker_and_beat_run_this_celery_app():
    for name in ("worker", "beat"):
        command = SERVICES[name]["command"]
        assert command[:3] == ["celery", "-A", app.main], name


def test_web_waits_for_migrations():
    assert SERVICES["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
