"""What a playbook definition may say, and how its parameters are drawn from an incident.

A definition (stored as JSON, exchanged as YAML):

    name: Compromised EC2 instance
    description: ...
    steps:
      - id: isolate
        action: ec2_isolate_instance
        title: Isolate the instance          # optional; the action's title otherwise
        parameters:
          instance_id: ${instance.id}        # drawn from the incident, see `incident_context`
        when: {exists: instance.id}          # optional condition
        approval: true                       # optional; the action's own default otherwise
        on_failure: stop                     # or continue

`${path}` alone is replaced by the value at `path` (any type); inside a longer string it is
interpolated. Conditions: {exists: path}, {equals: [path, value]}, {in: [path, [values]]},
{not: condition}, {all: [conditions]}, {any: [conditions]}.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml
from rest_framework import serializers

from playbooks import actions
from playbooks.choices import OnFailure

if TYPE_CHECKING:
    from cases.models import Incident

_REFERENCE = re.compile(r"\$\{\s*([\w.]+)\s*\}")
_OPENING = re.compile(r"\$\{")
_MISSING = object()
# The inputs that say where a target is, filled in from the incident when a step omits them.
_WHERE = ("account_id", "region")

CONDITION_OPERATORS = ("exists", "equals", "in", "not", "all", "any")


class Unresolvable(ValueError):
    """A parameter names a value the incident does not have."""


# ---------------------------------------------------------------------------------------
# Validating definitions


class StepDefinition(serializers.Serializer[dict[str, Any]]):
    id = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]{0,63}$")
    action = serializers.CharField(max_length=64)
    title = serializers.CharField(max_length=200, required=False)
    parameters = serializers.DictField(required=False, default=dict)
    when = serializers.JSONField(required=False)
    approval = serializers.BooleanField(required=False)
    on_failure = serializers.ChoiceField(OnFailure.choices, default=OnFailure.STOP)

    def validate_action(self, value: str) -> str:
        try:
            actions.get(value)
        except KeyError as error:
            raise serializers.ValidationError(str(error.args[0])) from None
        return value

    def validate_when(self, value: Any) -> Any:
        _check_condition(value)
        return value

    def validate_parameters(self, value: dict[str, Any]) -> dict[str, Any]:
        # A reference mistyped as `${instance-id}` would otherwise reach AWS as a literal.
        for text in _strings_in(value):
            for opening in _OPENING.finditer(text):
                if not _REFERENCE.match(text, opening.start()):
                    raise serializers.ValidationError(
                        f"{text!r} has a reference that is not ${{path.to.value}}"
                    )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        action = actions.get(attrs["action"])
        fields = action.inputs().fields
        unknown = sorted(set(attrs["parameters"]) - set(fields))
        if unknown:
            raise serializers.ValidationError(
                {"parameters": f"{action.name} takes no {', '.join(unknown)}"}
            )
        # Only where the target is comes from the incident by itself (see `step_inputs`).
        missing = [
            name
            for name, field in fields.items()
            if field.required and name not in attrs["parameters"] and name not in _WHERE
        ]
        if missing:
            raise serializers.ValidationError(
                {"parameters": f"{action.name} needs {', '.join(missing)}"}
            )
        return attrs


class PlaybookDefinition(serializers.Serializer[dict[str, Any]]):
    steps = StepDefinition(many=True, allow_empty=False)

    def validate_steps(self, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        for step in steps:
            if step["id"] in seen:
                raise serializers.ValidationError(f"two steps are called {step['id']!r}")
            seen.add(step["id"])
        return steps


def clean_definition(raw: Any) -> dict[str, Any]:
    """The definition as stored; `serializers.ValidationError` naming each bad field."""
    if not isinstance(raw, dict):
        raise serializers.ValidationError({"definition": "must be a mapping with steps"})
    checked = PlaybookDefinition(data=raw)
    checked.is_valid(raise_exception=True)
    steps = []
    for step in checked.validated_data["steps"]:
        steps.append({key: value for key, value in step.items() if value is not None})
    return {"steps": steps}


def _check_condition(condition: Any) -> None:
    if not isinstance(condition, dict) or len(condition) != 1:
        raise serializers.ValidationError(
            f"a condition is one of {', '.join(CONDITION_OPERATORS)} with its operand"
        )
    ((operator, operand),) = condition.items()
    if operator == "exists" and isinstance(operand, str):
        return
    if operator in ("equals", "in") and isinstance(operand, list) and len(operand) == 2:
        if not isinstance(operand[0], str):
            raise serializers.ValidationError(f"{operator}: [path, value], the path a string")
        if operator == "in" and not isinstance(operand[1], list):
            raise serializers.ValidationError("in: [path, [values]]")
        return
    if operator == "not":
        _check_condition(operand)
        return
    if operator in ("all", "any") and isinstance(operand, list):
        for part in operand:
            _check_condition(part)
        return
    raise serializers.ValidationError(f"not a valid condition: {condition!r}")


# ---------------------------------------------------------------------------------------
# YAML


def from_yaml(text: str) -> dict[str, Any]:
    """{slug?, name, description, version?, steps} from a YAML document."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise serializers.ValidationError({"yaml": str(error).splitlines()[0]}) from None
    if not isinstance(document, dict):
        raise serializers.ValidationError({"yaml": "the document must be a mapping"})
    return document


def to_yaml(slug: str, name: str, description: str, definition: dict[str, Any]) -> str:
    document = {"slug": slug, "name": name, "description": description, **definition}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


# ---------------------------------------------------------------------------------------
# Drawing parameters from an incident

# Resource types as GuardDuty/CloudTrail (AWS::…) and Security Hub (Aws…) name them, by the
# name a playbook uses for them.
_RESOURCE_KINDS = {
    "AWS::EC2::Instance": "instance",
    "AwsEc2Instance": "instance",
    "AWS::IAM::AccessKey": "access_key",
    "AwsIamAccessKey": "access_key",
    "AWS::IAM::User": "user",
    "AwsIamUser": "user",
    "AWS::IAM::Role": "role",
    "AwsIamRole": "role",
    "AWS::S3::Bucket": "bucket",
    "AwsS3Bucket": "bucket",
}


def incident_context(incident: Incident, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values a playbook's parameters may name, drawn from the incident now.

    `incident.*`; the first resource of each kind (`instance`, `access_key`, `user`,
    `role`, `bucket`), each with `id`, `name`, `arn`, `account_id`, `region`, `tags`, taken
    from the incident's affected resources first, then from its findings, newest first;
    `account_id` and `region` of the first resource. `inputs` given at start ("instance.id":
    "i-…") win over all of these.
    """
    context: dict[str, Any] = {
        "incident": {
            "reference": incident.reference,
            "title": incident.title,
            "severity": incident.severity,
            "category": incident.category,
            "status": incident.status,
        }
    }
    candidates: list[dict[str, Any]] = []
    for affected in incident.resources.all():
        candidates.append(
            {
                "type": affected.resource_type,
                "id": affected.identifier,
                "account_id": affected.account_id,
                "region": affected.region,
                "tags": affected.tags,
            }
        )
    for finding in incident.findings.order_by("-last_seen", "-id"):
        role_session = _assumed_role(finding.raw)
        for resource in finding.resources:
            entry = {**resource, "account_id": finding.account_id}
            entry["region"] = resource.get("region") or finding.region
            if role_session and resource.get("type") == "AWS::IAM::User":
                entry["type"] = "AWS::IAM::Role"  # the "user" of an assumed-role key
            candidates.append(entry)
    for resource in candidates:
        kind = _RESOURCE_KINDS.get(resource.get("type", ""))
        if kind is None or kind in context or not resource.get("id"):
            continue
        context[kind] = _describe(resource)
    first = next((r for r in candidates if r.get("account_id")), None)
    if first:
        context["account_id"] = first["account_id"]
        context["region"] = first.get("region") or ""
    for path, value in (inputs or {}).items():
        _put(context, path, value)
    return context


def _describe(resource: dict[str, Any]) -> dict[str, Any]:
    identifier = str(resource["id"])
    arn = identifier if identifier.startswith("arn:") else ""
    # An ARN's last segment is the id or name (instance/i-…, user/path/name, bucket name).
    short = re.split(r"[/:]", identifier)[-1] if arn else identifier
    return {
        "id": short,
        "name": short,
        "arn": arn,
        "account_id": resource.get("account_id") or (arn.split(":")[4] if arn else ""),
        "region": resource.get("region") or (arn.split(":")[3] if arn else ""),
        "tags": resource.get("tags") or {},
    }


def _assumed_role(raw: Any) -> bool:
    detail = raw.get("detail", raw) if isinstance(raw, dict) else {}
    details = ((detail.get("resource") or {}).get("accessKeyDetails")) or {}
    return details.get("userType") == "AssumedRole"


def _put(context: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = context
    for name in parents:
        # An input below a plain value ("region.name") replaces that value.
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    node[last] = value


def lookup(context: dict[str, Any], path: str) -> Any:
    node: Any = context
    for name in path.split("."):
        if not isinstance(node, dict) or name not in node:
            return _MISSING
        node = node[name]
    return node


def resolve(value: Any, context: dict[str, Any]) -> Any:
    """`value` with its ${path} references replaced; Unresolvable names a missing one."""
    if isinstance(value, dict):
        return {key: resolve(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    if not isinstance(value, str):
        return value
    whole = _REFERENCE.fullmatch(value.strip())
    if whole:
        found = lookup(context, whole.group(1))
        if found is _MISSING or found in ("", None):
            raise Unresolvable(whole.group(1))
        return found

    def interpolate(match: re.Match[str]) -> str:
        found = lookup(context, match.group(1))
        if found is _MISSING or found in ("", None):
            raise Unresolvable(match.group(1))
        return str(found)

    return _REFERENCE.sub(interpolate, value)


def step_inputs(step: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A step's raw inputs: its parameters resolved, with the target's account and region
    filled in from the resource the action is about when the step does not give them."""
    action = actions.get(step["action"])
    parameters = step.get("parameters") or {}
    raw = resolve(parameters, context)
    target = _target_in(context, parameters.get(action.target_input), action.target_kind)
    for field in _WHERE:
        if field not in raw:
            value = target.get(field) or context.get(field)
            if value:
                raw[field] = value
    return raw


def _target_in(context: dict[str, Any], parameter: Any, kind: str) -> dict[str, Any]:
    """The resource of the context a target parameter names (`${bucket.id}`: the bucket),
    else the first of the action's kind. An action on any resource (tagging) is told which
    one by its parameter, and that resource's account and region are the ones to act in."""
    named = _REFERENCE.fullmatch(parameter.strip()) if isinstance(parameter, str) else None
    if named and "." in named.group(1):
        found = context.get(named.group(1).split(".")[0])
        if isinstance(found, dict) and found.get("account_id"):
            return found
    found = context.get(kind)
    return found if isinstance(found, dict) else {}


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    return []


def holds(condition: dict[str, Any] | None, context: dict[str, Any]) -> bool:
    """Whether a step's `when` holds (no condition: it does)."""
    if not condition:
        return True
    ((operator, operand),) = condition.items()
    if operator == "exists":
        return lookup(context, operand) not in (_MISSING, "", None, [], {})
    if operator == "equals":
        return lookup(context, operand[0]) == operand[1]
    if operator == "in":
        return lookup(context, operand[0]) in operand[1]
    if operator == "not":
        return not holds(operand, context)
    if operator == "all":
        return all(holds(part, context) for part in operand)
    if operator == "any":
        return any(holds(part, context) for part in operand)
    raise ValueError(f"not a condition: {condition!r}")
