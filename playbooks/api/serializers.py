from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty

from cases.models import Incident
from irportal import roles
from playbooks import actions, definitions
from playbooks.actions.base import Action
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun, RunStep, slug_like

# A region as AWS names them: eu-west-1, us-gov-west-1, ap-southeast-4.
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"
# A path into what a playbook's parameters are drawn from: instance.id, account_id.
CONTEXT_PATH_PATTERN = r"^\w+(\.\w+)*$"


def actor_of_row(row: PlaybookRun | ActionRun) -> dict[str, str]:
    return {"kind": row.actor_kind, "name": row.actor_name}


def visible_incidents(serializer: serializers.Serializer[Any]) -> Any:
    """Only incidents the person can see: another's answers "does not exist", like a
    reference nobody has."""
    if request := serializer.context.get("request"):
        return Incident.objects.visible_to(request.user)
    return Incident.objects.none()


# --- Accounts -----------------------------------------------------------------------------


class CloudAccountSerializer(serializers.ModelSerializer):
    regions = serializers.ListField(
        child=serializers.RegexField(
            REGION_PATTERN, error_messages={"invalid": "Not an AWS region (eu-west-1)."}
        ),
        required=False,
        help_text="Regions in use.",
    )

    class Meta:
        model = CloudAccount
        fields = [
            "id",
            "account_id",
            "name",
            "environment",
            "regions",
            "role_arn",
            "external_id",
            "is_security_account",
            "enabled",
            "notes",
            "checked_at",
            "check_ok",
            "check_message",
        ]
        read_only_fields = ["checked_at", "check_ok", "check_message"]
        extra_kwargs = {
            "external_id": {"help_text": "The role's external id; shown to leads only."}
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The response role lives in the account it acts in.
        account_id = attrs.get("account_id", getattr(self.instance, "account_id", ""))
        role = attrs.get("role_arn", getattr(self.instance, "role_arn", ""))
        if role and account_id and role.split(":")[4] != account_id:
            raise serializers.ValidationError(
                {"role_arn": f"The role is in account {role.split(':')[4]}, not {account_id}."}
            )
        return attrs

    def to_representation(self, instance: CloudAccount) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        # Not a secret, but a guard against a confused deputy: nobody else needs it.
        request = self.context.get("request")
        if request is None or not roles.is_lead(request.user):
            data.pop("external_id", None)
        return data


# --- The action library -------------------------------------------------------------------

# JSON types of input fields, most specific class first.
_INPUT_TYPES: list[tuple[type[serializers.Field[Any, Any, Any, Any]], str]] = [
    (serializers.BooleanField, "boolean"),
    (serializers.IntegerField, "integer"),
    (serializers.FloatField, "number"),
    (serializers.DecimalField, "number"),
    (serializers.MultipleChoiceField, "array"),
    (serializers.ListField, "array"),
    (serializers.ListSerializer, "array"),
    (serializers.DictField, "object"),
    (serializers.Serializer, "object"),
    (serializers.JSONField, "any"),
]


def _input_type(field: serializers.Field[Any, Any, Any, Any]) -> str:
    return next((kind for cls, kind in _INPUT_TYPES if isinstance(field, cls)), "string")


def describe_input(name: str, field: serializers.Field[Any, Any, Any, Any]) -> dict[str, Any]:
    default = field.default
    # A default worked out per request (the current user...) has no value to show.
    if default is empty or getattr(default, "requires_context", False):
        default = None
    return {
        "name": name,
        "type": _input_type(field),
        "required": field.required,
        "help_text": str(field.help_text or ""),
        "default": default() if callable(default) else default,
        "choices": list(field.choices) if isinstance(field, serializers.ChoiceField) else None,
    }


def describe_action(action: Action) -> dict[str, Any]:
    return {
        "name": action.name,
        "title": action.title,
        "target_kind": action.target_kind,
        "target_input": action.target_input,
        "requires_approval": action.requires_approval,
        "undoable": action.undoable,
        "inputs": [describe_input(n, f) for n, f in action.inputs().fields.items()],
    }


class ActionInputSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField()
    type = serializers.CharField(
        help_text="string, integer, number, boolean, array, object or any."
    )
    # The metaclass takes declared fields off the class: these do not hide Field's own.
    required = serializers.BooleanField()  # type: ignore[assignment]
    help_text = serializers.CharField()  # type: ignore[assignment]
    default = serializers.JSONField(allow_null=True, help_text="Used when the input is left out.")
    choices = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="The values allowed, if fixed."
    )


class ActionSerializer(serializers.Serializer[dict[str, Any]]):
    """A response action as the library describes it (built by `describe_action`)."""

    name = serializers.CharField()
    title = serializers.CharField()
    target_kind = serializers.CharField(
        help_text="What the action is about: instance, user, role, access_key, bucket, resource."
    )
    target_input = serializers.CharField(help_text="The input that names the target.")
    requires_approval = serializers.BooleanField(help_text="A step with it waits for a lead.")
    undoable = serializers.BooleanField()
    inputs = ActionInputSerializer(many=True)


# --- Playbooks ----------------------------------------------------------------------------


def clean_steps(value: Any) -> dict[str, Any]:
    """A definition as stored; field-level errors for each bad step."""
    if not isinstance(value, dict):
        raise serializers.ValidationError("A definition is a mapping with a list of steps.")
    return definitions.clean_definition(value)


class PlaybookSerializer(serializers.ModelSerializer):
    definition = serializers.JSONField(
        help_text="{steps: [{id, action, title?, parameters?, when?, approval?, on_failure?}]}"
    )

    class Meta:
        model = Playbook
        fields = [
            "id",
            "slug",
            "version",
            "name",
            "description",
            "definition",
            "enabled",
            "builtin",
            "created_at",
            "created_by",
        ]
        read_only_fields = ["version", "builtin", "created_at", "created_by"]

    def validate_slug(self, value: str) -> str:
        if self.instance is not None:
            if value != self.instance.slug:
                raise serializers.ValidationError(
                    "A playbook keeps its slug; import it under the new one instead."
                )
        elif Playbook.objects.filter(slug=value).exists():
            raise serializers.ValidationError(
                "There is a playbook with this slug: change it, or import the new version."
            )
        return value

    def validate_definition(self, value: Any) -> dict[str, Any]:
        return clean_steps(value)


class PlaybookDocumentSerializer(serializers.Serializer[dict[str, Any]]):
    """A playbook as a YAML file says it (see `definitions.to_yaml`)."""

    slug = serializers.CharField(max_length=80, validators=[slug_like])
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    enabled = serializers.BooleanField(required=False)
    steps = serializers.ListField(child=serializers.DictField())

    def validate_steps(self, value: list[Any]) -> list[dict[str, Any]]:
        try:
            return clean_steps({"steps": value})["steps"]  # type: ignore[no-any-return]
        except serializers.ValidationError as error:
            detail = error.detail
            raise serializers.ValidationError(
                detail.get("steps", detail) if isinstance(detail, dict) else detail
            ) from None


class PlaybookImportSerializer(serializers.Serializer[dict[str, Any]]):
    yaml = serializers.CharField(help_text="The playbook's YAML document.", trim_whitespace=False)


class PlaybookRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Playbook
        fields = ["id", "slug", "version", "name"]


# --- Runs ---------------------------------------------------------------------------------


class ActionRunSerializer(serializers.ModelSerializer):
    incident: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference", read_only=True
    )
    account: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="account_id", read_only=True
    )
    actor = serializers.SerializerMethodField()
    undoable = serializers.SerializerMethodField()

    class Meta:
        model = ActionRun
        fields = [
            "id",
            "incident",
            "action",
            "target",
            "parameters",
            "dry_run",
            "account",
            "region",
            "state",
            "actor",
            "attempts",
            "changed",
            "before",
            "outputs",
            "request_ids",
            "error_code",
            "error_message",
            "undoable",
            "created_at",
            "started_at",
            "finished_at",
            "undo_requested_by",
            "undone_at",
        ]

    def get_actor(self, action_run: ActionRun) -> dict[str, str]:
        return actor_of_row(action_run)

    def get_undoable(self, action_run: ActionRun) -> bool:
        action = actions.REGISTRY.get(action_run.action)
        return bool(action and action.undoable)


class RunStepSerializer(serializers.ModelSerializer):
    inputs = serializers.JSONField(
        source="parameters", read_only=True, help_text="As resolved when the run started."
    )
    action_run = ActionRunSerializer(read_only=True, allow_null=True)

    class Meta:
        model = RunStep
        fields = [
            "key",
            "position",
            "title",
            "action",
            "inputs",
            "condition",
            "requires_approval",
            "on_failure",
            "state",
            "reason",
            "decided_by",
            "decided_at",
            "started_at",
            "finished_at",
            "action_run",
        ]


class PlaybookRunSerializer(serializers.ModelSerializer):
    incident: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="reference", read_only=True
    )
    playbook = PlaybookRefSerializer(read_only=True)
    rule: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    actor = serializers.SerializerMethodField()
    steps = RunStepSerializer(many=True, read_only=True)

    class Meta:
        model = PlaybookRun
        fields = [
            "id",
            "incident",
            "playbook",
            "status",
            "dry_run",
            "actor",
            "rule",
            "inputs",
            "context",
            "started_at",
            "finished_at",
            "cancelled_by",
            "steps",
        ]

    def get_actor(self, run: PlaybookRun) -> dict[str, str]:
        return actor_of_row(run)


class StartRunSerializer(serializers.Serializer[dict[str, Any]]):
    incident = serializers.SlugRelatedField(
        slug_field="reference", queryset=Incident.objects.none(), help_text="e.g. IR-2026-0042"
    )
    playbook = serializers.CharField(
        help_text="A slug (its newest enabled version) or the id of one version."
    )
    dry_run = serializers.BooleanField(default=False, help_text="Record, call no AWS.")
    inputs = serializers.DictField(
        required=False,
        default=dict,
        help_text='Values the incident lacks, by path: {"instance.id": "i-0abc"}.',
    )

    def get_fields(self) -> Any:
        fields = super().get_fields()
        fields["incident"].queryset = visible_incidents(self)  # type: ignore[attr-defined]
        return fields

    def validate_playbook(self, value: str) -> Playbook:
        versions = Playbook.objects.filter(slug=value)
        if versions.exists():
            newest = versions.filter(enabled=True).order_by("-version").first()
            if newest is None:
                raise serializers.ValidationError(f"Every version of {value} is disabled.")
            return newest
        chosen = Playbook.objects.filter(pk=value).first() if value.isdigit() else None
        if chosen is None:
            raise serializers.ValidationError(f"No playbook has the slug or id {value!r}.")
        return chosen

    def validate_inputs(self, value: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(path for path in value if not re.fullmatch(CONTEXT_PATH_PATTERN, path))
        if bad:
            raise serializers.ValidationError(f"Not a path like instance.id: {', '.join(bad)}.")
        return value


class ReasonSerializer(serializers.Serializer[dict[str, Any]]):
    # Short enough that "rejected by <name>: <reason>" fits a step's reason.
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=300)


class RequestActionSerializer(serializers.Serializer[dict[str, Any]]):
    incident = serializers.SlugRelatedField(
        slug_field="reference", queryset=Incident.objects.none(), help_text="e.g. IR-2026-0042"
    )
    action = serializers.CharField(max_length=64, help_text="A name from /actions/.")
    parameters = serializers.DictField(help_text="The action's inputs, account_id and region.")
    dry_run = serializers.BooleanField(default=False, help_text="Record, call no AWS.")

    def get_fields(self) -> Any:
        fields = super().get_fields()
        fields["incident"].queryset = visible_incidents(self)  # type: ignore[attr-defined]
        return fields

    def validate_action(self, value: str) -> str:
        try:
            return actions.get(value).name
        except KeyError as error:
            raise serializers.ValidationError(str(error.args[0])) from None
