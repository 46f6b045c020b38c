from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from findings import services
from findings.api.serializers import (
    FindingDetailSerializer,
    FindingSerializer,
    HandTriageSerializer,
    QuarantinedEventSerializer,
    RulePreviewSerializer,
    TriageRuleSerializer,
)
from findings.models import Finding, QuarantinedEvent, TriageRule
from irportal import roles
from irportal.actors import Actor

# A batch larger than this is refused whole: split it.
MAX_EVENTS_PER_REQUEST = 500


class SendsEvents(permissions.BasePermission):
    message = "Only integrations and leads send events."

    def has_permission(self, request: Request, view: Any) -> bool:
        return roles.is_lead(request.user) or roles.INTEGRATION in roles.roles_of(request.user)


class IsLead(permissions.BasePermission):
    message = "Only leads may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return roles.is_lead(request.user)


class LeadsChange(permissions.BasePermission):
    """Anyone with a role reads; leads change."""

    message = "Only leads change triage rules."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return roles.is_lead(request.user) or bool(roles.roles_of(request.user))
        return roles.is_lead(request.user)


class EventsView(APIView):
    """Receive detector events: one EventBridge event, or a JSON array of up to 500."""

    permission_classes = [permissions.IsAuthenticated, SendsEvents]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 413: OpenApiTypes.OBJECT},
        examples=[
            OpenApiExample(
                "GuardDuty finding",
                value={"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "detail": {}},
                request_only=True,
            )
        ],
        summary="Send findings",
        description=(
            "Understood: 'GuardDuty Finding', 'Security Hub Findings - Imported' and 'AWS API "
            "Call via CloudTrail' events, bare GuardDuty findings (camelCase or PascalCase), "
            "GetFindings answers, CloudTrail records and log files, and a generic shape "
            "(source, title, severity, id, type, resource, first_seen). Each event's "
            "outcome is reported: new, updated, duplicate or rejected (kept in quarantine). "
            "A batch answers 200 when anything in it was accepted, 400 when nothing was."
        ),
    )
    def post(self, request: Request) -> Response:
        actor = Actor.for_user(request.user)  # type: ignore[arg-type]
        try:
            body = request.body
        except RequestDataTooBig:
            # In bytes: the default limit, 2.5 MiB, is not a whole number of MiB.
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            detail = f"The body is larger than {limit:,} bytes; send fewer events at a time."
            return Response({"detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)

        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as error:
            kept = services.quarantine_raw(
                actor, body.decode("utf-8", "replace"), f"not JSON: {error}"
            )
            return Response(
                {
                    "outcome": "rejected",
                    "error": f"The body is not JSON: {error}",
                    "quarantine": kept.pk,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )

        if isinstance(payload, list):
            return self._batch(actor, payload)
        result = services.ingest(actor, [payload])[0]
        code = status.HTTP_400_BAD_REQUEST if result.rejected else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)

    def _batch(self, actor: Actor, events: list[Any]) -> Response:
        if not events:
            return Response(
                {"detail": "The array holds no events."}, status=status.HTTP_400_BAD_REQUEST
            )
        if len(events) > MAX_EVENTS_PER_REQUEST:
            return Response(
                {
                    "detail": f"At most {MAX_EVENTS_PER_REQUEST} events a request; "
                    f"this one has {len(events)}."
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        results = services.ingest(actor, events)
        rejected = sum(r.rejected for r in results)
        code = status.HTTP_400_BAD_REQUEST if rejected == len(results) else status.HTTP_200_OK
        return Response(
            {
                "accepted": len(results) - rejected,
                "rejected": rejected,
                "results": [r.as_dict() for r in results],
            },
            status=code,
        )


class FindingViewSet(viewsets.ReadOnlyModelViewSet):
    filterset_fields = [
        "source",
        "severity",
        "decision",
        "account_id",
        "region",
        "incident__reference",
    ]
    search_fields = ["title", "type", "provider_id", "primary_resource"]
    # Not by severity: its values sort by name, not by rank.
    ordering_fields = ["received_at", "first_seen", "last_seen"]

    def get_queryset(self) -> QuerySet[Finding]:
        # The list never shows raw payloads, so it does not load them.
        findings = Finding.objects.visible_to(self.request.user).select_related("incident", "rule")
        return findings.defer("raw") if self.action == "list" else findings

    def get_serializer_class(self) -> Any:
        return FindingSerializer if self.action == "list" else FindingDetailSerializer

    @extend_schema(
        request=HandTriageSerializer,
        responses={
            200: FindingDetailSerializer,
            403: OpenApiTypes.OBJECT,
            409: OpenApiTypes.OBJECT,
        },
    )
    @action(detail=True, methods=["post"])
    def triage(self, request: Request, pk: str) -> Response:
        """Decide by hand: open an incident for the finding, attach it to one, or suppress it."""
        finding = self.get_object()
        if not roles.may_open_incidents(request.user):
            raise PermissionDenied("Your role does not triage findings.")
        decision = HandTriageSerializer(data=request.data, context={"request": request})
        decision.is_valid(raise_exception=True)
        incident = decision.validated_data.get("incident")
        if incident is not None and not incident.may_change(request.user):
            raise PermissionDenied("You can read that incident but not change it.")

        actor = Actor.for_user(request.user)  # type: ignore[arg-type]
        finding = services.triage_by_hand(actor, finding, **decision.validated_data)
        return Response(FindingDetailSerializer(finding, context={"request": request}).data)


class QuarantineViewSet(viewsets.ReadOnlyModelViewSet):
    """Events no parser understood, for leads to read and, once a parser is fixed, resubmit."""

    queryset = QuarantinedEvent.objects.select_related("resubmitted_by")
    serializer_class = QuarantinedEventSerializer
    permission_classes = [permissions.IsAuthenticated, IsLead]
    search_fields = ["error", "received_by"]

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def resubmit(self, request: Request, pk: str) -> Response:
        """Parse the kept payload again; on success it is ingested and marked resubmitted."""
        kept = self.get_object()
        try:
            payload = json.loads(kept.payload)
        except ValueError as error:
            return Response(
                {"detail": f"Still not JSON: {error}"}, status=status.HTTP_400_BAD_REQUEST
            )

        actor = Actor.for_user(request.user)  # type: ignore[arg-type]
        result = services.resubmit(actor, kept, payload)
        if result.rejected:
            return Response({"detail": f"Still not understood: {result.error}"}, status=400)
        return Response(result.as_dict())


class TriageRuleViewSet(viewsets.ModelViewSet):
    queryset = TriageRule.objects.select_related("commander", "target_incident")
    serializer_class = TriageRuleSerializer
    permission_classes = [permissions.IsAuthenticated, LeadsChange]
    filterset_fields = ["effect", "enabled"]
    search_fields = ["name", "description"]
    ordering_fields = ["position", "name"]

    @extend_schema(request=RulePreviewSerializer, responses={200: FindingSerializer(many=True)})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """Try a rule, unsaved, on the latest stored findings: what would it have matched?"""
        draft = RulePreviewSerializer(data=request.data)
        draft.is_valid(raise_exception=True)
        fields = dict(draft.validated_data)
        limit = fields.pop("limit")
        rule = TriageRule(**fields)
        recent = Finding.objects.visible_to(request.user).select_related("incident", "rule")[:limit]
        matched = [finding for finding in recent if rule.matches(finding)]
        return Response(
            {
                "tried": len(recent),
                "matched": len(matched),
                "findings": FindingSerializer(matched[:200], many=True).data,
                "at": timezone.now(),
            }
        )
