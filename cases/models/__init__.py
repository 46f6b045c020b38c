from cases.models.communication import (
    Communication,
    CommunicationNotAllowed,
    CommunicationTemplate,
)
from cases.models.incident import Incident, ReferenceCounter, TransitionNotAllowed
from cases.models.response import AffectedResource, IncidentPart, Objective, Participant, Task
from cases.models.timeline import BrokenLink, TimelineEntry

__all__ = [
    "AffectedResource",
    "BrokenLink",
    "Communication",
    "CommunicationNotAllowed",
    "CommunicationTemplate",
    "Incident",
    "IncidentPart",
    "Objective",
    "Participant",
    "ReferenceCounter",
    "Task",
    "TimelineEntry",
    "TransitionNotAllowed",
]
