from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from cases.admin import ReadOnlyAdmin
from findings.models import Finding, QuarantinedEvent, TriageRule
from irportal import roles


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


@admin.register(TriageRule)
class TriageRuleAdmin(admin.ModelAdmin):
    """Leads keep the rules; everyone who reads the admin can see them."""

    list_display = ["position", "name", "effect", "min_severity", "incident_category", "enabled"]
    list_display_links = ["name"]
    list_filter = ["effect", "enabled", "incident_category"]
    search_fields = ["name", "description"]
    ordering = ["position", "id"]

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
