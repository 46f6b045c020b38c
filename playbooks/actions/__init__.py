"""The response action library. Importing this package registers the built-in actions;
other apps register theirs from their AppConfig.ready()."""

from playbooks.actions import ec2, iam, s3, tagging  # noqa: F401  (registration)
from playbooks.actions.base import REGISTRY, Action, ActionInputs, Outcome, get, register

__all__ = ["REGISTRY", "Action", "ActionInputs", "Outcome", "get", "register"]
