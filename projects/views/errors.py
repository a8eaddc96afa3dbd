"""How a refused write reaches the page: each message of its ValidationError becomes an error message."""

from django.contrib import messages
from django.core.exceptions import ValidationError


def show_errors(request, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)
