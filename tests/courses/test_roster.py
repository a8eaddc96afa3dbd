import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.urls import reverse

from courses.models import AuditEntry, Membership
from courses.roles import OPERATOR
from courses.roster import RosterError, import_roster
from tests.conftest import make_member

User = get_user_model()
GOOD = b"email,name,role,registered\nada@example.edu,Ada Lovelace,student,yes\ngrace@example.edu,Grace Hopper,ta,no\n"


def errors_of(course, data: bytes) -> list[str]:
    with pytest.raises(RosterError) as info:
        import_roster(course=course, data=data, actor=OPERATOR)
    assert Membership.objects.filter(course=course).count() == 0
    return info.value.errors


def test_import_creates_members_and_sends_set_password_links(course, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = import_roster(course=course, data=GOOD, actor=OPERATOR)
    assert sorted(result.created) == ["ada@example.edu", "grace@example.edu"]
    ada = Membership.objects.get(course=course, user__email="ada@example.edu")
    assert (ada.role, ada.registered_for_credit, ada.user.get_full_name()) == (
        "student",
        True,
        "Ada Lovelace",
    )
    assert not ada.user.has_usable_password()
    assert len(mail.outbox) == 2
    assert "/accounts/password/set/" in mail.outbox[0].body


def test_reimport_updates_rather_than_duplicates(course):
    import_roster(course=course, data=GOOD, actor=OPERATOR)
    changed = GOOD.replace(b"Grace Hopper,ta,no", b"Grace Hopper,instructor,no").replace(b"student,yes", b"student,no")
    result = import_roster(course=course, data=changed, actor=OPERATOR)
    assert sorted(result.updated) == ["ada@example.edu", "grace@example.edu"]
    assert Membership.objects.filter(course=course).count() == 2
    assert User.objects.filter(email="ada@example.edu").count() == 1
    assert Membership.objects.get(user__email="grace@example.edu").role == "instructor"


def test_empty_file_is_refused(course):
    assert errors_of(course, b"") == ["The file is empty; it needs a header line: email,name,role,registered."]


def test_header_only_is_refused(course):
    assert errors_of(course, b"email,name,role,registered\n") == ["The file has a header but no rows."]


def test_not_utf8_is_refused(course):
    (error,) = errors_of(course, "email,name,role,registered\né@x.edu,Zoë,student,yes\n".encode("latin-1"))
    assert "not UTF-8" in error


def test_missing_column_is_named(course):
    (error,) = errors_of(course, b"email,name,role\nada@example.edu,Ada,student\n")
    assert error.startswith("Line 1: missing column(s) registered")


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_imported(course):
    data = (
        b"email,name,role,registered\n"
        b"ada@example.edu,Ada,student,yes\n"
        b"not-an-email,Bob,student,yes\n"
        b"carl@example.edu,Carl,wizard,yes\n"
        b"ada@example.edu,Ada again,student,yes\n"
        b"dan@example.edu,Dan,student,maybe\n"
    )
    errors = errors_of(course, data)
    assert errors == [
        "Line 3: 'not-an-email' is not a valid e-mail address.",
        "Line 4: unknown role 'wizard' (use student, ta, instructor or judge).",
        "Line 5: ada@example.edu is already on line 2.",
        "Line 6: registered must be yes or no, not 'maybe'.",
    ]
    assert not User.objects.filter(email="ada@example.edu").exists()


def test_ten_megabytes_of_junk_is_refused_by_size(course):
    (error,) = errors_of(course, b"\xff\x00junk" * (10 * 1024 * 1024 // 6))
    assert error.startswith("The file is 10.5 MB; a roster may be at most 2 MB")


def test_binary_junk_under_the_limit_is_refused(course):
    errors = errors_of(course, b"email,name,role,registered\n\x00\x01\x02")
    assert errors == ["The file is not a CSV text file (it contains NUL bytes)."]


def test_management_command_imports_a_file(course, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes(GOOD)
    call_command("import_roster", course.slug, str(path), "--no-email")
    assert Membership.objects.filter(course=course).count() == 2


def test_management_command_reports_errors_and_fails(course, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes(b"email,name,role,registered\nbad,Bad,student,yes\n")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Line 2"):
        call_command("import_roster", course.slug, str(path))
    assert Membership.objects.filter(course=course).count() == 0


# ------------------------------------------------------------------ who may change whom (security defect: a TA
# of one course renamed, enrolled and re-roled people of others; a TA could promote herself or demote the instructor)

HEADER = b"email,name,role,registered\n"


def everything() -> tuple:
    """Every account and membership on the platform and the size of the audit log: proof that nothing changed."""
    users = list(User.objects.order_by("pk").values())
    members = list(
        Membership.objects.order_by("pk").values("pk", "user_id", "course_id", "role", "registered_for_credit")
    )
    return users, members, AuditEntry.objects.count()


def refused(*, course, data: bytes, actor) -> list[str]:
    before = everything()
    with pytest.raises(RosterError) as info:
        import_roster(course=course, data=data, actor=actor)
    assert everything() == before
    return info.value.errors


def test_a_ta_of_another_course_enrols_a_student_here_without_renaming_her_and_she_is_told(
    course, student, ta, other_course, other_ta, login, django_capture_on_commit_callbacks
):
    account_before = User.objects.values().get(pk=student.user.pk)
    with django_capture_on_commit_callbacks(execute=True):
        result = import_roster(
            course=other_course,
            data=HEADER + b"ada.lovelace@example.edu,Forged Name,student,yes\n",
            actor=other_ta.user,
        )
    assert result.created == ["ada.lovelace@example.edu"]
    # Her account (name, password, flags) is hers: the import enrolled her and changed nothing else.
    assert User.objects.values().get(pk=student.user.pk) == account_before
    assert sorted(Membership.objects.filter(user=student.user).values_list("course__slug", "role")) == [
        ("dl", "student"),
        ("other", "student"),
    ]
    student.refresh_from_db()
    assert (student.role, student.registered_for_credit) == ("student", True)
    page = login(ta).get(reverse("courses:roster", args=[course.slug])).content.decode()
    assert "Ada Lovelace" in page
    assert "Forged" not in page
    (notice,) = mail.outbox
    assert notice.to == ["ada.lovelace@example.edu"]
    assert notice.subject == "You were added to Another course"
    assert "Mallory Ta (mallory.ta@example.edu) added you to Another course as a student." in notice.body
    assert "http://127.0.0.1:8000/accounts/login/?next=/courses/other/" in notice.body
    assert "/accounts/password/set/" not in notice.body
    assert "Forged" not in notice.body


def test_reimporting_an_existing_member_sends_no_second_notice(course, student, ta, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = import_roster(
            course=course, data=HEADER + b"ada.lovelace@example.edu,Ada Lovelace,student,yes\n", actor=ta.user
        )
    assert result.unchanged == ["ada.lovelace@example.edu"]
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (
            b"grace.hopper@example.edu,Grace Hopper,instructor,no",
            "Line 3: you cannot change your own role (TA to Instructor); an instructor of the course can.",
        ),
        (
            b"alexander.amini@example.edu,Alexander Amini,student,no",
            "Line 3: alexander.amini@example.edu is an instructor here; only an instructor can change "
            "the role or registration of a TA or an instructor.",
        ),
        (
            b"ada.lovelace@example.edu,Ada Lovelace,ta,yes",
            "Line 3: only an instructor can make someone a TA; leave this row out or ask an instructor.",
        ),
        (
            b"new.ta@example.edu,New Ta,ta,no",
            "Line 3: only an instructor can make someone a TA; leave this row out or ask an instructor.",
        ),
        (
            b"new.boss@example.edu,New Boss,instructor,no",
            "Line 3: only an instructor can make someone an instructor; leave this row out or ask an instructor.",
        ),
    ],
    ids=["herself-instructor", "demote-instructor", "promote-student", "new-ta", "new-instructor"],
)
def test_a_ta_cannot_grant_or_remove_staff_roles_and_the_whole_file_is_refused(
    course, student, ta, instructor, row, error
):
    data = HEADER + b"new.student@example.edu,New Student,student,yes\n" + row + b"\n"
    assert refused(course=course, data=data, actor=ta.user) == [error]
    assert not User.objects.filter(email__startswith="new.").exists()


def test_a_ta_cannot_change_the_registration_of_another_ta(course, ta):
    other = make_member(course, "second.ta@example.edu", "ta", registered=False)
    errors = refused(course=course, data=HEADER + b"second.ta@example.edu,Second Ta,ta,yes\n", actor=ta.user)
    assert errors == [
        "Line 2: second.ta@example.edu is a TA here; only an instructor can change "
        "the role or registration of a TA or an instructor."
    ]
    other.refresh_from_db()
    assert other.registered_for_credit is False


def test_a_ta_adds_and_updates_students_and_judges_and_may_list_the_staff_unchanged(
    course, student, student2, judge, ta, instructor
):
    data = (
        HEADER + b"new.student@example.edu,New Student,student,yes\n"
        b"ada.lovelace@example.edu,Ada Lovelace,judge,no\n"
        b"sponsor.judge@example.com,Sponsor Judge,student,no\n"
        b"alan.turing@example.edu,Alan Turing,student,no\n"
        b"grace.hopper@example.edu,Grace Hopper,ta,no\n"
        b"alexander.amini@example.edu,Alexander Amini,instructor,no\n"
    )
    result = import_roster(course=course, data=data, actor=ta.user)
    assert result.created == ["new.student@example.edu"]
    assert result.updated == ["ada.lovelace@example.edu", "sponsor.judge@example.com", "alan.turing@example.edu"]
    assert result.unchanged == ["grace.hopper@example.edu", "alexander.amini@example.edu"]
    roles = dict(Membership.objects.filter(course=course).values_list("user__email", "role"))
    assert roles == {
        "new.student@example.edu": "student",
        "ada.lovelace@example.edu": "judge",
        "sponsor.judge@example.com": "student",
        "alan.turing@example.edu": "student",
        "grace.hopper@example.edu": "ta",
        "alexander.amini@example.edu": "instructor",
    }
    changes = {
        (e.action, e.target): (e.actor, e.before, e.after)
        for e in AuditEntry.objects.filter(course=course, action__startswith="member.")
    }
    assert changes == {
        ("member.add", "new.student@example.edu"): (ta.user, None, {"role": "student", "registered": True}),
        ("member.update", "ada.lovelace@example.edu"): (
            ta.user,
            {"role": "student", "registered": True},
            {"role": "judge", "registered": False},
        ),
        ("member.update", "sponsor.judge@example.com"): (
            ta.user,
            {"role": "judge", "registered": False},
            {"role": "student", "registered": False},
        ),
        ("member.update", "alan.turing@example.edu"): (
            ta.user,
            {"role": "student", "registered": True},
            {"role": "student", "registered": False},
        ),
    }


def test_an_instructor_promotes_a_student_to_ta_and_the_change_is_audited(course, student, instructor):
    result = import_roster(course=course, data=HEADER + b"ada.lovelace@example.edu,Ada,ta,no\n", actor=instructor.user)
    assert result.updated == ["ada.lovelace@example.edu"]
    student.refresh_from_db()
    assert student.role == "ta"
    assert student.user.get_full_name() == "Ada Lovelace"
    entry = AuditEntry.objects.get(course=course, action="member.update")
    assert (entry.actor, entry.target, entry.before, entry.after) == (
        instructor.user,
        "ada.lovelace@example.edu",
        {"role": "student", "registered": True},
        {"role": "ta", "registered": False},
    )


def test_an_instructor_demotes_a_ta(course, ta, instructor):
    import_roster(course=course, data=HEADER + b"grace.hopper@example.edu,Grace,student,no\n", actor=instructor.user)
    ta.refresh_from_db()
    assert ta.role == "student"
    assert AuditEntry.objects.get(action="member.update").before == {"role": "ta", "registered": False}


@pytest.mark.parametrize(
    ("who", "row", "error"),
    [
        (
            "instructor",
            b"alexander.amini@example.edu,Alexander Amini,ta,no",
            "Line 2: you cannot change your own role (Instructor to TA); another instructor of the course can.",
        ),
        (
            "instructor",
            b"alexander.amini@example.edu,Alexander Amini,student,yes",
            "Line 2: you cannot change your own role (Instructor to Student); another instructor of the course can.",
        ),
        (
            "ta",
            b"grace.hopper@example.edu,Grace Hopper,student,no",
            "Line 2: you cannot change your own role (TA to Student); an instructor of the course can.",
        ),
    ],
    ids=["instructor-to-ta", "instructor-to-student", "ta-to-student"],
)
def test_nobody_changes_her_own_role(request, course, instructor, ta, who, row, error):
    actor = request.getfixturevalue(who)
    assert refused(course=course, data=HEADER + row + b"\n", actor=actor.user) == [error]


def test_an_instructor_may_list_herself_unchanged(course, instructor):
    data = HEADER + b"alexander.amini@example.edu,Alexander Amini,instructor,no\n"
    assert import_roster(course=course, data=data, actor=instructor.user).unchanged == ["alexander.amini@example.edu"]


def test_a_superuser_is_enrolled_but_her_account_is_never_modified(course, instructor):
    root = User.objects.create_superuser("root", "root@example.edu", "a long passphrase 42", first_name="Root")
    before = User.objects.values().get(pk=root.pk)
    data = HEADER + b"root@example.edu,Forged Name,student,yes\n"
    assert import_roster(course=course, data=data, actor=instructor.user).created == ["root@example.edu"]
    assert User.objects.values().get(pk=root.pk) == before
    assert Membership.objects.get(user=root).course == course


def test_staff_of_another_course_are_enrolled_here_but_never_modified(course, other_course, ta, other_ta):
    before = User.objects.values().get(pk=other_ta.user.pk)
    data = HEADER + b"mallory.ta@example.edu,Forged Name,student,no\n"
    import_roster(course=course, data=data, actor=ta.user)
    assert User.objects.values().get(pk=other_ta.user.pk) == before
    other_ta.refresh_from_db()
    assert other_ta.role == "ta"
    assert Membership.objects.get(user=other_ta.user, course=course).role == "student"


@pytest.mark.parametrize("who", ["student", "judge", "other_ta"])
def test_only_the_course_staff_may_import(request, course, who):
    actor = request.getfixturevalue(who).user
    before = everything()
    with pytest.raises(PermissionDenied):
        import_roster(course=course, data=HEADER + b"new.student@example.edu,New,student,yes\n", actor=actor)
    assert everything() == before


def test_an_address_shared_by_two_accounts_is_refused_rather_than_guessed(course, ta):
    User.objects.create_user("twin1", "twin@example.edu")
    User.objects.create_user("twin2", "TWIN@example.edu")
    errors = refused(course=course, data=HEADER + b"twin@example.edu,Twin,student,yes\n", actor=ta.user)
    assert errors == [
        "Line 2: more than one account uses twin@example.edu; ask a platform administrator to merge them first."
    ]


def test_a_new_address_whose_account_name_is_taken_is_refused_with_its_line(course, ta):
    User.objects.create_user("taken@example.edu", "someone.else@example.edu")
    errors = refused(course=course, data=HEADER + b"taken@example.edu,Taken,student,yes\n", actor=ta.user)
    assert errors == [
        "Line 2: another account already has the user name taken@example.edu; ask a platform administrator."
    ]


def test_the_management_command_never_renames_an_existing_account(course, student, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes(HEADER + b"ada.lovelace@example.edu,Forged Name,student,no\n")
    call_command("import_roster", course.slug, str(path), "--no-email")
    student.refresh_from_db()
    assert (student.user.get_full_name(), student.registered_for_credit) == ("Ada Lovelace", False)
