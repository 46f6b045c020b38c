"""Pages for responders: the incidents they can see, and one incident with its timeline.

The pages call the same model verbs and services as the API, so a change made here is
recorded in the timeline the same way.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from cases import services
from cases.choices import MANUAL_ENTRY_KINDS, Resolution, Severity, Status
from cases.models import Incident, TimelineEntry, TransitionNotAllowed
from cases.models.incident import NEXT_STATUSES
from irportal import roles
from irportal.pages import page_actor, page_user


def _incident_for_change(request: HttpRequest, reference: str) -> Incident:
    incident = get_object_or_404(
        Incident.objects.visible_to(page_user(request)), reference=reference
    )
    if not incident.may_change(request.user):
        raise PermissionDenied("You can read this incident but not change it.")
    return incident


class IncidentForm(forms.ModelForm):
    class Meta:
        model = Incident
        fields = ["title", "severity", "category", "tlp", "summary", "restricted"]
        widgets = {"summary": forms.Textarea(attrs={"rows": 4})}


class TransitionForm(forms.Form):
    status = forms.ChoiceField(choices=Status.choices)
    resolution = forms.ChoiceField(choices=[("", "—"), *Resolution.choices], required=False)
    reason = forms.CharField(required=False, max_length=2000)


class EntryForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k.value, k.label) for k in MANUAL_ENTRY_KINDS])
    summary = forms.CharField(max_length=300)
    occurred_at = forms.DateTimeField(
        required=False,
        help_text="When it happened, if earlier than now (UTC).",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_occurred_at(self) -> Any:
        occurred_at = self.cleaned_data["occurred_at"]
        if occurred_at and occurred_at > timezone.now():
            raise forms.ValidationError("This time is in the future.")
        return occurred_at


@login_required
def incident_list(request: HttpRequest) -> HttpResponse:
    incidents = Incident.objects.visible_to(page_user(request))
    status = request.GET.getlist("status") or [s for s in Status.values if s != Status.CLOSED]
    incidents = incidents.filter(status__in=status)
    if severity := request.GET.getlist("severity"):
        incidents = incidents.filter(severity__in=severity)
    if query := request.GET.get("q", "").strip():
        incidents = incidents.filter(
            Q(reference__icontains=query) | Q(title__icontains=query) | Q(summary__icontains=query)
        )
    page = Paginator(incidents, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "cases/incident_list.html",
        {
            "page": page,
            "statuses": Status.choices,
            "severities": Severity.choices,
            "chosen_status": status,
            "chosen_severity": severity,
            "query": query,
            "may_open": roles.may_open_incidents(request.user),
        },
    )


@login_required
def incident_detail(request: HttpRequest, reference: str) -> HttpResponse:
    incident = get_object_or_404(
        Incident.objects.visible_to(page_user(request)), reference=reference
    )
    timeline = TimelineEntry.objects.filter(incident=incident).order_by("-sequence")
    next_statuses = NEXT_STATUSES[Status(incident.status)]
    return render(
        request,
        "cases/incident_detail.html",
        {
            "incident": incident,
            "may_change": incident.may_change(request.user),
            "participants": incident.participants.select_related("user"),
            "resources": incident.resources.all(),
            "objectives": incident.objectives.select_related("owner"),
            "tasks": incident.tasks.select_related("assignee", "objective"),
            "communications": incident.communications.all(),
            "timeline": Paginator(timeline, 100).get_page(request.GET.get("page")),
            "transition_form": TransitionForm(
                initial={"status": next_statuses[0]},
            ),
            "next_statuses": [(s, Status(s).label) for s in next_statuses],
            "entry_form": EntryForm(),
        },
    )


@login_required
def incident_create(request: HttpRequest) -> HttpResponse:
    page_user(request)
    if not roles.may_open_incidents(request.user):
        raise PermissionDenied("Your role cannot open incidents.")
    form = IncidentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        incident = services.open_incident(page_actor(request), **form.cleaned_data)
        messages.success(request, f"Opened {incident.reference}.")
        return redirect("incident-detail", reference=incident.reference)
    return render(request, "cases/incident_form.html", {"form": form})


@login_required
@require_POST
def incident_acknowledge(request: HttpRequest, reference: str) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    if incident.acknowledge(page_actor(request)):
        messages.success(request, f"You acknowledged {incident.reference}.")
    return redirect("incident-detail", reference=reference)


@login_required
@require_POST
def incident_transition(request: HttpRequest, reference: str) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    form = TransitionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a status.")
    else:
        try:
            incident.move_to(page_actor(request), **form.cleaned_data)
            messages.success(request, f"{incident.reference} is now {incident.status}.")
        except TransitionNotAllowed as refusal:
            messages.error(request, str(refusal))
    return redirect("incident-detail", reference=reference)


@login_required
@require_POST
def incident_add_entry(request: HttpRequest, reference: str) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    form = EntryForm(request.POST)
    if form.is_valid():
        services.write_entry(page_actor(request), incident, **form.cleaned_data)
        messages.success(request, "Added to the timeline.")
    else:
        problems = (
            f"{field}: {error}" for field, errors in form.errors.items() for error in errors
        )
        messages.error(request, "; ".join(problems))
    return redirect("incident-detail", reference=reference)
