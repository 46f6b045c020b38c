from rest_framework.routers import DefaultRouter

from cases.api import views

INCIDENT = r"incidents/(?P<incident_reference>[^/.]+)"

router = DefaultRouter()
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register(f"{INCIDENT}/participants", views.ParticipantViewSet, basename="participant")
router.register(f"{INCIDENT}/resources", views.AffectedResourceViewSet, basename="resource")
router.register(f"{INCIDENT}/objectives", views.ObjectiveViewSet, basename="objective")
router.register(f"{INCIDENT}/tasks", views.TaskViewSet, basename="task")
router.register(f"{INCIDENT}/communications", views.CommunicationViewSet, basename="communication")
router.register(f"{INCIDENT}/timeline", views.TimelineViewSet, basename="timeline")
router.register(
    "communication-templates", views.CommunicationTemplateViewSet, basename="communication-template"
)

urlpatterns = router.urls
