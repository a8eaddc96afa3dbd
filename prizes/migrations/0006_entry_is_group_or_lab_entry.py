"""Once every lab-round entry points at her lab entry, an entry is a group or a lab entry, never a bare sample."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("prizes", "0005_link_round_entries_to_lab_entries")]

    operations = [
        migrations.AddConstraint(
            model_name="entry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("group__isnull", False), ("lab_entry__isnull", True), ("member__isnull", True)),
                    models.Q(("group__isnull", True), ("lab_entry__isnull", False), ("member__isnull", False)),
                    _connector="OR",
                ),
                name="entry_is_group_or_lab_entry",
            ),
        ),
    ]
