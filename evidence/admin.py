"""Evidence in the admin: read by leads and leadership, changed by nobody.

An item's bytes, hash and retention change only through `evidence.services`, which record
each change in the chain of custody; an admin form could not, so there is none.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cases.admin import ReadOnlyAdmin
from cases.models import Incident
from evidence.choices import Integrity
from evidence.models import CustodyEvent, EvidenceItem
from irportal import roles

READERS = frozenset({roles.LEAD, roles.LEADERSHIP})


def may_read_evidence(request: HttpRequest) -> bool:
    user = request.user
    return user.is_active and (user.is_superuser or bool(roles.roles_of(user) & READERS))


class EvidenceAdmin(ReadOnlyAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_read_evidence(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_read_evidence(request)


class CustodyInline(admin.TabularInline):
    model = CustodyEvent
    fields = ["at", "action", "actor_name", "from_location", "to_location", "sha256"]
    readonly_fields = ["at", "action", "actor_name", "from_location", "to_location", "sha256"]
    extra = 0
    can_delete = False
    ordering = ["at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_read_evidence(request)


@admin.register(EvidenceItem)
class EvidenceItemAdmin(EvidenceAdmin):
    list_display = [
        "id",
        "incident",
        "name",
        "kind",
        "integrity_flag",
        "verified_at",
        "size",
        "sha256",
        "retention_class",
        "retain_until",
        "legal_hold",
        "disposed_at",
    ]
    list_display_links = ["id", "name"]
    list_filter = ["integrity", "kind", "legal_hold", "store", "retention_class"]
    search_fields = ["incident__reference", "name", "sha256", "source"]
    list_select_related = ["incident"]
    date_hierarchy = "acquired_at"
    inlines = [CustodyInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EvidenceItem]:
        visible = Incident.objects.visible_to(request.user)
        return super().get_queryset(request).filter(incident__in=visible)

    @admin.display(description="Integrity", ordering="integrity")
    def integrity_flag(self, item: EvidenceItem) -> SafeString | str:
        if item.integrity in (Integrity.MISMATCH, Integrity.MISSING):
            return format_html(
                '<strong style="color:#b42318">⚠ {}</strong>', item.get_integrity_display()
            )
        return item.get_integrity_display()


@admin.register(CustodyEvent)
class CustodyEventAdmin(EvidenceAdmin):
    list_display = ["at", "item", "action", "actor_name", "from_location", "to_location"]
    list_filter = ["action", "actor_kind"]
    search_fields = ["item__incident__reference", "item__name", "actor_name", "sha256"]
    list_select_related = ["item__incident"]
    date_hierarchy = "at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[CustodyEvent]:
        visible = Incident.objects.visible_to(request.user)
        return super().get_queryset(request).filter(item__incident__in=visible)
