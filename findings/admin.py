from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from cases.admin import KeptByLeads, ReadOnlyAdmin
from findings.choices import RuleEffect
from findings.models import NO_PLAYBOOK_ON_SUPPRESS, Finding, QuarantinedEvent, TriageRule
from irportal import roles
from playbooks.models import Playbook


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdmin):
    list_display = ["type", "source", "severity", "account_id", "decision", "incident", "last_seen"]
    list_filter = ["source", "severity", "decision", "region"]
    search_fields = ["type", "title", "provider_id", "primary_resource", "incident__reference"]
    list_select_related = ["incident"]
    date_hierarchy = "received_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Finding]:
        return Finding.objects.visible_to(request.user).select_related("incident")


@admin.register(QuarantinedEvent)
class QuarantinedEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "received_by", "error", "resubmitted_at"]
    search_fields = ["error", "received_by"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return roles.is_lead(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return roles.is_lead(request.user)


def _playbook_choices() -> list[tuple[str, str]]:
    newest = Playbook.objects.latest_versions().order_by("slug").values_list("slug", "name")
    return [("", "None"), *((slug, f"{name} ({slug})") for slug, name in newest)]


class TriageRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    """The admin gives it its model and fields."""

    # The playbooks there are, listed when the form is made; the model's validator checks
    # the slug again when the rule is saved.
    playbook = forms.TypedChoiceField(choices=_playbook_choices, required=False, empty_value="")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("effect") == RuleEffect.SUPPRESS and cleaned.get("playbook"):
            self.add_error("playbook", NO_PLAYBOOK_ON_SUPPRESS)
        return cleaned


@admin.register(TriageRule)
class TriageRuleAdmin(KeptByLeads):
    """Leads keep the rules; everyone who reads the admin can see them."""

    form = TriageRuleForm

    list_display = [
        "position",
        "name",
        "effect",
        "min_severity",
        "incident_category",
        "playbook",
        "enabled",
    ]
    list_display_links = ["name"]
    list_filter = ["effect", "enabled", "incident_category"]
    search_fields = ["name", "description"]
    ordering = ["position", "id"]
