import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command

from courses.models import Membership
from courses.roster import RosterError, import_roster

User = get_user_model()
GOOD = b"email,name,role,registered\nada@example.edu,Ada Lovelace,student,yes\ngrace@example.edu,Grace Hopper,ta,no\n"


def errors_of(course, data: bytes) -> list[str]:
    with pytest.raises(RosterError) as info:
        import_roster(course=course, data=data)
    assert Membership.objects.filter(course=course).count() == 0
    return info.value.errors


def test_import_creates_members_and_sends_set_password_links(course, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = import_roster(course=course, data=GOOD)
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
    import_roster(course=course, data=GOOD)
    changed = GOOD.replace(b"Grace Hopper,ta,no", b"Grace Hopper,instructor,no").replace(b"student,yes", b"student,no")
    result = import_roster(course=course, data=changed)
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
