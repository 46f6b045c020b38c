"""The admin is where leadership reads the response: every case model is read-only here.

Changes go through the API and the pages, which record them in the timeline; an admin form
would change the rows without saying so. Communication templates are the exception: they
are configuration, and superusers edit them here.
"""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from cases.models import (
    AffectedResource,
    Communication,
    CommunicationTemplate,
    Incident,
    Objective,
    Participant,
    Task,
    TimelineEntry,
)
from irportal import roles

READERS = frozenset({roles.LEAD, roles.LEADERSHIP, roles.RESPONDER})


def may_read_cases(request: HttpRequest) -> bool:
    user = request.user
    return user.is_active and (user.is_superuser or bool(roles.roles_of(user) & READERS))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_read_cases(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_read_cases(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class IncidentPartAdmin(ReadOnlyAdmin):
    """Parts of incidents, shown only for the incidents the reader can see."""

    list_select_related = ["incident"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        visible = Incident.objects.visible_to(request.user)
        return super().get_queryset(request).filter(incident__in=visible)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_read_cases(request)


class KeptByLeads(admin.ModelAdmin):
    """Configuration (accounts, playbooks, rules): everyone who reads the admin sees it,
    leads change it."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(roles.roles_of(request.user))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return roles.is_lead(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return roles.is_lead(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return roles.is_lead(request.user)


class ParticipantInline(ReadOnlyInline):
    model = Participant
    fields = ["user", "role", "added_at"]
    readonly_fields = ["user", "role", "added_at"]


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = [
        "reference",
        "title",
        "severity",
        "status",
        "category",
        "restricted",
        "reported_at",
        "time_to_acknowledge",
        "time_to_contain",
        "time_to_recover",
    ]
    list_filter = ["status", "severity", "category", "tlp", "restricted", "reported_at"]
    search_fields = ["reference", "title", "summary"]
    date_hierarchy = "reported_at"
    inlines = [ParticipantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Incident]:
        return Incident.objects.visible_to(request.user)


@admin.register(Participant)
class ParticipantAdmin(IncidentPartAdmin):
    list_display = ["incident", "user", "role", "added_at"]
    list_filter = ["role"]
    search_fields = ["incident__reference", "user__username"]
    list_select_related = ["incident", "user"]


@admin.register(AffectedResource)
class AffectedResourceAdmin(IncidentPartAdmin):
    list_display = ["incident", "resource_type", "identifier", "account_id", "region"]
    list_filter = ["resource_type", "region"]
    search_fields = ["incident__reference", "identifier", "account_id"]


@admin.register(Objective)
class ObjectiveAdmin(IncidentPartAdmin):
    list_display = ["incident", "kind", "description", "owner", "status", "due_at", "met_at"]
    list_filter = ["kind", "status"]
    search_fields = ["incident__reference", "description"]
    list_select_related = ["incident", "owner"]


@admin.register(Task)
class TaskAdmin(IncidentPartAdmin):
    list_display = ["incident", "title", "assignee", "due_at", "done", "done_at"]
    list_filter = ["done"]
    search_fields = ["incident__reference", "title"]
    list_select_related = ["incident", "assignee"]


@admin.register(Communication)
class CommunicationAdmin(IncidentPartAdmin):
    list_display = ["incident", "audience", "channel", "subject", "status", "sent_at"]
    list_filter = ["audience", "channel", "status"]
    search_fields = ["incident__reference", "subject"]


@admin.register(TimelineEntry)
class TimelineEntryAdmin(IncidentPartAdmin):
    list_display = ["incident", "sequence", "occurred_at", "kind", "actor_name", "summary"]
    list_filter = ["kind", "actor_kind"]
    search_fields = ["incident__reference", "summary", "actor_name"]
    ordering = ["-recorded_at", "-id"]


@admin.register(CommunicationTemplate)
class CommunicationTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "audience", "channel", "active"]
    list_filter = ["audience", "channel", "active"]
    search_fields = ["name", "subject"]
