"""Pages for responders: the incidents they can see, and one incident with its timeline
and its parts, which responders work from the page.

The pages call the same model verbs and services as the API, so a change made here is
recorded in the timeline the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from cases import services
from cases.choices import Severity, Status
from cases.forms import (
    AffectedResourceForm,
    CommunicationForm,
    EntryForm,
    IncidentForm,
    ObjectiveForm,
    ObjectiveStatusForm,
    PartForm,
    ParticipantForm,
    TaskDoneForm,
    TaskForm,
    TransitionForm,
)
from cases.models import (
    Communication,
    CommunicationNotAllowed,
    Incident,
    IncidentPart,
    Objective,
    Participant,
    Task,
    TimelineEntry,
    TransitionNotAllowed,
)
from cases.models.incident import NEXT_STATUSES
from irportal import roles
from irportal.actors import Actor
from irportal.pages import page_actor, page_user

Part = TypeVar("Part", bound=IncidentPart)

# The parts the incident's page adds, by the name their form, URL and section go by.
ADDABLE: dict[str, type[PartForm]] = {
    "objective": ObjectiveForm,
    "task": TaskForm,
    "participant": ParticipantForm,
    "resource": AffectedResourceForm,
    "communication": CommunicationForm,
}


def _incident_for_change(request: HttpRequest, reference: str) -> Incident:
    incident = get_object_or_404(
        Incident.objects.visible_to(page_user(request)), reference=reference
    )
    if not incident.may_change(request.user):
        raise PermissionDenied("You can read this incident but not change it.")
    return incident


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
    return _incident_page(request, incident)


def _incident_page(
    request: HttpRequest, incident: Incident, refused: dict[str, Any] | None = None
) -> HttpResponse:
    """The incident's page; with `refused`, the forms that were sent back with errors, in
    place of blank ones, answered 400."""
    timeline = TimelineEntry.objects.filter(incident=incident).order_by("-sequence")
    next_statuses = NEXT_STATUSES[Status(incident.status)]
    may_change = incident.may_change(request.user)
    forms = {
        **{f"{part}_form": form.for_incident(incident) for part, form in ADDABLE.items()},
        "objective_status_forms": {},
        **(refused or {}),
    }
    objectives = [
        (objective, forms["objective_status_forms"].get(objective.pk) or _status_form(objective))
        for objective in incident.objectives.select_related("owner")
    ]
    return render(
        request,
        "cases/incident_detail.html",
        {
            "incident": incident,
            "may_change": may_change,
            "may_approve": may_change and roles.is_lead(request.user),
            "participants": incident.participants.select_related("user"),
            "resources": incident.resources.all(),
            "objectives": objectives,
            "tasks": incident.tasks.select_related("assignee", "objective"),
            "communications": incident.communications.select_related(
                "drafted_by", "approved_by", "sent_by"
            ),
            "timeline": Paginator(timeline, 100).get_page(request.GET.get("page")),
            "transition_form": TransitionForm(
                initial={"status": next_statuses[0]},
            ),
            "next_statuses": [(s, Status(s).label) for s in next_statuses],
            "entry_form": EntryForm(),
            **forms,
        },
        status=400 if refused else 200,
    )


def _status_form(objective: Objective, data: Any = None) -> ObjectiveStatusForm:
    return ObjectiveStatusForm(
        data, initial={"status": objective.status}, auto_id=f"objective-{objective.pk}-%s"
    )


def _part_of(incident: Incident, model: type[Part], pk: int) -> Part:
    """A part of the incident named in the URL; one of another incident is not found."""
    part = get_object_or_404(model, pk=pk, incident=incident)
    part.incident = incident
    return part


def _back(incident: Incident, section: str) -> HttpResponse:
    return redirect(f"{reverse('incident-detail', args=[incident.reference])}#{section}")


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


@login_required
@require_POST
def part_add(request: HttpRequest, reference: str, part: str) -> HttpResponse:
    """Add an objective, task, participant, affected resource or communication draft."""
    incident = _incident_for_change(request, reference)
    form = ADDABLE[part].for_incident(incident, request.POST)
    if not form.is_valid():
        return _incident_page(request, incident, {f"{part}_form": form})
    added = services.add(page_actor(request), form.part(page_user(request)))
    messages.success(request, f"Added {added._meta.verbose_name}: {added}.")
    return _back(incident, f"{part}s")


@login_required
@require_POST
def objective_status(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    objective = _part_of(incident, Objective, pk)
    form = _status_form(objective, request.POST)
    if not form.is_valid():
        return _incident_page(request, incident, {"objective_status_forms": {pk: form}})
    services.change(page_actor(request), objective, {"status": form.cleaned_data["status"]})
    messages.success(request, f"{objective}: {objective.get_status_display().lower()}.")
    return _back(incident, "objectives")


@login_required
@require_POST
def task_done(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    """Tick a task done, or (with `done` left out) undo that."""
    incident = _incident_for_change(request, reference)
    task = _part_of(incident, Task, pk)
    form = TaskDoneForm(request.POST)
    form.is_valid()  # `done` left out is False: this form has nothing to refuse.
    done = form.cleaned_data["done"]
    services.change(page_actor(request), task, {"done": done})
    messages.success(request, f"{task}: {'done' if done else 'not done'}.")
    return _back(incident, "tasks")


@login_required
@require_POST
def participant_remove(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    participant = _part_of(incident, Participant, pk)
    services.remove(page_actor(request), participant)
    if not Incident.objects.visible_to(page_user(request)).filter(pk=incident.pk).exists():
        # Someone who leaves a restricted incident can no longer see it: its page would
        # answer "not found".
        messages.success(
            request,
            f"You left {incident.reference}; it is restricted, so it is no longer shown to you.",
        )
        return redirect("incident-list")
    messages.success(request, f"Removed {participant} from {incident.reference}.")
    return _back(incident, "participants")


@login_required
@require_POST
def communication_approve(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    if not roles.is_lead(request.user):
        raise PermissionDenied("Only a lead can approve a communication.")
    communication = _part_of(incident, Communication, pk)
    return _communication_step(request, communication, communication.approve, "approved")


@login_required
@require_POST
def communication_send(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    """Record that an approved communication went out."""
    incident = _incident_for_change(request, reference)
    communication = _part_of(incident, Communication, pk)
    return _communication_step(request, communication, communication.mark_sent, "marked sent")


def _communication_step(
    request: HttpRequest, communication: Communication, step: Callable[[Actor], None], done: str
) -> HttpResponse:
    """Take a step in the communication's life, or say why its state refuses it."""
    try:
        step(page_actor(request))
    except CommunicationNotAllowed as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"{communication}: {done}.")
    return _back(communication.incident, "communications")
