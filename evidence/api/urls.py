from django.urls import path

from evidence.api import views

INCIDENT = "incidents/<str:incident_reference>"

urlpatterns = [
    path(
        f"{INCIDENT}/evidence/upload/", views.EvidenceUploadView.as_view(), name="evidence-upload"
    ),
]
