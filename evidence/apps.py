from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    """Evidence items, their stores, custody and integrity."""

    name = "evidence"
