"""The triage queue as a page: findings no rule took into an incident, and what became of
the others. Decisions go through the same service as the API."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cases.choices import Category
from findings import services
from findings.choices import Decision, FindingSeverity, Source
from findings.models import Finding
from irportal import roles
from irportal.errors import StateConflict
from irportal.pages import page_actor, page_user


class HandTriageForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[(Decision.OPENED, "Open incident"), (Decision.SUPPRESSED, "Suppress")]
    )
    category = forms.ChoiceField(choices=Category.choices, required=False)
    reason = forms.CharField(required=False, max_length=300)


@login_required
def finding_list(request: HttpRequest) -> HttpResponse:
    findings = (
        Finding.objects.visible_to(page_user(request))
        .select_related("incident", "rule")
        .defer("raw")
    )
    decision = request.GET.get("decision", Decision.UNTRIAGED)
    if decision in Decision.values:
        findings = findings.filter(decision=decision)
    if source := request.GET.get("source"):
        findings = findings.filter(source=source)
    if severity := request.GET.get("severity"):
        findings = findings.filter(severity=severity)
    return render(
        request,
        "findings/finding_list.html",
        {
            "page": Paginator(findings, 50).get_page(request.GET.get("page")),
            "decisions": Decision.choices,
            "sources": Source.choices,
            "severities": FindingSeverity.choices,
            "chosen": {"decision": decision, "source": source, "severity": severity},
            "categories": Category.choices,
            "may_triage": roles.may_open_incidents(request.user),
        },
    )


@login_required
@require_POST
def finding_triage(request: HttpRequest, pk: int) -> HttpResponse:
    finding = get_object_or_404(Finding.objects.visible_to(page_user(request)), pk=pk)
    if not roles.may_open_incidents(request.user):
        raise PermissionDenied("Your role does not triage findings.")
    form = HandTriageForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose what to do with the finding.")
    elif form.cleaned_data["decision"] == Decision.SUPPRESSED and not form.cleaned_data["reason"]:
        messages.error(request, "Say why the finding is benign to suppress it.")
    else:
        try:
            decided = services.triage_by_hand(
                page_actor(request),
                finding,
                form.cleaned_data["decision"],
                reason=form.cleaned_data["reason"],
                category=form.cleaned_data["category"] or Category.OTHER,
            )
            messages.success(request, f"{decided.get_decision_display()}: {decided.type}")
            if decided.incident:
                return redirect("incident-detail", reference=decided.incident.reference)
        except StateConflict as refusal:
            messages.error(request, str(refusal))
    return redirect("finding-list")
