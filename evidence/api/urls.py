from django.urls import path
from rest_framework.routers import SimpleRouter

from evidence.api import views

INCIDENT = "incidents/<str:incident_reference>"

router = SimpleRouter()
router.register(
    r"incidents/(?P<incident_reference>[^/.]+)/evidence",
    views.EvidenceItemViewSet,
    basename="evidence",
)

urlpatterns = [
    path(
        f"{INCIDENT}/evidence/upload/", views.EvidenceUploadView.as_view(), name="evidence-upload"
    ),
    path(
        f"{INCIDENT}/evidence-manifest/",
        views.EvidenceManifestView.as_view(),
        name="evidence-manifest",
    ),
    path(
        "evidence-downloads/<str:token>/",
        views.EvidenceDownloadView.as_view(),
        name="evidence-download",
    ),
    path(
        "evidence-signing-key/", views.EvidenceSigningKeyView.as_view(), name="evidence-signing-key"
    ),
    *router.urls,
]
