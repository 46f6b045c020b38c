"""Pages for working an incident's response: its playbook runs step by step, approvals,
cancelling and undo, and the playbook library for preparation.

Every change goes through `playbooks.services`, as the API's do, so a page and the API
write the same timeline entries and refuse the same things.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from rest_framework import serializers

from cases.models import Incident
from irportal import roles
from irportal.errors import StateConflict
from irportal.pages import page_actor, page_user
from playbooks import actions, definitions, library, services
from playbooks.choices import IN_FLIGHT_ACTION_STATES, OnFailure, StepState
from playbooks.models import ActionRun, Playbook, PlaybookRun, RunStep

# While a step or an action is with a worker, the response page reloads itself this often.
REFRESH_SECONDS = 5

_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def _incident_for_reading(request: HttpRequest, reference: str) -> Incident:
    return get_object_or_404(Incident.objects.visible_to(page_user(request)), reference=reference)


def _incident_for_change(request: HttpRequest, reference: str) -> Incident:
    incident = _incident_for_reading(request, reference)
    if not incident.may_change(request.user):
        raise PermissionDenied("You can read this incident's response but not change it.")
    return incident


def _lead_only(request: HttpRequest) -> None:
    if not roles.is_lead(request.user):
        raise PermissionDenied("Only a lead approves or rejects a step.")


def parse_assignments(text: str) -> dict[str, str]:
    """`path=value` lines as {path: value}; blank lines are ignored."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        path, equals, value = line.partition("=")
        path = path.strip()
        if not equals or not _PATH.match(path):
            raise forms.ValidationError(
                f"Line {number} is not path=value (for example instance.id=i-0abc)."
            )
        found[path] = value.strip()
    return found


def nest(assignments: dict[str, str]) -> dict[str, Any]:
    """{"tags.stage": "two"} as {"tags": {"stage": "two"}}: an action's nested inputs."""
    nested: dict[str, Any] = {}
    for path, value in assignments.items():
        *parents, last = path.split(".")
        node = nested
        for name in parents:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise forms.ValidationError(f"{path} sets a value inside {name}, which is text.")
        node[last] = value
    return nested


def problems_in(detail: Any) -> list[str]:
    """A DRF error detail, however nested, as one readable line per problem:
    {"steps": {"isolate": {"parameters": "…"}}} reads "Step isolate: parameters: …"."""
    lines = []
    for where, what in library.problems_in(detail):
        if where.startswith("steps."):
            step, _, rest = where.removeprefix("steps.").partition(".")
            where = f"Step {step}" + (f": {rest}" if rest else "")
        where = where.replace(".", ": ")
        lines.append(what if where == "document" else f"{where}: {what}")
    return lines


class StartRunForm(forms.Form):
    playbook = forms.ModelChoiceField(
        queryset=Playbook.objects.none(), empty_label="Choose a playbook"
    )
    dry_run = forms.BooleanField(
        required=False, label="Dry run: record what would be done, call no AWS"
    )
    inputs = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "instance.id=i-0abc"}),
        help_text="Optional: one path=value a line, for what the incident does not say.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["playbook"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Playbook.objects.latest_versions().filter(enabled=True).order_by("name")

    def clean_inputs(self) -> dict[str, str]:
        return parse_assignments(self.cleaned_data["inputs"])


class ActionRequestForm(forms.Form):
    action = forms.ChoiceField(choices=())
    inputs = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "resource=i-0abc"}),
        help_text="One input=value a line; ${instance.id} draws from the incident. "
        "account_id and region default to the incident's resource.",
    )
    dry_run = forms.BooleanField(required=False, label="Dry run")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["action"]
        assert isinstance(field, forms.ChoiceField)
        by_title = sorted(actions.REGISTRY.values(), key=lambda action: action.title)
        field.choices = [(action.name, action.title) for action in by_title]

    def clean_inputs(self) -> dict[str, Any]:
        return nest(parse_assignments(self.cleaned_data["inputs"]))


def _runs_of(incident: Incident) -> list[PlaybookRun]:
    # Steps and their action runs in two queries whatever the number of runs.
    steps = RunStep.objects.select_related("action_run").order_by("position")
    return list(
        incident.playbook_runs.select_related("playbook").prefetch_related(
            Prefetch("steps", queryset=steps)
        )
    )


def _in_flight(runs: list[PlaybookRun], direct: list[ActionRun]) -> bool:
    """Whether a worker has something of this incident's to do (a step to run, an action
    to do or undo): worth reloading for."""
    busy_steps = (StepState.QUEUED, StepState.RUNNING)
    steps = [step for run in runs for step in run.steps.all()]
    action_runs = [*direct, *(step.action_run for step in steps if step.action_run)]
    return any(step.state in busy_steps for step in steps) or any(
        action_run.state in IN_FLIGHT_ACTION_STATES for action_run in action_runs
    )


def _response_page(
    request: HttpRequest,
    incident: Incident,
    start_form: StartRunForm | None = None,
    action_form: ActionRequestForm | None = None,
) -> HttpResponse:
    runs = _runs_of(incident)
    direct = list(incident.action_runs.filter(steps__isnull=True))
    may_change = incident.may_change(request.user)
    # Not after a refused form: a reload would wipe what was typed and the errors with it.
    refreshing = start_form is None and action_form is None and _in_flight(runs, direct)
    response = render(
        request,
        "playbooks/incident_response.html",
        {
            "incident": incident,
            "runs": runs,
            "direct_action_runs": direct,
            "may_change": may_change,
            "may_decide": may_change and roles.is_lead(request.user),
            "start_form": start_form or StartRunForm(),
            "action_form": action_form or ActionRequestForm(),
            "refreshing": refreshing,
            "refresh_seconds": REFRESH_SECONDS,
        },
    )
    if refreshing:
        # The Refresh header does what <meta http-equiv="refresh"> does, without a
        # block in base.html's <head> for it.
        response["Refresh"] = str(REFRESH_SECONDS)
    return response


def _back_to_response(incident: Incident, anchor: str = "") -> HttpResponse:
    url = reverse("incident-response", args=[incident.reference])
    return redirect(f"{url}#{anchor}" if anchor else url)


def _named(action_run: ActionRun) -> str:
    return f"{actions.get(action_run.action).title} on {action_run.target}"


def _attempt(request: HttpRequest, change: Callable[[], Any], done: str) -> None:
    """Make a change the engine may refuse for the state things are in, and say which."""
    try:
        change()
    except StateConflict as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, done)


@login_required
def incident_response(request: HttpRequest, reference: str) -> HttpResponse:
    return _response_page(request, _incident_for_reading(request, reference))


@login_required
@require_POST
def run_start(request: HttpRequest, reference: str) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    form = StartRunForm(request.POST)
    if not form.is_valid():
        return _response_page(request, incident, start_form=form)
    try:
        run = services.start_run(
            page_actor(request),
            incident,
            form.cleaned_data["playbook"],
            dry_run=form.cleaned_data["dry_run"],
            inputs=form.cleaned_data["inputs"],
        )
    except serializers.ValidationError as refusal:
        for problem in problems_in(refusal.detail):
            form.add_error(None, problem)
        return _response_page(request, incident, start_form=form)
    except StateConflict as refusal:
        form.add_error(None, str(refusal))
        return _response_page(request, incident, start_form=form)
    messages.success(
        request, f"{'Dry run of' if run.dry_run else 'Started'} {run.playbook} (run {run.pk})."
    )
    return _back_to_response(incident, f"run-{run.pk}")


@login_required
@require_POST
def action_request(request: HttpRequest, reference: str) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    form = ActionRequestForm(request.POST)
    if not form.is_valid():
        return _response_page(request, incident, action_form=form)
    try:
        raw = _with_incident_defaults(
            incident, form.cleaned_data["action"], form.cleaned_data["inputs"]
        )
        action_run, new = services.request_action(
            page_actor(request),
            incident,
            form.cleaned_data["action"],
            raw,
            dry_run=form.cleaned_data["dry_run"],
        )
    except serializers.ValidationError as refusal:
        for problem in problems_in(refusal.detail):
            form.add_error(None, problem)
        return _response_page(request, incident, action_form=form)
    except (StateConflict, PermissionDenied) as refusal:
        # A responder asking for an action that needs a lead is told so on the page.
        form.add_error(None, str(refusal))
        return _response_page(request, incident, action_form=form)
    messages.success(
        request,
        f"{'Asked for' if new else 'Asked for before'}: {_named(action_run)} "
        f"({action_run.get_state_display().lower()}).",
    )
    return _back_to_response(incident, f"action-{action_run.pk}")


def _with_incident_defaults(
    incident: Incident, action_name: str, typed: dict[str, Any]
) -> dict[str, Any]:
    """The inputs typed, with ${paths} drawn from the incident, and the account and region
    of the incident's resource of the action's kind where they were not given."""
    context = definitions.incident_context(incident)
    try:
        return definitions.step_inputs({"action": action_name, "parameters": typed}, context)
    except definitions.Unresolvable as missing:
        raise serializers.ValidationError({"inputs": f"the incident has no {missing}"}) from None


@login_required
@require_POST
def step_approve(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    _lead_only(request)
    step = get_object_or_404(RunStep.objects.select_related("run"), pk=pk, run__incident=incident)
    _attempt(
        request,
        lambda: services.approve(page_actor(request), step),
        f"Approved step {step.position + 1}: {step.title}.",
    )
    return _back_to_response(incident, f"run-{step.run_id}")


@login_required
@require_POST
def step_reject(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    _lead_only(request)
    step = get_object_or_404(RunStep.objects.select_related("run"), pk=pk, run__incident=incident)
    reason = request.POST.get("reason", "").strip()[:300]
    _attempt(
        request,
        lambda: services.reject(page_actor(request), step, reason),
        f"Rejected step {step.position + 1}: {step.title}.",
    )
    return _back_to_response(incident, f"run-{step.run_id}")


@login_required
@require_POST
def run_cancel(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    run = get_object_or_404(PlaybookRun, pk=pk, incident=incident)
    reason = request.POST.get("reason", "").strip()[:300]
    _attempt(
        request,
        lambda: services.cancel(page_actor(request), run, reason),
        f"Cancelled run {run.pk}.",
    )
    return _back_to_response(incident, f"run-{run.pk}")


@login_required
@require_POST
def action_undo(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for_change(request, reference)
    action_run = get_object_or_404(ActionRun, pk=pk, incident=incident)
    _attempt(
        request,
        lambda: services.request_undo(page_actor(request), action_run),
        f"Asked to undo {_named(action_run)}.",
    )
    return _back_to_response(incident, f"action-{action_run.pk}")


@login_required
def playbook_list(request: HttpRequest) -> HttpResponse:
    page_user(request)
    playbooks = Playbook.objects.latest_versions().order_by("name", "slug")
    return render(request, "playbooks/playbook_list.html", {"playbooks": playbooks})


@login_required
def playbook_detail(request: HttpRequest, slug: str) -> HttpResponse:
    page_user(request)
    versions = list(Playbook.objects.filter(slug=slug).order_by("-version"))
    if not versions:
        raise Http404("No such playbook.")
    wanted = request.GET.get("version", "")
    chosen = next((p for p in versions if str(p.version) == wanted), versions[0])
    return render(
        request,
        "playbooks/playbook_detail.html",
        {"playbook": chosen, "versions": versions, "steps": step_rows(chosen)},
    )


def step_rows(playbook: Playbook) -> list[dict[str, Any]]:
    """A playbook's steps as the library page shows them, with each action's defaults."""
    rows = []
    for position, step in enumerate(playbook.steps, start=1):
        action = actions.REGISTRY.get(step["action"])
        gated_by_default = bool(action and action.requires_approval)
        approval = step.get("approval")
        rows.append(
            {
                "position": position,
                "id": step["id"],
                "title": step.get("title") or (action.title if action else step["action"]),
                "action": step["action"],
                "known": action is not None,
                "undoable": bool(action and action.undoable),
                "parameters": step.get("parameters") or {},
                "when": json.dumps(step["when"]) if step.get("when") else "",
                "approval": gated_by_default if approval is None else approval,
                "on_failure": OnFailure(step.get("on_failure") or OnFailure.STOP).label,
            }
        )
    return rows
