"""Forms of the incident pages. They validate what the API's serializers validate, so a
part added from a page is held to the same rules as one posted to the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone

from cases.choices import MANUAL_ENTRY_KINDS, ObjectiveKind, ObjectiveStatus, Resolution, Status
from cases.models import AffectedResource, Incident, Objective, Participant, Task

User = get_user_model()


def part_field(field: models.Field, **kwargs: Any) -> forms.Field | None:
    """A part's form field as the API reads it: people by username, any active one; times
    from the browser's date and time picker, in UTC."""
    if isinstance(field, models.ForeignKey) and field.related_model is User:
        kwargs["queryset"] = User.objects.filter(is_active=True).order_by("username")
        kwargs["to_field_name"] = "username"
    if isinstance(field, models.DateTimeField):
        kwargs["widget"] = forms.DateTimeInput(attrs={"type": "datetime-local"})
        kwargs["help_text"] = "UTC"
    return field.formfield(**kwargs)


class IncidentForm(forms.ModelForm):
    class Meta:
        model = Incident
        fields = ["title", "severity", "category", "tlp", "summary", "restricted"]
        widgets = {"summary": forms.Textarea(attrs={"rows": 4})}


class TransitionForm(forms.Form):
    status = forms.ChoiceField(choices=Status.choices)
    resolution = forms.ChoiceField(choices=[("", "—"), *Resolution.choices], required=False)
    reason = forms.CharField(required=False, max_length=2000)


class EntryForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k.value, k.label) for k in MANUAL_ENTRY_KINDS])
    summary = forms.CharField(max_length=300)
    occurred_at = forms.DateTimeField(
        required=False,
        help_text="When it happened, if earlier than now (UTC).",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_occurred_at(self) -> Any:
        occurred_at = self.cleaned_data["occurred_at"]
        if occurred_at and occurred_at > timezone.now():
            raise forms.ValidationError("This time is in the future.")
        return occurred_at


class PartForm(forms.ModelForm):
    """A form that adds one kind of part to an incident. Several share the incident's page,
    so their ids are named after the part (`task-title`), not all `id_title`."""

    class Meta:
        formfield_callback = staticmethod(part_field)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self._meta.model._meta.model_name}-%s")
        super().__init__(*args, **kwargs)

    @classmethod
    def for_incident(cls, incident: Incident, data: Any = None) -> PartForm:
        return cls(data, instance=cls._meta.model(incident=incident))


class ObjectiveForm(PartForm):
    class Meta(PartForm.Meta):
        model = Objective
        fields = ["kind", "description", "owner", "due_at"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("kind") == ObjectiveKind.OTHER and not cleaned.get("description"):
            self.add_error("description", "Describe an objective of kind 'other'.")
        return cleaned


class ObjectiveStatusForm(forms.Form):
    status = forms.ChoiceField(choices=ObjectiveStatus.choices)


class TaskForm(PartForm):
    class Meta(PartForm.Meta):
        model = Task
        fields = ["title", "objective", "assignee", "due_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only this incident's objectives: another incident's is "not one of the choices",
        # like an id nobody has, so a task cannot reveal what a hidden incident contains.
        objective: Any = self.fields["objective"]
        objective.queryset = Objective.objects.filter(incident=self.instance.incident)


class TaskDoneForm(forms.Form):
    done = forms.BooleanField(required=False)


class ParticipantForm(PartForm):
    class Meta(PartForm.Meta):
        model = Participant
        fields = ["user", "role"]

    def clean_user(self) -> Any:
        user = self.cleaned_data["user"]
        incident = self.instance.incident
        if Participant.objects.filter(incident=incident, user=user).exists():
            raise forms.ValidationError(f"{user} already takes part in {incident.reference}.")
        return user


class AffectedResourceForm(PartForm):
    class Meta(PartForm.Meta):
        model = AffectedResource
        fields = ["account_id", "region", "identifier", "resource_type"]
        labels = {"identifier": "ARN or id"}
