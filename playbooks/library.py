"""Playbooks kept as YAML files: the built-in library in `playbooks/library/`, and any file
an operator imports or exports.

A file is read whole and checked before anything is saved, and saving makes a new version
only when the file says something the current version does not: loading the same files
again, on every deploy, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from rest_framework import serializers

from playbooks import definitions
from playbooks.models import Playbook, slug_like

LIBRARY = Path(__file__).resolve().parent / "library"

# The fields a file may have. `version` is allowed so that an exported file can be imported
# as it is, but it is not obeyed: version numbers are given by the database, in order.
FIELDS = ("slug", "name", "description", "version", "steps")


class BadPlaybook(ValueError):
    """A playbook document that cannot be loaded, naming the field at fault."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.source = field, message, source

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.field}: {self.message}"


@dataclass(frozen=True)
class Document:
    """A playbook as a file gives it, checked."""

    slug: str
    name: str
    description: str
    definition: dict[str, Any]

    def same_as(self, playbook: Playbook) -> bool:
        return (self.name, self.description, self.definition) == (
            playbook.name,
            playbook.description,
            playbook.definition,
        )


class _Header(serializers.Serializer[dict[str, Any]]):
    slug = serializers.CharField(max_length=80, validators=[slug_like])
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, default="", trim_whitespace=True)
    version = serializers.IntegerField(min_value=1, required=False)


def parse(text: str, source: str = "") -> Document:
    """The playbook a YAML text describes; BadPlaybook naming the first field at fault."""
    try:
        document = definitions.from_yaml(text)
        header = _Header(data=document)
        header.is_valid(raise_exception=True)
        definition = definitions.clean_definition({"steps": document.get("steps")})
    except serializers.ValidationError as error:
        field, message = first_problem(error.detail)
        raise BadPlaybook(field, message, source) from None
    unknown = sorted(str(key) for key in document if key not in FIELDS)
    if unknown:
        known = ", ".join(FIELDS)
        raise BadPlaybook(unknown[0], f"not a playbook field (known: {known})", source)
    checked = header.validated_data
    return Document(checked["slug"], checked["name"], checked["description"], definition)


def read(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadPlaybook("file", str(error), str(path)) from None
    return parse(text, str(path))


def read_all(paths: list[Path]) -> tuple[list[Document], list[BadPlaybook]]:
    """Every file read and checked: the good documents, and a problem for each bad file.
    Two files may not give the same slug: the second would silently supersede the first."""
    documents: list[Document] = []
    problems: list[BadPlaybook] = []
    first_with: dict[str, Path] = {}
    for path in paths:
        try:
            document = read(path)
        except BadPlaybook as problem:
            problems.append(problem)
            continue
        if document.slug in first_with:
            other = first_with[document.slug]
            problems.append(BadPlaybook("slug", f"{document.slug} is in {other} too", str(path)))
            continue
        first_with[document.slug] = path
        documents.append(document)
    return documents, problems


def library_files() -> list[Path]:
    return sorted([*LIBRARY.glob("*.yaml"), *LIBRARY.glob("*.yml")])


def first_problem(detail: Any) -> tuple[str, str]:
    """(where, what) of the first error in a DRF error detail: ("steps[1].action", "…")."""
    return problems_in(detail)[0]


def problems_in(detail: Any, path: str = "") -> list[tuple[str, str]]:
    """(where, what) of every error in a DRF error detail. A list serializer's errors are
    keyed by the index of each bad item."""
    if isinstance(detail, dict) and detail:
        found = []
        for key, inner in detail.items():
            if key == "non_field_errors":
                where = path
            else:
                where = f"{path}[{key}]" if isinstance(key, int) else _join(path, key)
            found.extend(problems_in(inner, where))
        return found
    if isinstance(detail, list) and detail:
        return [problem for inner in detail for problem in problems_in(inner, path)]
    return [(path or "document", str(detail))]


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def save(document: Document, *, builtin: bool, created_by: str) -> tuple[Playbook, bool]:
    """The version that holds `document`, and whether it is new.

    A file from the library is compared with the newest version loaded from the library,
    so that a person's later edit of a built-in playbook stays current until the file
    itself changes; an imported file is compared with the newest version of all. A new
    version is enabled: it is new content, whatever became of the one before.
    """
    try:
        with transaction.atomic():
            return _save(document, builtin=builtin, created_by=created_by)
    except IntegrityError:
        # Another process (a second deploy, a second import) saved this slug's next version
        # first: once more, against what it saved.
        with transaction.atomic():
            return _save(document, builtin=builtin, created_by=created_by)


def _save(document: Document, *, builtin: bool, created_by: str) -> tuple[Playbook, bool]:
    versions = list(
        Playbook.objects.select_for_update().filter(slug=document.slug).order_by("-version")
    )
    newest = versions[0] if versions else None
    if builtin:
        baseline = next((version for version in versions if version.builtin), None)
    else:
        baseline = newest
    if baseline is not None and document.same_as(baseline):
        return baseline, False
    playbook = Playbook(
        slug=document.slug,
        version=newest.version + 1 if newest else 1,
        name=document.name,
        description=document.description,
        definition=document.definition,
        builtin=builtin,
        created_by=created_by,
    )
    playbook.save(force_insert=True)
    return playbook, True


def export(slug: str, version: int | None = None) -> str:
    """The YAML of a playbook's version (its newest when none is named); LookupError if
    there is no such version."""
    found = Playbook.objects.filter(slug=slug)
    if version is not None:
        found = found.filter(version=version)
    playbook = found.order_by("-version").first()
    if playbook is None:
        named = f"{slug} v{version}" if version is not None else slug
        raise LookupError(f"no playbook {named}")
    steps = [_in_reading_order(step) for step in playbook.steps]
    return definitions.to_yaml(playbook.slug, playbook.name, playbook.description, {"steps": steps})


# PostgreSQL keeps JSON objects with their keys reordered: a step is written back in the
# order a person writes one.
STEP_KEYS = ("id", "action", "title", "parameters", "when", "approval", "on_failure")


def _in_reading_order(step: dict[str, Any]) -> dict[str, Any]:
    return {**{key: step[key] for key in STEP_KEYS if key in step}, **step}
