from django.urls import path

from evidence import views

ITEM = "incidents/<str:reference>/evidence/<int:pk>"

urlpatterns = [
    path("incidents/<str:reference>/evidence/", views.incident_evidence, name="incident-evidence"),
    path(
        "incidents/<str:reference>/evidence/upload/",
        views.evidence_upload,
        name="incident-evidence-upload",
    ),
    path(f"{ITEM}/download/", views.evidence_download, name="evidence-item-download"),
    path(f"{ITEM}/verify/", views.evidence_verify, name="evidence-item-verify"),
    path(f"{ITEM}/legal-hold/", views.evidence_legal_hold, name="evidence-item-legal-hold"),
]
