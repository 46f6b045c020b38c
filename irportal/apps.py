from django.apps import AppConfig


class IrportalConfig(AppConfig):
    """Cross-cutting pieces: roles (as groups), actors, API plumbing."""

    name = "irportal"
    verbose_name = "IR Portal"

    def ready(self) -> None:
        from irportal import signals  # noqa: F401 - connects the receivers
