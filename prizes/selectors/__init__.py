"""Reads of the judging and prizes app: a judge's entries, the talk clock, results, winners and their changes.

One module per concept; the names below are re-exported so that ``from prizes.selectors import X`` keeps working.
"""

from prizes.selectors.judging import (
    EntryMaterials,
    JudgeEntry,
    entry_materials,
    entry_people,
    judge_page,
    round_entries,
    rounds_for_judge,
)
from prizes.selectors.results import RoundResults, judge_totals, progress, round_results
from prizes.selectors.talks import Clock, last_talks, talk_clock
from prizes.selectors.winners import (
    Candidate,
    Computation,
    _lab_candidates,  # tests/labs/test_release.py reads a lab prize's candidates directly
    award_changes,
    compute_winners,
    latest_decision,
    public_winners,
)

__all__ = [
    "Candidate",
    "Clock",
    "Computation",
    "EntryMaterials",
    "JudgeEntry",
    "RoundResults",
    "_lab_candidates",
    "award_changes",
    "compute_winners",
    "entry_materials",
    "entry_people",
    "judge_page",
    "judge_totals",
    "last_talks",
    "latest_decision",
    "progress",
    "public_winners",
    "round_entries",
    "round_results",
    "rounds_for_judge",
    "talk_clock",
]
