from django.urls import path

from cases import views

urlpatterns = [
    path("", views.incident_list, name="incident-list"),
    path("incidents/new/", views.incident_create, name="incident-create"),
    path("incidents/<str:reference>/", views.incident_detail, name="incident-detail"),
    path(
        "incidents/<str:reference>/acknowledge/",
        views.incident_acknowledge,
        name="incident-acknowledge",
    ),
    path(
        "incidents/<str:reference>/transition/",
        views.incident_transition,
        name="incident-transition",
    ),
    path(
        "incidents/<str:reference>/timeline/", views.incident_add_entry, name="incident-add-entry"
    ),
    path(
        "incidents/<str:reference>/objectives/",
        views.part_add,
        {"part": "objective"},
        name="incident-objective-add",
    ),
    path(
        "incidents/<str:reference>/objectives/<int:pk>/status/",
        views.objective_status,
        name="incident-objective-status",
    ),
    path(
        "incidents/<str:reference>/tasks/",
        views.part_add,
        {"part": "task"},
        name="incident-task-add",
    ),
    path(
        "incidents/<str:reference>/tasks/<int:pk>/done/",
        views.task_done,
        name="incident-task-done",
    ),
    path(
        "incidents/<str:reference>/participants/",
        views.part_add,
        {"part": "participant"},
        name="incident-participant-add",
    ),
    path(
        "incidents/<str:reference>/participants/<int:pk>/remove/",
        views.participant_remove,
        name="incident-participant-remove",
    ),
    path(
        "incidents/<str:reference>/resources/",
        views.part_add,
        {"part": "resource"},
        name="incident-resource-add",
    ),
    path(
        "incidents/<str:reference>/communications/",
        views.part_add,
        {"part": "communication"},
        name="incident-communication-draft",
    ),
    path(
        "incidents/<str:reference>/communications/<int:pk>/approve/",
        views.communication_approve,
        name="incident-communication-approve",
    ),
    path(
        "incidents/<str:reference>/communications/<int:pk>/send/",
        views.communication_send,
        name="incident-communication-send",
    ),
]
