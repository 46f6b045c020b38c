from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from irportal.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("cases.api.urls")),
    path("api/v1/", include("findings.api.urls")),
    path("api/v1/", include("playbooks.api.urls")),
    path("api/v1/", include("evidence.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("cases.urls")),
    path("", include("findings.urls")),
    path("", include("playbooks.urls")),
    path("", include("evidence.urls")),
]
