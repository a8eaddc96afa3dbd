from django.urls import path

from labs import api

app_name = "api"

urlpatterns = [
    path("openapi.json", api.openapi, name="openapi"),
    path("labs/<slug:lab_slug>/submissions", api.submissions, name="submissions"),
    path("submissions/<int:pk>", api.submission_detail, name="submission"),
]
