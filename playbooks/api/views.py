from __future__ import annotations

import logging
from typing import Any, cast

from django.db.models import Prefetch, ProtectedError, QuerySet
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, parsers, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from cases.api.views import REFUSED, actor_of
from cases.models import Incident
from irportal import roles
from irportal.errors import StateConflict
from playbooks import accounts, actions, definitions, services
from playbooks.api import filters
from playbooks.api.serializers import (
    ActionRunSerializer,
    ActionSerializer,
    CloudAccountSerializer,
    PlaybookDocumentSerializer,
    PlaybookImportSerializer,
    PlaybookRunSerializer,
    PlaybookSerializer,
    ReasonSerializer,
    RequestActionSerializer,
    StartRunSerializer,
    describe_action,
)
from playbooks.models import ActionRun, CloudAccount, Playbook, PlaybookRun, RunStep
from playbooks.versions import differs, same_content, save_next_version

logger = logging.getLogger(__name__)

CANNOT_CHANGE = "You can read this incident but not change it."


class HasRole(permissions.BasePermission):
    """Anyone with a role reads (not a signed-in person with none); leads change."""

    message = "Accounts are read by those who hold a role and kept by leads."

    def has_permission(self, request: Request, view: Any) -> bool:
        if roles.is_lead(request.user):
            return True
        return request.method in permissions.SAFE_METHODS and bool(roles.roles_of(request.user))


class LeadsChange(permissions.BasePermission):
    """Anyone signed in reads: definitions say nothing about any incident. Leads change."""

    message = "Only leads change playbooks."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or roles.is_lead(request.user)


class ChangesTheIncident(permissions.BasePermission):
    """Reading follows the incident's visibility (the queryset); acting on a run or an
    action run needs `Incident.may_change` on its incident."""

    message = CANNOT_CHANGE

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or obj.incident.may_change(request.user)


def require_may_change(request: Request, incident: Incident) -> None:
    if not incident.may_change(request.user):
        raise PermissionDenied(CANNOT_CHANGE)


class YamlParser(parsers.BaseParser):
    """A YAML document, handed on as text: `definitions.from_yaml` reads it."""

    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return {"yaml": stream.read().decode("utf-8")}
        except UnicodeDecodeError:
            raise ParseError("The document is not UTF-8 text.") from None


class OtherYamlParser(YamlParser):
    media_type = "application/x-yaml"


class TextYamlParser(YamlParser):
    media_type = "text/yaml"


# --- Accounts -----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Registered cloud accounts"),
    create=extend_schema(summary="Register an account (leads)"),
    destroy=extend_schema(
        summary="Remove an account (leads)",
        responses={204: None, 409: REFUSED},
        description="Refused with 409 once actions ran in it: disable it instead.",
    ),
)
class CloudAccountViewSet(viewsets.ModelViewSet):
    """The AWS accounts IR Portal acts in and the role it assumes in each. Nothing secret
    is stored: credentials come from STS when an action runs."""

    queryset = CloudAccount.objects.all()
    serializer_class = CloudAccountSerializer
    permission_classes = [permissions.IsAuthenticated, HasRole]
    filterset_class = filters.CloudAccountFilter
    search_fields = ["account_id", "name", "notes"]
    ordering_fields = ["name", "account_id", "checked_at"]

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        super().perform_create(serializer)
        self._log("registered", cast(CloudAccount, serializer.instance))

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        super().perform_update(serializer)
        self._log("changed", cast(CloudAccount, serializer.instance))

    def perform_destroy(self, instance: CloudAccount) -> None:
        try:
            instance.delete()
        except ProtectedError:
            raise StateConflict(
                f"actions ran in account {instance.account_id}; disable it instead"
            ) from None
        self._log("removed", instance)

    def _log(self, verb: str, account: CloudAccount) -> None:
        logger.info("account.%s account=%s by=%s", verb, account.account_id, self.request.user)

    @extend_schema(request=None, responses={200: CloudAccountSerializer})
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str) -> Response:
        """Assume the account's response role now; the answer is kept on the account."""
        account = accounts.check_access(self.get_object())
        return Response(self.get_serializer(account).data)


# --- The action library -------------------------------------------------------------------


class ActionViewSet(viewsets.GenericViewSet):  # type: ignore[type-arg]
    """The response actions playbook steps and direct requests can use."""

    serializer_class = ActionSerializer
    lookup_field = "name"
    lookup_value_regex = r"[a-z0-9_]+"
    # A list in memory, not a queryset: nothing to filter or order in the database.
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return [describe_action(a) for _, a in sorted(actions.REGISTRY.items())]

    @extend_schema(summary="The action library")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, name: str) -> Response:
        try:
            found = actions.get(name)
        except KeyError:
            raise Http404 from None
        return Response(self.get_serializer(describe_action(found)).data)


# --- Playbooks ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Playbooks",
        description="The newest version of each, unless `all_versions` is true.",
    ),
    create=extend_schema(summary="Write a playbook (leads)"),
    update=extend_schema(
        summary="Change a playbook (leads)",
        description="A change to name, description or definition is saved as the next "
        "version (the one returned); the version changed stays as it was. `enabled` is "
        "switched in place.",
    ),
    partial_update=extend_schema(
        summary="Change a playbook (leads)",
        description="As PUT: content changes make the next version.",
    ),
)
class PlaybookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Playbook.objects.all()
    serializer_class = PlaybookSerializer
    permission_classes = [permissions.IsAuthenticated, LeadsChange]
    filterset_class = filters.PlaybookFilter
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "name", "created_at"]

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # Filters (and the newest-only default) shape the list; a version is reached by
        # its id whatever they say.
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        draft = Playbook(**serializer.validated_data)
        serializer.instance = save_next_version(draft, self.request.user.get_username())

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        stored = cast(Playbook, serializer.instance)
        changes = dict(serializer.validated_data)
        if not differs(stored, changes):
            if "enabled" in changes and changes["enabled"] != stored.enabled:
                stored.enabled = changes["enabled"]
                stored.save(update_fields=["enabled"])
            return
        draft = Playbook.objects.get(pk=stored.pk)
        for name, value in changes.items():
            setattr(draft, name, value)
        serializer.instance = save_next_version(draft, self.request.user.get_username())

    @extend_schema(
        responses={(200, "application/yaml"): OpenApiTypes.STR},
        summary="Export as YAML",
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str) -> HttpResponse:
        playbook = self.get_object()
        document = definitions.to_yaml(
            playbook.slug, playbook.name, playbook.description, playbook.definition
        )
        answer = HttpResponse(document, content_type="application/yaml; charset=utf-8")
        filename = f"{playbook.slug}.v{playbook.version}.yaml"
        answer["Content-Disposition"] = f'attachment; filename="{filename}"'
        return answer

    @extend_schema(
        request={
            "application/yaml": OpenApiTypes.STR,
            "application/json": PlaybookImportSerializer,
        },
        responses={201: PlaybookSerializer, 200: PlaybookSerializer},
        summary="Import a YAML document (leads)",
        description="The body is the YAML document itself, or JSON {yaml: document}. A new "
        "slug is saved as version 1; a known one as its next version, unless the newest "
        "version already says the same: then that version is returned with 200.",
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[YamlParser, OtherYamlParser, TextYamlParser, parsers.JSONParser],
    )
    def import_yaml(self, request: Request) -> Response:
        wrapper = PlaybookImportSerializer(data=request.data)
        wrapper.is_valid(raise_exception=True)
        document = PlaybookDocumentSerializer(
            data=definitions.from_yaml(wrapper.validated_data["yaml"])
        )
        document.is_valid(raise_exception=True)
        playbook, created = self._import(document.validated_data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(PlaybookSerializer(playbook, context={"request": request}).data, code)

    def _import(self, document: dict[str, Any]) -> tuple[Playbook, bool]:
        definition = {"steps": document["steps"]}
        newest = Playbook.objects.filter(slug=document["slug"]).order_by("-version").first()
        if newest and same_content(newest, document["name"], document["description"], definition):
            return newest, False
        enabled = document.get("enabled", newest.enabled if newest else True)
        draft = Playbook(
            slug=document["slug"],
            name=document["name"],
            description=document["description"],
            definition=definition,
            enabled=enabled,
        )
        return save_next_version(draft, self.request.user.get_username()), True


# --- Runs ---------------------------------------------------------------------------------


STEP_KEY = OpenApiParameter(
    "key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The step's id in the playbook."
)


def runs_visible_to(user: Any) -> QuerySet[PlaybookRun]:
    # Steps and their action runs come in one query each, whatever the number of runs.
    steps = RunStep.objects.select_related("action_run__incident", "action_run__account")
    return (
        PlaybookRun.objects.filter(incident__in=Incident.objects.visible_to(user))
        .select_related("incident", "playbook", "rule")
        .prefetch_related(Prefetch("steps", queryset=steps))
    )


@extend_schema_view(
    list=extend_schema(summary="Playbook runs on incidents you can see"),
    create=extend_schema(
        request=StartRunSerializer,
        responses={201: PlaybookRunSerializer, 409: REFUSED},
        summary="Start a playbook on an incident",
        description="Runs up to its first approval gate. Refused with 400, naming each "
        "step, when a step cannot get its inputs; with 409 when the playbook is disabled "
        "or the incident closed.",
    ),
)
class PlaybookRunViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = PlaybookRunSerializer
    permission_classes = [permissions.IsAuthenticated, ChangesTheIncident]
    filterset_class = filters.PlaybookRunFilter
    ordering_fields = ["started_at", "finished_at"]

    def get_queryset(self) -> QuerySet[PlaybookRun]:
        return runs_visible_to(self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        asked = StartRunSerializer(data=request.data, context={"request": request})
        asked.is_valid(raise_exception=True)
        incident = asked.validated_data["incident"]
        require_may_change(request, incident)
        run = services.start_run(
            actor_of(request),
            incident,
            asked.validated_data["playbook"],
            dry_run=asked.validated_data["dry_run"],
            inputs=asked.validated_data["inputs"],
        )
        return self._answer(run, status.HTTP_201_CREATED)

    @extend_schema(
        request=ReasonSerializer,
        responses={200: PlaybookRunSerializer, 409: REFUSED},
        summary="Cancel a run",
        description="Steps not started are cancelled; a step already acting finishes.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        reason = self._reason(request)
        services.cancel(actor_of(request), run, reason)
        return self._answer(run)

    @extend_schema(
        request=None,
        parameters=[STEP_KEY],
        responses={200: PlaybookRunSerializer, 409: REFUSED},
        summary="Approve a gated step (leads)",
    )
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<key>[^/.]+)/approve")
    def approve(self, request: Request, pk: str, key: str) -> Response:
        step = self._gated_step(request, key)
        services.approve(actor_of(request), step)
        return self._answer(step.run)

    @extend_schema(
        request=ReasonSerializer,
        parameters=[STEP_KEY],
        responses={200: PlaybookRunSerializer, 409: REFUSED},
        summary="Reject a gated step (leads)",
        description="The step is skipped and the run goes on with the steps after it.",
    )
    @action(detail=True, methods=["post"], url_path=r"steps/(?P<key>[^/.]+)/reject")
    def reject(self, request: Request, pk: str, key: str) -> Response:
        step = self._gated_step(request, key)
        services.reject(actor_of(request), step, self._reason(request))
        return self._answer(step.run)

    def _gated_step(self, request: Request, key: str) -> RunStep:
        run = self.get_object()  # 404 when hidden, 403 when read-only
        if not roles.is_lead(request.user):
            raise PermissionDenied("Only a lead approves or rejects a step.")
        step = next((s for s in run.steps.all() if s.key == key), None)
        if step is None:
            raise Http404(f"The run has no step {key!r}.")
        return step

    @staticmethod
    def _reason(request: Request) -> str:
        given = ReasonSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        return str(given.validated_data["reason"])

    def _answer(self, run: PlaybookRun, code: int = status.HTTP_200_OK) -> Response:
        fresh = runs_visible_to(self.request.user).get(pk=run.pk)
        return Response(self.get_serializer(fresh).data, status=code)


@extend_schema_view(
    list=extend_schema(summary="Action runs on incidents you can see"),
    create=extend_schema(
        request=RequestActionSerializer,
        responses={
            201: OpenApiResponse(ActionRunSerializer, description="Queued (or, dry, done)."),
            200: OpenApiResponse(
                ActionRunSerializer,
                description="The same action, target and inputs were asked for before: "
                "the earlier run, not a second one.",
            ),
            409: REFUSED,
        },
        summary="Ask for one response action",
        description="Actions that need approval may be asked for directly by leads only.",
    ),
)
class ActionRunViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ActionRunSerializer
    permission_classes = [permissions.IsAuthenticated, ChangesTheIncident]
    filterset_class = filters.ActionRunFilter
    search_fields = ["target"]
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self) -> QuerySet[ActionRun]:
        visible = Incident.objects.visible_to(self.request.user)
        return ActionRun.objects.filter(incident__in=visible).select_related("incident", "account")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        asked = RequestActionSerializer(data=request.data, context={"request": request})
        asked.is_valid(raise_exception=True)
        incident = asked.validated_data["incident"]
        require_may_change(request, incident)
        try:
            action_run, created = services.request_action(
                actor_of(request),
                incident,
                asked.validated_data["action"],
                asked.validated_data["parameters"],
                dry_run=asked.validated_data["dry_run"],
            )
        except serializers.ValidationError as error:
            # The inputs are the body's `parameters`: say so in where the errors point.
            raise serializers.ValidationError({"parameters": error.detail}) from None
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(action_run).data, status=code)

    @extend_schema(
        request=None,
        responses={202: ActionRunSerializer, 409: REFUSED},
        summary="Undo an action",
        description="Queued for a worker; refused with 409 when the action cannot be "
        "undone, did not succeed or changed nothing.",
    )
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str) -> Response:
        action_run = services.request_undo(actor_of(request), self.get_object())
        return Response(self.get_serializer(action_run).data, status=status.HTTP_202_ACCEPTED)
