import django_filters

from cases.choices import TLP, Category, Severity, Status
from cases.models import Incident, Task


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    category = django_filters.MultipleChoiceFilter(choices=Category.choices)
    tlp = django_filters.MultipleChoiceFilter(choices=TLP.choices)
    reported_after = django_filters.IsoDateTimeFilter("reported_at", lookup_expr="gte")
    reported_before = django_filters.IsoDateTimeFilter("reported_at", lookup_expr="lt")
    detected_after = django_filters.IsoDateTimeFilter("detected_at", lookup_expr="gte")
    detected_before = django_filters.IsoDateTimeFilter("detected_at", lookup_expr="lt")
    acknowledged = django_filters.BooleanFilter(
        "acknowledged_at", lookup_expr="isnull", exclude=True
    )

    class Meta:
        model = Incident
        fields = ["restricted"]


class TaskFilter(django_filters.FilterSet):
    # By id, not a choice among all objectives: a choice field would answer differently for
    # an objective of a hidden incident than for one that does not exist.
    objective = django_filters.NumberFilter("objective_id")

    class Meta:
        model = Task
        fields = ["done"]
