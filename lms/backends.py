"""The authentication backend a launch signs in with: the launch checked who she is, so it never authenticates
credentials itself; it only reloads her account for each request of the session."""

from django.contrib.auth.backends import ModelBackend


class LaunchBackend(ModelBackend):
    def authenticate(self, request, **credentials):
        return None
