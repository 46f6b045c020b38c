from rest_framework.routers import DefaultRouter

from playbooks.api import views

router = DefaultRouter()
router.register("accounts", views.CloudAccountViewSet, basename="cloud-account")
router.register("actions", views.ActionViewSet, basename="action")
router.register("playbooks", views.PlaybookViewSet, basename="playbook")
router.register("runs", views.PlaybookRunViewSet, basename="playbook-run")
router.register("action-runs", views.ActionRunViewSet, basename="action-run")

urlpatterns = router.urls
