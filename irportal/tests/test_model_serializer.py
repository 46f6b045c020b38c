import re

import pytest
from rest_framework import serializers

from cases.api.serializers import IncidentSerializer, TaskSerializer
from cases.models import Objective
from irportal.api import ModelSerializer

pytestmark = pytest.mark.django_db


def test_each_serializer_gets_fields_of_its_own():
    first, second = IncidentSerializer(), IncidentSerializer()

    assert first.fields.keys() == second.fields.keys()
    for name, field in first.fields.items():
        assert field is not second.fields[name]
        assert field.parent is first and second.fields[name].parent is second


def every_model_serializer() -> list[type]:
    import evidence.api.serializers  # noqa: F401  (the classes they hold are listed)
    import findings.api.serializers  # noqa: F401
    import playbooks.api.serializers  # noqa: F401

    found, waiting = [], [ModelSerializer]
    while waiting:
        for subclass in waiting.pop().__subclasses__():
            found.append(subclass)
            waiting.append(subclass)
    return found


@pytest.mark.parametrize("serializer_class", every_model_serializer(), ids=lambda c: c.__name__)
def test_fields_are_those_drf_builds(serializer_class):
    serializer = serializer_class()
    serializer.get_fields()  # the second call is the one served from what was kept

    built_by_drf = serializers.ModelSerializer.get_fields(serializer)

    assert repr(serializer.get_fields()) == repr(built_by_drf)


def state(field):
    """A field's attributes, each by its repr without object addresses; all but the
    counter every construction increments (it orders the fields a class declares)."""
    return {
        name: re.sub(r" at 0x[0-9a-f]+", "", repr(value))
        for name, value in vars(field).items()
        if name != "_creation_counter"
    }


@pytest.mark.parametrize("serializer_class", every_model_serializer(), ids=lambda c: c.__name__)
def test_copied_fields_hold_what_drf_builds(serializer_class):
    serializer_class().get_fields()  # keeps the fields

    copies = serializer_class().get_fields()
    built_by_drf = serializers.ModelSerializer.get_fields(serializer_class())

    for name, field in copies.items():
        assert type(field) is type(built_by_drf[name]), name
        assert state(field) == state(built_by_drf[name]), name


def test_changing_one_serializers_field_leaves_the_next_ones_alone():
    changed = IncidentSerializer().fields["title"]
    changed.validators.append(lambda value: None)
    changed.error_messages["blank"] = "Say what happened."
    changed.style["base_template"] = "textarea.html"

    untouched = IncidentSerializer().fields["title"]

    assert len(untouched.validators) == len(changed.validators) - 1
    assert untouched.error_messages["blank"] != "Say what happened."
    assert "base_template" not in untouched.style


@pytest.mark.parametrize("serializer_class", every_model_serializer(), ids=lambda c: c.__name__)
def test_validators_are_those_drf_builds(serializer_class):
    serializer = serializer_class()
    serializer.get_validators()

    built_by_drf = serializers.ModelSerializer.get_validators(serializer)

    assert repr(serializer.get_validators()) == repr(built_by_drf)
    assert serializer.get_validators() is not serializer.get_validators()  # a list each


class ObjectiveWithTasks(ModelSerializer):
    labels = serializers.DictField(child=serializers.CharField())
    tasks = TaskSerializer(many=True, read_only=True)

    class Meta:
        model = Objective
        fields = ["kind", "labels", "tasks"]


def test_fields_that_hold_fields_are_not_shared():
    first, second = ObjectiveWithTasks(), ObjectiveWithTasks()

    for name in ("labels", "tasks"):
        assert first.fields[name].child is not second.fields[name].child
        assert first.fields[name].child.parent is first.fields[name]


def test_one_serializers_context_does_not_reach_another(incident, make_incident):
    other = make_incident(title="Other")
    mine = Objective.objects.create(incident=incident, kind="contain")
    theirs = Objective.objects.create(incident=other, kind="contain")

    for_mine = TaskSerializer(context={"incident": incident}).fields["objective"]
    for_theirs = TaskSerializer(context={"incident": other}).fields["objective"]

    assert list(for_mine.queryset) == [mine]
    assert list(for_theirs.queryset) == [theirs]
