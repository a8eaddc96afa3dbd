"""The room screen for the projector: the talk clock alone, full screen, and "over time" once the talk overruns."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from prizes import services
from prizes.models import Entry
from projects.models import Group
from tests.prizes.conftest import make_group, make_round


def running_talk(course, ta, student, *, started_ago: timedelta):
    round = make_round(course)
    group = make_group(course, "Alpha", student, title="Diffusion for proteins")
    Group.objects.filter(pk=group.pk).update(created_at=timezone.now() - timedelta(days=1))
    Entry.objects.create(round=round, group=group, position=1)
    services.present_next(round=round, actor=ta.user)
    services.start_talk(round=round, actor=ta.user, at=timezone.now() - started_ago)
    return round


def test_the_room_screen_shows_the_clock_without_the_site_menu(login, course, ta, student):
    round = running_talk(course, ta, student, started_ago=timedelta(seconds=10))
    body = login(ta).get(reverse("prizes:room", args=[course.slug, round.pk])).content.decode()
    assert '<body hx-headers=\'{"X-CSRFToken"' in body and 'class="room-screen"' in body
    assert '<nav aria-label="Main">' not in body and "Sign out" not in body and ta.user.email not in body
    assert "Diffusion for proteins" in body
    assert '<span class="clock-state">running</span>' in body


def test_an_overrunning_talk_says_over_time_not_running(login, course, ta, judge, student):
    round = running_talk(course, ta, student, started_ago=timedelta(minutes=4))
    staff = login(ta)
    room = staff.get(reverse("prizes:room", args=[course.slug, round.pk])).content.decode()
    assert '<span class="clock-state over">over time</span>' in room
    assert ">running<" not in room
    poll = staff.get(reverse("prizes:now_presenting", args=[course.slug, round.pk])).content.decode()
    assert "over time" in poll and ">running<" not in poll


def test_only_staff_open_the_room_screen(client, login, course, ta, judge, student, outsider):
    round = running_talk(course, ta, student, started_ago=timedelta(seconds=10))
    room = reverse("prizes:room", args=[course.slug, round.pk])
    assert client.get(room).status_code == 302
    for someone in (judge, student, outsider):
        assert login(someone).get(room).status_code == 403
