"""Evidence under /api/v1/incidents/{reference}/evidence/, its manifest, its download links
and the key that signs manifests.

Every change goes through `evidence.services`, which writes the custody event and the
timeline entry; who may ask for what is in `evidence.api.permissions`.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet
from django.http import Http404, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
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
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases.api.views import INCIDENT_IN_PATH, REFUSED, IncidentInPath, actor_of
from cases.models import Incident
from evidence import manifest, services
from evidence.api.permissions import KEEP, READ, TAKE_OUT, WORK, EvidencePermission, may_take_out
from evidence.api.serializers import (
    CustodyEventSerializer,
    DisposeSerializer,
    DownloadLinkSerializer,
    EvidenceItemSerializer,
    LegalHoldSerializer,
    RetentionSerializer,
    TransferSerializer,
    UploadSerializer,
)
from evidence.models import DownloadLink, EvidenceItem
from evidence.stores import HashMismatch, StoreError
from evidence.uploads import client_address, store_body
from irportal.errors import StateConflict

GONE = OpenApiResponse(
    inline_serializer("Gone", {"detail": serializers.CharField(), "code": serializers.CharField()}),
    description="The link was used already or has expired; ask for another.",
)


@extend_schema(
    parameters=[INCIDENT_IN_PATH],
    request={"application/octet-stream": OpenApiTypes.BINARY},
    responses={201: EvidenceItemSerializer},
    summary="Upload a file as evidence: the body is the file",
)
class EvidenceUploadView(IncidentInPath, APIView):
    """The body streams into the evidence store, hashed on the way; metadata goes in the
    query string (`?name=disk.img&kind=disk_snapshot&sha256=…`)."""

    permission_classes = [permissions.IsAuthenticated, EvidencePermission]
    parser_classes: list[Any] = []  # the body is read as a stream, never parsed
    # An APIView has no actions; this one is named for `EvidencePermission`'s map.
    action = "upload"
    access = {"upload": WORK}

    @extend_schema(parameters=[UploadSerializer])
    def post(self, request: Request, incident_reference: str) -> Response:
        incident = self.incident
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
        except HashMismatch as mismatch:
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


@extend_schema(parameters=[INCIDENT_IN_PATH])
@extend_schema_view(
    list=extend_schema(summary="The incident's evidence items"),
    retrieve=extend_schema(
        summary="One evidence item",
        description="Reading an item's record is itself a custody event (`viewed`).",
    ),
)
class EvidenceItemViewSet(
    IncidentInPath, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = EvidenceItemSerializer
    permission_classes = [permissions.IsAuthenticated, EvidencePermission]
    filterset_fields = ["kind", "integrity", "legal_hold", "store", "retention_class"]
    search_fields = ["name", "description", "source", "sha256"]
    ordering_fields = ["acquired_at", "size", "retain_until", "verified_at"]
    lookup_value_regex = r"\d+"

    # Every action names its rule; `EvidencePermission` refuses any action missing here.
    access = {
        "list": READ,
        "retrieve": READ,
        "custody": READ,
        "download_link": TAKE_OUT,
        "verify": WORK,
        "transfer": TAKE_OUT,
        "legal_hold": KEEP,
        "retention": KEEP,
        "dispose": KEEP,
    }

    def get_queryset(self) -> QuerySet[EvidenceItem]:
        if getattr(self, "swagger_fake_view", False):
            return EvidenceItem.objects.none()
        return EvidenceItem.objects.filter(incident=self.incident)

    def get_object(self) -> EvidenceItem:
        item: EvidenceItem = super().get_object()
        # Custody events name the incident; it was read already, with the visibility check.
        item.incident = self.incident
        return item

    def _answer(self, item: EvidenceItem) -> Response:
        item.refresh_from_db()
        return Response(self.get_serializer(item).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = self.get_object()
        services.viewed(actor_of(request), item, client_address(request._request))
        return Response(self.get_serializer(item).data)

    @extend_schema(
        responses=CustodyEventSerializer(many=True), summary="The item's chain of custody"
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def custody(self, request: Request, incident_reference: str, pk: str) -> Response:
        events = self.get_object().custody.order_by("at", "id")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(CustodyEventSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={201: DownloadLinkSerializer, 409: REFUSED},
        summary="A short-lived link to download the item once",
        description="The link works once, for you only, for EVIDENCE_DOWNLOAD_LINK_SECONDS.",
    )
    @action(detail=True, methods=["post"], url_path="download-link")
    def download_link(self, request: Request, incident_reference: str, pk: str) -> Response:
        item = self.get_object()
        token = services.issue_download_link(
            actor_of(request), item, client_address(request._request)
        )
        link = DownloadLink.objects.get(token_hash=DownloadLink.hash_of(token))
        url = request.build_absolute_uri(reverse("evidence-download", args=[token]))
        answer = DownloadLinkSerializer({"url": url, "expires_at": link.expires_at})
        return Response(answer.data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={200: EvidenceItemSerializer},
        summary="Re-hash the stored bytes now",
        description=(
            "Re-hashes the stored bytes (a snapshot: looks it up in its account). A mismatch, "
            "a missing object, one that could not be read or a snapshot in error sets "
            "`integrity` and is recorded."
        ),
    )
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, incident_reference: str, pk: str) -> Response:
        item = self.get_object()
        services.verify(item, actor_of(request))
        return self._answer(item)

    @extend_schema(
        request=TransferSerializer,
        responses={201: CustodyEventSerializer},
        summary="Record that a copy left IR Portal's custody",
    )
    @action(detail=True, methods=["post"])
    def transfer(self, request: Request, incident_reference: str, pk: str) -> Response:
        item = self.get_object()
        given = TransferSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        event = services.transfer_out(actor_of(request), item, **given.validated_data)
        return Response(CustodyEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=LegalHoldSerializer,
        responses={200: EvidenceItemSerializer},
        summary="Set or lift a legal hold (leads)",
    )
    @action(detail=True, methods=["post"], url_path="legal-hold")
    def legal_hold(self, request: Request, incident_reference: str, pk: str) -> Response:
        item = self.get_object()
        given = LegalHoldSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        services.set_legal_hold(actor_of(request), item, **given.validated_data)
        return self._answer(item)

    @extend_schema(
        request=RetentionSerializer,
        responses={200: EvidenceItemSerializer, 409: REFUSED},
        summary="Keep the item longer (leads)",
        description="Refused with 409 when it would shorten retention.",
    )
    @action(detail=True, methods=["post"])
    def retention(self, request: Request, incident_reference: str, pk: str) -> Response:
        item = self.get_object()
        given = RetentionSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        services.extend_retention(
            actor_of(request),
            item,
            retention_class=given.validated_data.get("retention_class"),
            until=given.validated_data.get("retain_until"),
        )
        return self._answer(item)

    @extend_schema(
        request=DisposeSerializer,
        responses={200: EvidenceItemSerializer, 409: REFUSED},
        summary="Dispose of the item's bytes after its retention (leads)",
        description="Refused with 409 before `retain_until` or under legal hold. The record "
        "and its chain of custody stay.",
    )
    @action(detail=True, methods=["post"])
    def dispose(self, request: Request, incident_reference: str, pk: str) -> Response:
        item = self.get_object()
        given = DisposeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        services.dispose(actor_of(request), item, **given.validated_data)
        return self._answer(item)


class DocumentRenderer(BaseRenderer):
    """Hands bytes the view made through as they are; anything else (an error) as JSON."""

    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return data if isinstance(data, bytes) else json.dumps(data).encode()


class ManifestJsonRenderer(DocumentRenderer):
    media_type = "application/json"
    format = "json"


class ManifestCsvRenderer(DocumentRenderer):
    media_type = "text/csv"
    format = "csv"


class PemRenderer(DocumentRenderer):
    media_type = "application/x-pem-file"
    format = "pem"


@extend_schema(
    parameters=[
        INCIDENT_IN_PATH,
        OpenApiParameter(
            "format", OpenApiTypes.STR, enum=["json", "csv"], description="json (the default)"
        ),
    ],
    responses={
        (200, "application/json"): OpenApiTypes.OBJECT,
        (200, "text/csv"): OpenApiTypes.STR,
    },
    summary="The incident's signed evidence manifest",
    description="Items, hashes and custody events. The response header X-Evidence-Signature "
    "holds the base64 Ed25519 signature of the exact bytes; check it with the key from "
    "/api/v1/evidence-signing-key/.",
)
class EvidenceManifestView(IncidentInPath, APIView):
    permission_classes = [permissions.IsAuthenticated]
    # `?format=` is DRF's own switch between renderers: one renderer per manifest format.
    renderer_classes = [ManifestJsonRenderer, ManifestCsvRenderer]

    def get(self, request: Request, incident_reference: str) -> HttpResponse:
        incident: Incident = self.incident
        built = manifest.build(incident)
        extension = request.accepted_renderer.format  # type: ignore[attr-defined]
        document = manifest.as_csv(built) if extension == "csv" else manifest.as_json(built)
        response = HttpResponse(document, content_type=request.accepted_media_type)
        response["X-Evidence-Signature"] = manifest.sign(document)
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=f"{incident.reference}-evidence-manifest.{extension}"
        )
        return response

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:  # how DRF says no renderer has the `?format=` asked for
            raise serializers.ValidationError({"format": "json or csv"}) from None


@extend_schema(
    responses={(200, "application/x-pem-file"): OpenApiTypes.STR},
    summary="The public key that verifies evidence manifests (PEM)",
)
class EvidenceSigningKeyView(APIView):
    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [JSONRenderer, PemRenderer]

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(manifest.public_key_pem(), content_type=PemRenderer.media_type)


@extend_schema(
    parameters=[OpenApiParameter("token", OpenApiTypes.STR, OpenApiParameter.PATH)],
    responses={
        (200, "application/octet-stream"): OpenApiTypes.BINARY,
        404: OpenApiResponse(description="No such link for you."),
        410: GONE,
    },
    summary="Download an evidence item through a link issued to you",
    description="Streams the bytes once. The X-Evidence-SHA256 header carries the hash "
    "recorded when the item was acquired. A link that is not yours answers 404, as one "
    "that never existed; a used or expired one answers 410.",
)
class EvidenceDownloadView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request: Request, token: str) -> HttpResponseBase:
        self._check_still_allowed(request, token)
        try:
            item, chunks = services.redeem_download_link(
                actor_of(request), token, client_address(request._request)
            )
        except LookupError:
            raise NotFound("No such download link.") from None
        except StateConflict as refusal:
            return Response({"detail": str(refusal), "code": "gone"}, status=status.HTTP_410_GONE)
        except StoreError as error:
            return Response({"detail": str(error), "code": "gone"}, status=status.HTTP_410_GONE)
        response = StreamingHttpResponse(
            chunks, content_type=item.content_type or "application/octet-stream"
        )
        response["Content-Disposition"] = content_disposition_header(True, item.name)
        response["X-Evidence-SHA256"] = item.sha256
        if item.size is not None:
            response["Content-Length"] = str(item.size)
        response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def _check_still_allowed(request: Request, token: str) -> None:
        """The link's holder must still see the incident and may still take evidence out:
        being taken off a restricted incident ends the links issued before."""
        link = (
            DownloadLink.objects.filter(
                token_hash=DownloadLink.hash_of(token), issued_to_id=request.user.pk
            )
            .select_related("item__incident")
            .first()
        )
        if link is None:
            raise NotFound("No such download link.")
        incident = link.item.incident
        visible = Incident.objects.visible_to(request.user).filter(pk=incident.pk).exists()
        if not visible:
            raise NotFound("No such download link.")
        if not may_take_out(request.user, incident):
            raise PermissionDenied("You may not take evidence out of the store.")
