"""The talk clock every screen of presentation day shows, and each entry's latest talk."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from prizes.models import Entry, Round, Talk


@dataclass
class Clock:
    entry: Entry | None
    running: bool
    talk_seconds: int
    remaining: int
    overrun: int
    talk: Talk | None = None

    @property
    def over(self) -> bool:
        return self.remaining <= 0

    @property
    def display(self) -> str:
        sign = "-" if self.remaining < 0 else ""
        seconds = abs(self.remaining)
        return f"{sign}{seconds // 60}:{seconds % 60:02d}"


def talk_clock(*, round: Round, at: datetime | None = None) -> Clock:
    """What every screen shows: remaining = talk time - time since the server's start stamp (negative = overrun)."""
    now = at or timezone.now()
    entry = round.current_entry
    talk_seconds = round.course.talk_seconds
    if entry is None:
        return Clock(None, False, talk_seconds, talk_seconds, 0)
    talk = Talk.objects.filter(entry=entry).order_by("-started_at", "-id").first()
    if talk is None:
        return Clock(entry, False, talk_seconds, talk_seconds, 0)
    end = talk.stopped_at or now
    elapsed = int((end - talk.started_at).total_seconds())
    remaining = talk.talk_seconds - elapsed
    return Clock(entry, talk.stopped_at is None, talk.talk_seconds, remaining, max(0, -remaining), talk)


def last_talks(round: Round) -> dict[int, Talk]:
    """Per entry, its latest talk (start, stop, overrun)."""
    talks: dict[int, Talk] = {}
    for talk in Talk.objects.filter(entry__round=round).order_by("started_at", "id"):
        talks[talk.entry_id] = talk
    return talks
