"""The contract every response action keeps, and the registry of actions by name.

An action is a class with validated inputs and four operations:

- `describe(inputs)`: one line saying what it would do (dry runs, approval requests);
- `inspect(ctx, inputs)`: the target's current state, read-only;
- `apply(ctx, inputs, state)`: act, given what `inspect` saw, and say whether anything
  changed. It must be safe to call again on a target it already changed (a worker can die
  between AWS's answer and the commit of the result): it looks before it acts. On such a
  second attempt `ctx.first_seen` holds what the first attempt's `inspect` saw: `before`
  and `changed` are to be taken from it, so that undo restores the original state;
- `undo(ctx, inputs, done)`, where undo makes sense, from what `apply` recorded.

Actions never build boto3 clients themselves: `ctx(service)` gives clients in the target's
account and region, through the account's response role, and notes AWS request ids;
`ctx.incident_reference` and `ctx.action_run_id` are for tagging what an action creates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rest_framework import serializers

if TYPE_CHECKING:
    from playbooks.aws import AwsContext


class ActionInputs(serializers.Serializer[Any]):
    """Inputs every action takes: where the target is."""

    account_id = serializers.RegexField(
        r"^\d{12}$", help_text="The target's AWS account.", error_messages={"invalid": "12 digits."}
    )
    region = serializers.CharField(max_length=32, help_text="The target's region.")


@dataclass
class Outcome:
    """What an action did: `changed` is False when the target already was as asked."""

    changed: bool
    summary: str
    before: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


class Action:
    name: ClassVar[str]
    title: ClassVar[str]
    # Which kind of resource the action is about (instance, user, role, access_key,
    # bucket, resource): a playbook step takes the account and region from it by default.
    target_kind: ClassVar[str]
    # The input that names the target (part of the idempotency key and of every message).
    target_input: ClassVar[str]
    inputs: ClassVar[type[ActionInputs]] = ActionInputs
    requires_approval: ClassVar[bool] = False
    undoable: ClassVar[bool] = False

    def validate(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The inputs, cleaned; `serializers.ValidationError` with a message per field."""
        checked = self.inputs(data=raw)
        checked.is_valid(raise_exception=True)
        return dict(checked.validated_data)

    def target(self, inputs: dict[str, Any]) -> str:
        return str(inputs[self.target_input])

    def describe(self, inputs: dict[str, Any]) -> str:
        return f"{self.title}: {self.target(inputs)} in {inputs['account_id']}/{inputs['region']}"

    def inspect(self, ctx: AwsContext, inputs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, ctx: AwsContext, inputs: dict[str, Any], state: dict[str, Any]) -> Outcome:
        raise NotImplementedError

    def undo(self, ctx: AwsContext, inputs: dict[str, Any], done: Outcome) -> Outcome:
        raise NotImplementedError(f"{self.name} cannot be undone")


REGISTRY: dict[str, Action] = {}


def register(cls: type[Action]) -> type[Action]:
    """Class decorator: make the action available to playbooks and the API by its name."""
    if cls.name in REGISTRY and type(REGISTRY[cls.name]) is not cls:
        raise ValueError(f"two actions are named {cls.name!r}")
    REGISTRY[cls.name] = cls()
    return cls


def get(name: str) -> Action:
    """The action called `name`; KeyError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"no action named {name!r} (known: {known})") from None
