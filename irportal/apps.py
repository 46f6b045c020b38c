from django.apps import AppConfig


class IrportalConfig(AppConfig):
    """Cross-cutting pieces: roles (as groups), actors, API plumbing."""

    name = "irportal"
    verbose_name = "IR Portal"
