from django.urls import path

from playbooks import views

urlpatterns = [
    path("playbooks/", views.playbook_list, name="playbook-list"),
    path("playbooks/<slug:slug>/", views.playbook_detail, name="playbook-detail"),
    path("incidents/<str:reference>/response/", views.incident_response, name="incident-response"),
    path("incidents/<str:reference>/response/runs/", views.run_start, name="run-start"),
    path(
        "incidents/<str:reference>/response/runs/<int:pk>/cancel/",
        views.run_cancel,
        name="run-cancel",
    ),
    path(
        "incidents/<str:reference>/response/steps/<int:pk>/approve/",
        views.step_approve,
        name="step-approve",
    ),
    path(
        "incidents/<str:reference>/response/steps/<int:pk>/reject/",
        views.step_reject,
        name="step-reject",
    ),
    path(
        "incidents/<str:reference>/response/actions/", views.action_request, name="action-request"
    ),
    path(
        "incidents/<str:reference>/response/actions/<int:pk>/undo/",
        views.action_undo,
        name="action-undo",
    ),
]
