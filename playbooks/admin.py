"""Accounts and playbooks are configuration: every role reads them, leads keep them.
Runs, their steps and action runs are the record of what was done: read-only, shown for
the incidents the reader can see.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from rest_framework import serializers

from cases.admin import (
    IncidentPartAdmin,
    KeptByLeads,
    ReadOnlyAdmin,
    ReadOnlyInline,
)
from cases.models import Incident
from irportal import roles
from playbooks import accounts, definitions
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun, RunStep
from playbooks.versions import CONTENT_FIELDS, differs, save_next_version


@admin.register(CloudAccount)
class CloudAccountAdmin(KeptByLeads):
    list_display = [
        "name",
        "account_id",
        "environment",
        "is_security_account",
        "enabled",
        "check_ok",
        "checked_at",
    ]
    list_filter = ["environment", "enabled", "check_ok"]
    search_fields = ["name", "account_id", "notes"]
    readonly_fields = ["checked_at", "check_ok", "check_message"]
    actions = ["check_access"]

    def get_exclude(self, request: HttpRequest, obj: Model | None = None) -> Any:
        # As in the API: the external id is for leads.
        return [] if roles.is_lead(request.user) else ["external_id"]

    @admin.action(description="Check access (assume the response role now)")
    def check_access(self, request: HttpRequest, queryset: QuerySet[CloudAccount]) -> None:
        for account in queryset:
            accounts.check_access(account)
            level = messages.SUCCESS if account.check_ok else messages.WARNING
            self.message_user(request, f"{account}: {account.check_message}", level)

    def get_actions(self, request: HttpRequest) -> Any:
        found = super().get_actions(request)
        if not roles.is_lead(request.user):
            found.pop("check_access", None)
        return found


def error_lines(detail: Any, path: str = "") -> list[str]:
    """DRF's nested errors as lines a form shows: `steps.0.action: no action named …`."""
    if isinstance(detail, dict):
        return [line for key, sub in detail.items() for line in error_lines(sub, f"{path}{key}.")]
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [f"{path.rstrip('.')}: {item}" if path else str(item) for item in detail]
        return [line for n, sub in enumerate(detail) for line in error_lines(sub, f"{path}{n}.")]
    return [f"{path.rstrip('.')}: {detail}" if path else str(detail)]


class PlaybookForm(forms.ModelForm):
    class Meta:
        model = Playbook
        fields = ["slug", "name", "description", "definition", "enabled"]
        help_texts = {
            "definition": 'JSON: {"steps": [{"id", "action", "parameters", "when", '
            '"approval", "on_failure"}]}. A change is saved as the next version.',
        }

    def clean_slug(self) -> str:
        slug = str(self.cleaned_data["slug"])
        if self.instance.pk is None and Playbook.objects.filter(slug=slug).exists():
            raise forms.ValidationError("There is a playbook with this slug: change that one.")
        return slug

    def clean_definition(self) -> dict[str, Any]:
        raw = self.cleaned_data["definition"]
        if not isinstance(raw, dict):
            raise forms.ValidationError("A definition is a mapping with a list of steps.")
        try:
            return definitions.clean_definition(raw)
        except serializers.ValidationError as error:
            raise forms.ValidationError(error_lines(error.detail)) from None


@admin.register(Playbook)
class PlaybookAdmin(KeptByLeads):
    form = PlaybookForm
    list_display = ["slug", "version", "name", "enabled", "builtin", "created_at", "created_by"]
    list_filter = ["enabled", "builtin"]
    search_fields = ["slug", "name", "description"]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        # A version's slug is what ties it to the others.
        made = ["version", "builtin", "created_at", "created_by"]
        return ["slug", *made] if obj is not None else made

    def save_model(self, request: HttpRequest, obj: Playbook, form: Any, change: bool) -> None:
        author = request.user.get_username()
        if not change:
            save_next_version(obj, author)
            return
        stored = Playbook.objects.get(pk=obj.pk)
        if differs(stored, {name: form.cleaned_data[name] for name in CONTENT_FIELDS}):
            # `obj` is the stored version with the form's changes, in memory: saved as a
            # new row, it becomes the next version and the stored one stays as it was.
            save_next_version(obj, author)
            self.message_user(request, f"Saved as version {obj.version}; v{stored.version} kept.")
        else:
            obj.save(update_fields=["enabled"])

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # a version runs used is kept; a playbook is retired by disabling it


STEP_COLUMNS = ("position", "key", "title", "action", "state", "reason", "action_run")


class RunStepInline(ReadOnlyInline):
    model = RunStep
    fields = STEP_COLUMNS
    readonly_fields = STEP_COLUMNS


@admin.register(PlaybookRun)
class PlaybookRunAdmin(IncidentPartAdmin):
    list_display = ["incident", "playbook", "status", "dry_run", "actor_name", "started_at"]
    list_filter = ["status", "dry_run"]
    search_fields = ["incident__reference", "playbook__slug", "actor_name"]
    list_select_related = ["incident", "playbook"]
    date_hierarchy = "started_at"
    inlines = [RunStepInline]


@admin.register(RunStep)
class RunStepAdmin(ReadOnlyAdmin):
    list_display = ["run", "position", "title", "action", "state", "decided_by", "finished_at"]
    list_filter = ["state", "action"]
    search_fields = ["run__incident__reference", "key", "title"]
    list_select_related = ["run__incident", "run__playbook"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RunStep]:
        visible = Incident.objects.visible_to(request.user)
        return super().get_queryset(request).filter(run__incident__in=visible)


@admin.register(ActionRun)
class ActionRunAdmin(IncidentPartAdmin):
    list_display = ["incident", "action", "target", "state", "dry_run", "changed", "created_at"]
    list_filter = ["state", "action", "dry_run"]
    search_fields = ["incident__reference", "target", "actor_name"]
    list_select_related = ["incident"]
    date_hierarchy = "created_at"
