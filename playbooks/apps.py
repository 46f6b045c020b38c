from django.apps import AppConfig


class PlaybooksConfig(AppConfig):
    """Cloud accounts, the response action library, playbooks and their runs."""

    name = "playbooks"
