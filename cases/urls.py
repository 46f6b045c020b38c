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
]
