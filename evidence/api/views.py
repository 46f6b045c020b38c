"""Evidence under /api/v1/incidents/{reference}/evidence/."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases.api.views import INCIDENT_IN_PATH, IncidentInPath, actor_of
from evidence import services
from evidence.api.serializers import EvidenceItemSerializer, UploadSerializer
from evidence.uploads import ExpectedHashMismatch, client_address, store_body


@extend_schema(
    parameters=[INCIDENT_IN_PATH],
    request={"application/octet-stream": OpenApiTypes.BINARY},
    responses={201: EvidenceItemSerializer},
    summary="Upload a file as evidence: the body is the file",
)
class EvidenceUploadView(IncidentInPath, APIView):
    """The body streams into the evidence store, hashed on the way; metadata goes in the
    query string (`?name=disk.img&kind=disk_snapshot&sha256=…`)."""

    permission_classes = [permissions.IsAuthenticated]
    parser_classes: list[Any] = []  # the body is read as a stream, never parsed

    @extend_schema(parameters=[UploadSerializer])
    def post(self, request: Request, incident_reference: str) -> Response:
        incident = self.incident
        if not incident.may_change(request.user):
            raise PermissionDenied("You can read this incident but not add evidence to it.")
        meta = UploadSerializer(data=request.query_params)
        meta.is_valid(raise_exception=True)
        fields = meta.validated_data
        placement = services.placement_for(
            incident,
            fields["name"],
            content_type=request.content_type or "application/octet-stream",
            retention_class=fields.get("retention_class"),
        )
        try:
            stored, store = store_body(request._request, placement, fields.get("sha256", ""))
        except ExpectedHashMismatch as mismatch:
            raise serializers.ValidationError({"sha256": str(mismatch)}) from None
        item = services.record_upload(
            actor_of(request),
            incident,
            stored,
            placement,
            store=store,
            kind=fields["kind"],
            description=fields["description"],
            source=fields["source"],
            client_address=client_address(request._request),
        )
        return Response(EvidenceItemSerializer(item).data, status=status.HTTP_201_CREATED)
