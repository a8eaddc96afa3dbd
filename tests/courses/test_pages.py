from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from courses.models import Extension, Membership


def test_ta_imports_a_roster_through_the_page(login, ta, course):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("roster.csv", b"email,name,role,registered\nnew@example.edu,New Person,student,yes\n")
    response = login(ta).post(reverse("courses:roster", args=[course.slug]), {"file": upload}, follow=True)
    assert "Roster imported: 1 added, 0 updated, 0 unchanged." in response.content.decode()
    assert Membership.objects.filter(course=course, user__email="new@example.edu").exists()


def test_bad_roster_upload_shows_every_error_and_imports_nothing(login, ta, course):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("roster.csv", b"email,name,role,registered\nbad,X,student,yes\n")
    response = login(ta).post(reverse("courses:roster", args=[course.slug]), {"file": upload})
    assert response.status_code == 200
    assert "Line 2: &#x27;bad&#x27; is not a valid e-mail address." in response.content.decode()
    assert Membership.objects.filter(course=course).count() == 1


def test_ta_grants_an_extension_typed_in_course_time(login, ta, student, course):
    lab1 = course.deadlines.get(key="lab1")
    until_local = (lab1.due_at + timedelta(days=2)).astimezone(course.tz).replace(second=0, microsecond=0)
    response = login(ta).post(
        reverse("courses:extensions", args=[course.slug]),
        {
            "deadline": lab1.pk,
            "member": student.pk,
            "until": until_local.strftime("%Y-%m-%dT%H:%M"),
            "reason": "flu",
        },
    )
    assert response.status_code == 302
    extension = Extension.objects.get(member=student)
    assert extension.until == until_local
    assert extension.granted_by == ta.user


def test_ta_extension_in_the_past_is_refused_on_the_page(login, ta, student, course):
    lab1 = course.deadlines.get(key="lab1")
    past = (timezone.now() - timedelta(days=1)).astimezone(course.tz)
    response = login(ta).post(
        reverse("courses:extensions", args=[course.slug]),
        {"deadline": lab1.pk, "member": student.pk, "until": past.strftime("%Y-%m-%dT%H:%M"), "reason": ""},
    )
    assert response.status_code == 200
    assert "The extension must end in the future." in response.content.decode()
    assert not Extension.objects.exists()


def test_listener_joins_with_the_code_as_non_credit_student(client, course, ta, mailoutbox):
    course.join_code = "open-sesame"
    course.save()
    response = client.post(
        reverse("courses:join", args=[course.slug]),
        {"email": "listener@example.org", "name": "Lis Tener", "code": "open-sesame"},
    )
    assert response.status_code == 200
    member = Membership.objects.get(user__email="listener@example.org")
    assert (member.role, member.registered_for_credit) == ("student", False)
    assert "/accounts/password/set/" in mailoutbox[0].body


def test_wrong_or_closed_join_code_enrols_nobody(client, course):
    response = client.post(
        reverse("courses:join", args=[course.slug]), {"email": "x@example.org", "name": "X", "code": "guess"}
    )
    assert "That join code is not valid" in response.content.decode()
    assert not Membership.objects.filter(user__email="x@example.org").exists()


def test_display_name_must_be_unique_in_the_course(login, student, student2, course):
    response = login(student).post(
        reverse("courses:profile", args=[course.slug]), {"display_name": student2.display_name.upper()}
    )
    assert "already uses that display name" in response.content.decode()


def test_set_password_link_works_once(client, course):
    from courses.roles import OPERATOR
    from courses.roster import import_roster
    from courses.services import set_password_link

    import_roster(
        course=course,
        data=b"email,name,role,registered\nnew@example.edu,New,student,yes\n",
        actor=OPERATOR,
        send_links=False,
    )
    user = Membership.objects.get(user__email="new@example.edu").user
    link = set_password_link(user).split("127.0.0.1:8000", 1)[1]
    response = client.get(link, follow=True)
    assert "Choose your password" in response.content.decode()
    set_url = response.redirect_chain[-1][0]
    response = client.post(set_url, {"new_password1": "a long passphrase 42", "new_password2": "a long passphrase 42"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a long passphrase 42")
    assert "This link has expired" in client.get(link, follow=True).content.decode()


def test_revoking_an_extension_asks_first_with_the_deadline_she_goes_back_to(login, ta, student, course):
    from courses import services
    from courses.deadlines import format_course_time

    deadline = course.deadlines.get(key="lab1")
    extension = services.grant_extension(
        deadline=deadline, member=student, until=deadline.due_at + timedelta(days=2), reason="ill", actor=ta.user
    )
    client = login(ta)
    url = reverse("courses:extension_revoke", args=[course.slug, extension.pk])
    asked = client.post(url).content.decode()
    assert f"<h1>Revoke {student.user.email}&#x27;s extension for Lab 1: Music Generation?</h1>" in asked
    assert f"<li>Her deadline goes back to {format_course_time(deadline.due_at, course)}; " in asked
    extension.refresh_from_db()
    assert extension.revoked_at is None
    body = client.post(url, {"confirm": "yes"}, follow=True).content.decode()
    assert "Extension revoked." in body
    extension.refresh_from_db()
    assert extension.revoked_by == ta.user


def test_the_audit_log_shows_changes_in_words_and_filters_by_action_who_and_subject(login, ta, student, course):
    from courses import audit, services
    from courses.deadlines import format_course_time

    deadline = course.deadlines.get(key="lab1")
    first, second = deadline.due_at + timedelta(days=1), deadline.due_at + timedelta(days=2)
    services.grant_extension(deadline=deadline, member=student, until=first, reason="ill", actor=ta.user)
    services.grant_extension(deadline=deadline, member=student, until=second, reason="still ill", actor=ta.user)
    audit.record(course=course, actor=None, action="lab.regrade", target="lab1-music", after={"evaluations": 3})
    client = login(ta)
    url = reverse("courses:audit", args=[course.slug])
    body = client.get(url).content.decode()
    assert f"<li>until: {format_course_time(first, course)} → {format_course_time(second, course)}</li>" in body
    assert "<li>evaluations: 3</li>" in body
    assert "{&#x27;" not in body and "{&quot;" not in body  # no raw dictionaries
    assert '<td class="nowrap"><time' in body

    regrades = client.get(url, {"action": "lab.regrade"}).content.decode()
    assert "<li>evaluations: 3</li>" in regrades and "until:" not in regrades
    by_ta = client.get(url, {"who": "grace"}).content.decode()
    assert "until:" in by_ta and "evaluations: 3" not in by_ta
    about = client.get(url, {"about": student.user.email}).content.decode()
    assert "until:" in about and "evaluations: 3" not in about
    unknown = client.get(url, {"action": "nothing.like.this"}).content.decode()
    assert "No entry has the action “nothing.like.this”; showing every action." in unknown
    assert "evaluations: 3" in unknown and "until:" in unknown


def test_the_extension_form_names_its_time_zone_and_lists_deadlines_by_title(login, ta, course):
    body = login(ta).get(reverse("courses:extensions", args=[course.slug])).content.decode()
    deadline = course.deadlines.get(key="lab1")
    assert '<label for="id_until">Until (ET, the course&#x27;s time zone):</label>' in body
    assert f'<option value="{deadline.pk}">Lab 1: Music Generation</option>' in body
    assert f"({course.slug})" not in body
