from django.urls import path

from lms import deep_linking, launch, views

app_name = "lms"

urlpatterns = [
    path("lti/login/", launch.login_initiation, name="login"),
    path("lti/launch/", launch.launch, name="launch"),
    path("lti/jwks/", launch.jwks, name="jwks"),
    path("lti/deep-link/", deep_linking.choose, name="deep_link"),
    path("courses/<slug:course_slug>/staff/lms/", views.lms_page, name="page"),
    path("courses/<slug:course_slug>/staff/lms/sections/<int:pk>/roster/", views.sync_roster, name="sync_roster"),
    path("courses/<slug:course_slug>/staff/lms/sections/<int:pk>/grades/", views.sync_grades, name="sync_grades"),
]
