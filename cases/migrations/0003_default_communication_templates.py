"""A starting set of communication templates, one per usual audience; edit them in admin."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TEMPLATES = [
    {
        "name": "Responders: incident opened",
        "audience": "responders",
        "channel": "chat",
        "subject": "{{ incident.reference }} {{ incident.get_severity_display }}: {{ incident.title }}",
        "body": (
            "{{ incident.reference }} is {{ incident.status }}.\n"
            "{{ incident.summary }}\n\n"
            "Join the response: the timeline is the record; write decisions there."
        ),
    },
    {
        "name": "Leadership: status update",
        "audience": "leadership",
        "channel": "email",
        "subject": "[{{ incident.get_tlp_display }}] {{ incident.reference }} status: {{ incident.status }}",
        "body": (
            "Incident {{ incident.reference }}: {{ incident.title }}\n"
            "Severity: {{ incident.get_severity_display }}\n"
            "Status: {{ incident.get_status_display }}\n"
            "Detected: {{ incident.detected_at|date:'Y-m-d H:i e' }}\n"
            "{% if incident.contained_at %}Contained: {{ incident.contained_at|date:'Y-m-d H:i e' }}\n{% endif %}"
            "\nWhat we know:\n{{ incident.summary }}\n\nNext update within the hour."
        ),
    },
    {
        "name": "Legal: possible notification duty",
        "audience": "legal",
        "channel": "email",
        "subject": "[{{ incident.get_tlp_display }}] {{ incident.reference }}: review of notification duties",
        "body": (
            "Incident {{ incident.reference }} ({{ incident.get_category_display }}) may involve "
            "personal or customer data.\nDetected {{ incident.detected_at|date:'Y-m-d H:i e' }}.\n\n"
            "{{ incident.summary }}\n\nPlease advise on notification deadlines."
        ),
    },
    {
        "name": "Customers: service notice",
        "audience": "customers",
        "channel": "email",
        "subject": "Security notice",
        "body": (
            "We are investigating a security event that may affect our service. "
            "We will update you as we learn more."
        ),
    },
]


def create_templates(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Template = apps.get_model("cases", "CommunicationTemplate")
    for template in TEMPLATES:
        Template.objects.get_or_create(name=template["name"], defaults=template)


def remove_templates(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    names = [template["name"] for template in TEMPLATES]
    apps.get_model("cases", "CommunicationTemplate").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [("cases", "0002_timeline_append_only")]

    operations = [migrations.RunPython(create_templates, remove_templates)]
