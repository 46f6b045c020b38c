"""Forms of the incident pages. They validate what the API's serializers validate, so a
part added from a page is held to the same rules as one posted to the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone

from cases.choices import (
    MANUAL_ENTRY_KINDS,
    Channel,
    ObjectiveKind,
    ObjectiveStatus,
    Resolution,
    Status,
)
from cases.models import AffectedResource, Incident, IncidentPart, Objective, Participant, Task
from cases.models.communication import Communication, CommunicationTemplate

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

    def part(self, user: Any) -> IncidentPart:
        """The part to add, once the form is valid; `user` is who is adding it."""
        return self.instance


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


class CommunicationForm(PartForm):
    """A draft to stakeholders. As in the API, a template fills in whatever is left empty."""

    # Empty by default, unlike the model's, so that a template's channel can fill it in.
    channel = forms.ChoiceField(choices=[("", "—"), *Channel.choices], required=False)

    class Meta(PartForm.Meta):
        model = Communication
        fields = ["template", "audience", "channel", "subject", "body"]
        help_texts = {"template": "Fills in the audience, channel, subject and body left empty."}
        widgets = {"body": forms.Textarea(attrs={"rows": 5})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("audience", "subject", "body"):
            self.fields[name].required = False
        template: Any = self.fields["template"]
        template.queryset = CommunicationTemplate.objects.filter(active=True)
        template.label_from_instance = lambda t: f"{t.name} ({t.get_audience_display()})"

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if template := cleaned.get("template"):
            subject, body = template.render(self.instance.incident)
            filled = {"audience": template.audience, "channel": template.channel}
            for name, value in {**filled, "subject": subject, "body": body}.items():
                cleaned[name] = cleaned.get(name) or value
        for name in ("audience", "subject", "body"):
            if not cleaned.get(name) and name not in self.errors:
                self.add_error(name, "This field is required unless a template provides it.")
        cleaned["channel"] = cleaned.get("channel") or Channel.EMAIL
        return cleaned

    def part(self, user: Any) -> IncidentPart:
        # Set here, not left to the form: a channel left out of the request altogether
        # would otherwise keep the model's default over the template's.
        self.instance.channel = self.cleaned_data["channel"]
        self.instance.drafted_by = user
        return self.instance
