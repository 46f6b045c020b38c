from django.apps import AppConfig


class FindingsConfig(AppConfig):
    """Intake from detectors: event shapes, de-duplication, quarantine, triage rules."""

    name = "findings"
