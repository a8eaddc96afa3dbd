"""Each lab-round entry of a nominated sample points at the student's entry to the round's lab.

Migration 0003 made those lab entries from the nominations; a nomination whose submission belonged to another lab
made none, so here she gets an entry without a submission (incomplete until she picks one).
"""

from django.db import migrations


def link_round_entries(apps, schema_editor):
    Entry = apps.get_model("prizes", "Entry")
    LabEntry = apps.get_model("labs", "LabEntry")
    pending = Entry.objects.filter(round__kind="lab", member__isnull=False, lab_entry__isnull=True).select_related(
        "round", "submission"
    )
    for entry in pending:
        lab_id = entry.round.lab_id
        same_lab = entry.submission is not None and entry.submission.lab_id == lab_id
        lab_entry, _ = LabEntry.objects.get_or_create(
            lab_id=lab_id,
            member_id=entry.member_id,
            defaults={"submission_id": entry.submission_id if same_lab else None, "title": entry.title},
        )
        entry.lab_entry = lab_entry
        entry.save(update_fields=["lab_entry"])


class Migration(migrations.Migration):
    dependencies = [("prizes", "0004_lab_rounds_judge_entries")]

    operations = [migrations.RunPython(link_round_entries, migrations.RunPython.noop)]
