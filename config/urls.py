"""URL configuration: sign-in, courses, labs, projects, prizes, the token API and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from courses import views as course_views
from courses.institution import InstitutionCallback, InstitutionSignIn
from courses.permissions import public_view
from courses.ratelimit import sign_in_throttled
from courses.signin import PasswordResetRequest, PasswordSet
from labs.sounds import note_sample

# A missing page: under /api/ a JSON error as the API's document says, elsewhere the site's page.
handler404 = "courses.views.page_not_found"

urlpatterns = [
    path("", course_views.home, name="home"),
    path("accounts/login/", sign_in_throttled(auth_views.LoginView.as_view()), name="login"),
    path("accounts/institution/", public_view(InstitutionSignIn.as_view()), name="institution_sign_in"),
    path("accounts/institution/callback/", public_view(InstitutionCallback.as_view()), name="institution_callback"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/reset/", PasswordResetRequest.as_view(), name="password_reset"),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/password/set/<uidb64>/<token>/",
        PasswordSet.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/set/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    # The admin's own sign-in, with the same limits as the site's (django-axes locks pairs on both).
    path("admin/login/", sign_in_throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("courses/", include("courses.urls")),
    path("courses/<slug:course_slug>/project/", include("projects.urls")),
    path("courses/<slug:course_slug>/labs/", include("labs.urls")),
    path("courses/<slug:course_slug>/prizes/", include("prizes.urls")),
    path("winners/", include("prizes.public_urls")),
    path("api/", include("labs.api_urls")),
    path("", include("lms.urls")),
    path("sounds/<str:instrument>-mp3/<str:note>.mp3", note_sample, name="note_sample"),
]
