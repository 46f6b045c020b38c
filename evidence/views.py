"""The evidence page of an incident: its items, their integrity and custody, and an
upload form whose file streams into the evidence store as the browser sends it.

Every change goes through `evidence.services`, as the API's do; who may do what is decided
by the same rules (`evidence.api.permissions`).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from cases.models import Incident
from evidence import services
from evidence.api.permissions import may_keep, may_take_out, may_work
from evidence.choices import FAILED_INTEGRITY, EvidenceKind, Integrity
from evidence.models import CustodyEvent, EvidenceItem
from evidence.uploads import StoreUploadHandler, StreamedFile, client_address
from irportal.errors import StateConflict
from irportal.pages import page_actor, page_user


class UploadForm(forms.Form):
    file = forms.FileField()
    kind = forms.ChoiceField(choices=EvidenceKind.choices, initial=EvidenceKind.FILE)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    source = forms.CharField(
        required=False, max_length=2048, help_text="The host or resource ARN it came from."
    )


def _incident_for_reading(request: HttpRequest, reference: str) -> Incident:
    return get_object_or_404(Incident.objects.visible_to(page_user(request)), reference=reference)


def _incident_for(request: HttpRequest, reference: str, rule: Any, refusal: str) -> Incident:
    incident = _incident_for_reading(request, reference)
    if not rule(request.user, incident):
        raise PermissionDenied(refusal)
    return incident


def _item_of(incident: Incident, pk: int) -> EvidenceItem:
    item = get_object_or_404(EvidenceItem, pk=pk, incident=incident)
    item.incident = incident
    return item


def _back(incident: Incident, item: EvidenceItem | None = None) -> HttpResponse:
    url = reverse("incident-evidence", args=[incident.reference])
    return redirect(f"{url}#item-{item.pk}" if item else url)


def _evidence_page(
    request: HttpRequest, incident: Incident, upload_form: UploadForm | None = None
) -> HttpResponse:
    # Items and their custody in two queries, however many items there are.
    custody = CustodyEvent.objects.order_by("at", "id")
    items = list(
        EvidenceItem.objects.filter(incident=incident).prefetch_related(
            Prefetch("custody", queryset=custody)
        )
    )
    user = request.user
    return render(
        request,
        "evidence/incident_evidence.html",
        {
            "incident": incident,
            "items": items,
            "failed": [item for item in items if item.integrity_failed],
            "may_work": may_work(user, incident),
            "may_take_out": may_take_out(user, incident),
            "may_keep": may_keep(user, incident),
            "upload_form": upload_form or UploadForm(),
            "default_retention": services.default_retention(incident),
        },
        status=400 if upload_form is not None else 200,
    )


@login_required
def incident_evidence(request: HttpRequest, reference: str) -> HttpResponse:
    return _evidence_page(request, _incident_for_reading(request, reference))


@csrf_exempt
@login_required
@require_POST
def evidence_upload(request: HttpRequest, reference: str) -> HttpResponse:
    """Exempt from the middleware's CSRF check, which would parse the body (and so store
    the file) before anyone asked who is sending it. Who is asking is settled first; the
    CSRF check follows in `_record_upload`."""
    incident = _incident_for(
        request, reference, may_work, "You can read this incident's evidence but not add to it."
    )
    handler = StoreUploadHandler(incident)
    request.upload_handlers = [handler]
    try:
        return _record_upload(request, incident)
    finally:
        handler.discard_uncommitted()


@csrf_protect
def _record_upload(request: HttpRequest, incident: Incident) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _evidence_page(request, incident, upload_form=form)
    upload: StreamedFile = form.cleaned_data["file"]
    item = services.record_upload(
        page_actor(request),
        incident,
        upload.commit(),
        upload.placement,
        store=upload.store,
        kind=form.cleaned_data["kind"],
        description=form.cleaned_data["description"],
        source=form.cleaned_data["source"],
        client_address=client_address(request),
    )
    messages.success(request, f"Stored {item.name}: sha256 {item.sha256}.")
    return _back(incident, item)


@login_required
@require_POST
def evidence_download(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    """Issues a link, recorded, and follows it: the bytes come from the API's download."""
    incident = _incident_for(
        request, reference, may_take_out, "You may not take evidence out of the store."
    )
    item = _item_of(incident, pk)
    try:
        token = services.issue_download_link(page_actor(request), item, client_address(request))
    except StateConflict as refusal:
        messages.error(request, str(refusal))
        return _back(incident, item)
    return redirect("evidence-download", token=token)


@login_required
@require_POST
def evidence_verify(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for(
        request, reference, may_work, "You can read this incident's evidence but not verify it."
    )
    item = _item_of(incident, pk)
    result = Integrity(services.verify(item, page_actor(request)))
    if result in FAILED_INTEGRITY:
        messages.error(request, f"{item.name}: {result.label.lower()}.")
    else:
        messages.success(request, f"{item.name}: {result.label.lower()}.")
    return _back(incident, item)


@login_required
@require_POST
def evidence_legal_hold(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    incident = _incident_for(
        request, reference, may_keep, "Only a lead sets or lifts a legal hold."
    )
    item = _item_of(incident, pk)
    on = request.POST.get("on") == "1"
    reason = request.POST.get("reason", "").strip()[:500]
    if on and not reason:
        messages.error(request, "Say what the legal hold is for.")
        return _back(incident, item)
    services.set_legal_hold(page_actor(request), item, on, reason)
    messages.success(request, f"Legal hold {'set on' if on else 'lifted from'} {item.name}.")
    return _back(incident, item)
