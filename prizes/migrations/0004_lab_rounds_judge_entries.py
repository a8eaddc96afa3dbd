"""Lab rounds judge lab entries: each round entry may point at one; prizes say how they rank."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("courses", "0002_institutionidentity"),
        ("labs", "0008_entry_notebook_last_cell"),
        ("prizes", "0003_nominations_to_lab_entries"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="entry",
            name="entry_is_group_or_nomination",
        ),
        migrations.AddField(
            model_name="entry",
            name="lab_entry",
            field=models.ForeignKey(
                blank=True,
                help_text="For lab rounds: her entry to the lab (submission, write-up, notebook).",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="judging_entries",
                to="labs.labentry",
            ),
        ),
        migrations.AddField(
            model_name="prize",
            name="metric_weight",
            field=models.FloatField(
                blank=True,
                help_text="Weighted ranking: the share of the metric's z-score, from 0 to 1; the judges' normalised result takes the rest.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="prize",
            name="ranking",
            field=models.CharField(
                choices=[
                    ("judges", "By the judges' normalised result"),
                    ("metric", "By the lab's metric (private split)"),
                    ("weighted", "By a stated weighting of the judges' result and the metric's z-score"),
                ],
                default="judges",
                help_text="Prizes of lab rounds: what ranks the entries (presentation rounds rank by the judges).",
                max_length=8,
            ),
        ),
        migrations.AlterField(
            model_name="entry",
            name="member",
            field=models.ForeignKey(
                blank=True,
                help_text="For lab rounds: the student whose entry it is.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="judging_entries",
                to="courses.membership",
            ),
        ),
        migrations.AlterField(
            model_name="prize",
            name="category",
            field=models.CharField(
                choices=[
                    ("lab", "Lab competition (private leaderboard)"),
                    ("round", "Judged round (final project or lab entries)"),
                ],
                max_length=8,
            ),
        ),
        migrations.AlterField(
            model_name="round",
            name="kind",
            field=models.CharField(
                choices=[
                    ("presentation", "Proposal presentations (project groups)"),
                    ("lab", "Lab competition entries (the lab's complete entries)"),
                ],
                default="presentation",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="round",
            name="lab",
            field=models.ForeignKey(
                blank=True,
                help_text="For lab rounds: the lab whose complete competition entries are judged.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="judging_rounds",
                to="labs.lab",
            ),
        ),
        migrations.AddConstraint(
            model_name="prize",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("ranking", "weighted"), _negated=True),
                    models.Q(("metric_weight__gte", 0), ("metric_weight__lte", 1)),
                    _connector="OR",
                ),
                name="weighted_prize_states_its_weight",
            ),
        ),
    ]
