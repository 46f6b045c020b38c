from importlib import import_module

from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    """Evidence items, their stores, custody and integrity."""

    name = "evidence"

    def ready(self) -> None:
        import_module("evidence.actions")  # registers the collection actions for playbooks
