from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from playbooks.choices import ActionState, Environment, RunStatus
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun

# Incidents are named by reference, not by a choice among all incidents: a choice field
# would answer differently for a hidden incident than for one that does not exist.


class CloudAccountFilter(django_filters.FilterSet):
    environment = django_filters.MultipleChoiceFilter(choices=Environment.choices)

    class Meta:
        model = CloudAccount
        fields = ["account_id", "enabled", "is_security_account", "check_ok"]


class PlaybookFilter(django_filters.FilterSet):
    all_versions = django_filters.BooleanFilter(
        method="every_version", help_text="Every version, not only the newest of each."
    )

    class Meta:
        model = Playbook
        fields = ["slug", "enabled", "builtin"]

    def every_version(self, queryset: QuerySet[Playbook], name: str, value: Any) -> Any:
        return queryset  # `filter_queryset` leaves the older versions in

    def filter_queryset(self, queryset: QuerySet[Playbook]) -> QuerySet[Playbook]:
        queryset = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("all_versions"):
            return queryset
        return queryset.latest_versions()  # type: ignore[attr-defined,no-any-return]


class PlaybookRunFilter(django_filters.FilterSet):
    incident = django_filters.CharFilter("incident__reference", help_text="e.g. IR-2026-0042")
    playbook = django_filters.CharFilter("playbook__slug", help_text="Any version of it.")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)

    class Meta:
        model = PlaybookRun
        fields = ["dry_run"]


class ActionRunFilter(django_filters.FilterSet):
    incident = django_filters.CharFilter("incident__reference", help_text="e.g. IR-2026-0042")
    state = django_filters.MultipleChoiceFilter(choices=ActionState.choices)

    class Meta:
        model = ActionRun
        fields = ["action", "dry_run"]
