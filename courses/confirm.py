"""Asking before an action that cannot simply be taken back: one page saying what it does, a button, a way out."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def confirmed(request: HttpRequest) -> bool:
    """Whether the post came from the confirmation page (a plain button posts without it, and is only asked)."""
    return request.POST.get("confirm") == "yes"


def ask(request: HttpRequest, *, title: str, consequences: list[str], button: str, cancel_url: str) -> HttpResponse:
    """The confirmation page; its form posts the same fields back to the same address, with ``confirm=yes``."""
    fields = [(k, v) for k, v in request.POST.items() if k not in ("csrfmiddlewaretoken", "confirm")]
    context = {
        "title": title,
        "consequences": consequences,
        "button": button,
        "cancel_url": cancel_url,
        "fields": fields,
        "course": getattr(request, "course", None),
    }
    return render(request, "confirm.html", context)
