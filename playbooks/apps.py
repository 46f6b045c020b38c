from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class PlaybooksConfig(AppConfig):
    """Cloud accounts, the response action library, playbooks and their runs."""

    name = "playbooks"

    def ready(self) -> None:
        import_module("playbooks.actions")  # registers the built-in actions
        for module in settings.PLAYBOOK_ACTION_MODULES:
            import_module(module)
