from __future__ import annotations

from functools import cached_property
from typing import Any, cast

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from cases import services
from cases.api import filters
from cases.api.serializers import (
    AffectedResourceSerializer,
    CommunicationSerializer,
    CommunicationTemplateSerializer,
    IncidentSerializer,
    ObjectiveSerializer,
    ParticipantSerializer,
    TaskSerializer,
    TimelineEntrySerializer,
    TimelineNoteSerializer,
    TransitionSerializer,
)
from cases.choices import CommunicationStatus
from cases.models import (
    AffectedResource,
    Communication,
    CommunicationNotAllowed,
    CommunicationTemplate,
    Incident,
    IncidentPart,
    Objective,
    Participant,
    Task,
    TimelineEntry,
)
from irportal import roles
from irportal.actors import Actor

REFUSED = OpenApiResponse(
    inline_serializer(
        "Refusal", {"detail": serializers.CharField(), "code": serializers.CharField()}
    ),
    description="The current state refuses this change; `detail` says why.",
)


def actor_of(request: Request) -> Actor:
    return Actor.for_user(request.user)  # type: ignore[arg-type]


class IncidentPermission(permissions.BasePermission):
    """Reading follows visibility (the queryset); changing needs `Incident.may_change`."""

    message = "You can read this incident but not change it."

    def has_permission(self, request: Request, view: Any) -> bool:
        if view.action == "create":
            return roles.may_open_incidents(request.user)
        return True

    def has_object_permission(self, request: Request, view: Any, obj: Incident) -> bool:
        return request.method in permissions.SAFE_METHODS or obj.may_change(request.user)


@extend_schema_view(
    list=extend_schema(summary="Incidents you can see"),
    create=extend_schema(summary="Open an incident"),
)
class IncidentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = IncidentSerializer
    permission_classes = [permissions.IsAuthenticated, IncidentPermission]
    lookup_field = "reference"
    filterset_class = filters.IncidentFilter
    search_fields = ["reference", "title", "summary"]
    ordering_fields = ["reported_at", "detected_at", "severity", "status", "reference"]

    def get_queryset(self) -> QuerySet[Incident]:
        return Incident.objects.visible_to(self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.open_incident(
            actor_of(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        incident = cast(Incident, serializer.instance)
        services.change(actor_of(self.request), incident, serializer.validated_data)

    @extend_schema(
        request=TransitionSerializer,
        responses={200: IncidentSerializer, 409: REFUSED},
        summary="Move the incident to another status",
        description="Refused with 409, and the reason, when the lifecycle does not allow it.",
    )
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, reference: str) -> Response:
        incident = self.get_object()
        change = TransitionSerializer(data=request.data)
        change.is_valid(raise_exception=True)
        incident.move_to(actor_of(request), **change.validated_data)
        return Response(IncidentSerializer(incident, context={"request": request}).data)

    @extend_schema(request=None, responses={200: IncidentSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, reference: str) -> Response:
        """Take the incident on. Acknowledging it again changes nothing."""
        incident = self.get_object()
        incident.acknowledge(actor_of(request))
        return Response(IncidentSerializer(incident, context={"request": request}).data)


INCIDENT_IN_PATH = OpenApiParameter(
    "incident_reference", OpenApiTypes.STR, OpenApiParameter.PATH, description="e.g. IR-2026-0042"
)


class IncidentPartPermission(permissions.BasePermission):
    message = "You can read this incident but not change it."

    def has_permission(self, request: Request, view: Any) -> bool:
        # Resolving the incident answers 404 for one the user cannot see.
        incident = view.incident
        return request.method in permissions.SAFE_METHODS or incident.may_change(request.user)


class IncidentInPath(GenericAPIView):  # type: ignore[type-arg]
    """For views under /incidents/{reference}/: the incident, if the user can see it."""

    @cached_property
    def incident(self) -> Incident:
        visible = Incident.objects.visible_to(self.request.user)
        return get_object_or_404(visible, reference=self.kwargs["incident_reference"])


@extend_schema(parameters=[INCIDENT_IN_PATH])
class IncidentPartViewSet(IncidentInPath, viewsets.ModelViewSet):
    """Parts of one incident, under /incidents/{reference}/; every change is recorded."""

    permission_classes = [permissions.IsAuthenticated, IncidentPartPermission]
    model: type[IncidentPart]

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()  # type: ignore[attr-defined]
        return self.model.objects.filter(incident=self.incident)  # type: ignore[attr-defined]

    def get_serializer_context(self) -> Any:
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False):
            context["incident"] = self.incident
        return context

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        part = self.model(incident=self.incident, **serializer.validated_data)  # type: ignore[misc]
        serializer.instance = services.add(actor_of(self.request), part)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        part = cast(IncidentPart, serializer.instance)
        services.change(actor_of(self.request), part, serializer.validated_data)

    def perform_destroy(self, instance: Model) -> None:
        services.remove(actor_of(self.request), instance)  # type: ignore[arg-type]


class ParticipantViewSet(IncidentPartViewSet):
    model = Participant
    serializer_class = ParticipantSerializer
    filterset_fields = ["role"]
    ordering_fields = ["added_at"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("user")


class AffectedResourceViewSet(IncidentPartViewSet):
    model = AffectedResource
    serializer_class = AffectedResourceSerializer
    filterset_fields = ["account_id", "region", "resource_type"]
    search_fields = ["identifier"]


class ObjectiveViewSet(IncidentPartViewSet):
    model = Objective
    serializer_class = ObjectiveSerializer
    filterset_fields = ["kind", "status"]
    ordering_fields = ["due_at", "created_at"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("owner")


class TaskViewSet(IncidentPartViewSet):
    model = Task
    serializer_class = TaskSerializer
    filterset_class = filters.TaskFilter
    search_fields = ["title"]
    ordering_fields = ["due_at", "created_at"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("assignee")


class CommunicationViewSet(IncidentPartViewSet):
    model = Communication
    serializer_class = CommunicationSerializer
    filterset_fields = ["audience", "channel", "status"]
    search_fields = ["subject", "body"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("drafted_by", "approved_by", "sent_by")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.validated_data["drafted_by"] = self.request.user
        super().perform_create(serializer)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        self._require_draft(cast(Communication, serializer.instance), "edited")
        super().perform_update(serializer)

    def perform_destroy(self, instance: Communication) -> None:  # type: ignore[override]
        self._require_draft(instance, "discarded")
        super().perform_destroy(instance)

    @extend_schema(request=None, responses={200: CommunicationSerializer, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, incident_reference: str, pk: str) -> Response:
        """A lead approves a draft for sending."""
        if not roles.is_lead(request.user):
            raise PermissionDenied("Only a lead can approve a communication.")
        communication = self.get_object()
        communication.approve(actor_of(request))
        return Response(self.get_serializer(communication).data)

    @extend_schema(request=None, responses={200: CommunicationSerializer, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def send(self, request: Request, incident_reference: str, pk: str) -> Response:
        """Record that an approved communication went out."""
        communication = self.get_object()
        communication.mark_sent(actor_of(request))
        return Response(self.get_serializer(communication).data)

    @staticmethod
    def _require_draft(communication: Communication, verb: str) -> None:
        if communication.status != CommunicationStatus.DRAFT:
            raise CommunicationNotAllowed(
                f"only a draft can be {verb}; this communication is {communication.status}"
            )


@extend_schema(parameters=[INCIDENT_IN_PATH])
class TimelineViewSet(
    IncidentInPath, mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """The incident's timeline: read it in either order, add notes and decisions to it."""

    serializer_class = TimelineEntrySerializer
    permission_classes = [permissions.IsAuthenticated, IncidentPartPermission]
    filterset_fields = ["kind", "actor_kind"]
    search_fields = ["summary"]
    ordering_fields = ["sequence", "occurred_at"]
    ordering = ["sequence"]

    def get_queryset(self) -> QuerySet[TimelineEntry]:
        if getattr(self, "swagger_fake_view", False):
            return TimelineEntry.objects.none()
        return TimelineEntry.objects.filter(incident=self.incident)

    @extend_schema(request=TimelineNoteSerializer, responses={201: TimelineEntrySerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        note = TimelineNoteSerializer(data=request.data)
        note.is_valid(raise_exception=True)
        entry = services.write_entry(actor_of(request), self.incident, **note.validated_data)
        return Response(TimelineEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class CommunicationTemplateViewSet(viewsets.ReadOnlyModelViewSet):
    """Templates to start a communication from; administered in the admin."""

    queryset = CommunicationTemplate.objects.filter(active=True)
    serializer_class = CommunicationTemplateSerializer
    filterset_fields = ["audience", "channel"]
