from django.urls import path

from findings import views

urlpatterns = [
    path("findings/", views.finding_list, name="finding-list"),
    path("findings/<int:pk>/triage/", views.finding_triage, name="finding-triage"),
]
