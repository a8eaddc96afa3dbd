"""Today's sample nominations of lab rounds become lab entries: her nominated submission, titled by the sample."""

from django.db import migrations


def nominations_to_entries(apps, schema_editor):
    Nomination = apps.get_model("prizes", "Entry")
    LabEntry = apps.get_model("labs", "LabEntry")
    nominations = (
        Nomination.objects.filter(round__kind="lab", member__isnull=False, submission__isnull=False)
        .select_related("round", "submission")
        .order_by("created_at", "id")
    )
    # One entry per student per lab: where she nominated in several rounds of a lab, her latest nomination wins.
    latest = {}
    for nomination in nominations:
        if nomination.submission.lab_id == nomination.round.lab_id:
            latest[(nomination.round.lab_id, nomination.member_id)] = nomination
    for (lab_id, member_id), nomination in latest.items():
        LabEntry.objects.get_or_create(
            lab_id=lab_id,
            member_id=member_id,
            defaults={"submission_id": nomination.submission_id, "title": nomination.title},
        )


class Migration(migrations.Migration):
    dependencies = [
        ("prizes", "0002_prize_counts_late_work"),
        ("labs", "0007_lab_entries"),
    ]

    operations = [migrations.RunPython(nominations_to_entries, migrations.RunPython.noop)]
