"""Request stamping and the strict Content-Security-Policy (Django 5.2 has none built in)."""

import time

from django.conf import settings
from django.utils import timezone


class ArrivalStampMiddleware:
    """Stamps each request when its headers arrive, before its body is read: an upload started before the
    deadline counts as on time (its body must still finish within UPLOAD_BODY_SECONDS)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.received_at = timezone.now()
        request.received_monotonic = time.monotonic()
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response
