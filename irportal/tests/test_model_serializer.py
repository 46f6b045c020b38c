import pytest
from rest_framework import serializers

from cases.api.serializers import IncidentSerializer, TaskSerializer
from cases.models import Objective

pytestmark = pytest.mark.django_db


def test_each_serializer_gets_fields_of_its_own():
    first, second = IncidentSerializer(), IncidentSerializer()

    assert first.fields.keys() == second.fields.keys()
    for name, field in first.fields.items():
        assert field is not second.fields[name]
        assert field.parent is first and second.fields[name].parent is second


def test_fields_are_those_drf_builds():
    serializer = IncidentSerializer()

    built_by_drf = serializers.ModelSerializer.get_fields(serializer)

    assert repr(serializer.get_fields()) == repr(built_by_drf)


def test_one_serializers_context_does_not_reach_another(incident, make_incident):
    other = make_incident(title="Other")
    mine = Objective.objects.create(incident=incident, kind="contain")
    theirs = Objective.objects.create(incident=other, kind="contain")

    for_mine = TaskSerializer(context={"incident": incident}).fields["objective"]
    for_theirs = TaskSerializer(context={"incident": other}).fields["objective"]

    assert list(for_mine.queryset) == [mine]
    assert list(for_theirs.queryset) == [theirs]
