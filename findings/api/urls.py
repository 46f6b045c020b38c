from django.urls import path
from rest_framework.routers import DefaultRouter

from findings.api import views

router = DefaultRouter()
router.register("findings", views.FindingViewSet, basename="finding")
router.register("quarantine", views.QuarantineViewSet, basename="quarantine")
router.register("triage-rules", views.TriageRuleViewSet, basename="triage-rule")

urlpatterns = [path("events/", views.EventsView.as_view(), name="events"), *router.urls]
