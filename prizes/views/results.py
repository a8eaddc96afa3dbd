"""A round's results for staff, on the page and as a CSV a spreadsheet opens without running formulas."""

import csv

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from courses.permissions import staff_view
from prizes.ranking import NORMALISATION_RULE, TIE_BREAK
from prizes.selectors.judging import round_entries
from prizes.selectors.results import progress, round_results
from prizes.views.rounds import course_round


@staff_view
def results(request, pk: int):
    round = course_round(request, pk)
    return render(
        request,
        "prizes/results.html",
        {
            "course": request.course,
            "round": round,
            "results": round_results(round),
            "progress": progress(round),
            "entries": round_entries(round),
            "closed": round.is_closed(timezone.now()),
            "tie_break": TIE_BREAK,
            "normalisation_rule": NORMALISATION_RULE,
        },
    )


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """Text a spreadsheet will not run as a formula: a leading = + - @ tab or CR gets a single quote before it."""
    text = "" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@staff_view
def results_csv(request, pk: int):
    round = course_round(request, pk)
    data = round_results(round)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="round-{round.pk}-results.csv"'
    writer = csv.writer(response)
    header = ["rank", "entry", "title", "result", "plain mean", "judges"]
    header += [f"{j['label']} total" for j in data.judges]
    writer.writerow([csv_cell(h) for h in header])
    for row in data.rows:
        cells = [row["rank"], row["name"], row["title"], row["result"], row["plain_mean"], row["judges"]]
        cells += [p["total"] for p in row["per_judge"]]
        writer.writerow([csv_cell(c) for c in cells])
    return response
