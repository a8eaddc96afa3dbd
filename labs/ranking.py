"""The one ranking of a lab's leaderboard, computed by the database from the stored results.

Every reader of a lab's standings (the leaderboard page, lab prizes, the demo's summary) goes through
``ranked_rows``; a reader that scores submissions chosen elsewhere (a prize over lab entries, each naming hers)
reads rules 1 to 3 through ``counted_results``. The database does the work with window functions, so the cost of a page grows with the rows it
shows, not with the class: the Python side only loads the rows that are asked for.

The rules, in order:
1. A submission's result is its newest succeeded evaluation, counting only evaluations finished by the freeze time
   (when the board is frozen) and, for a lab with a registered base model, graded on that base.
2. Results of one device class are ranked: the lab's, else the class most of those results have (the
   alphabetically first on a tie); a result that records no class is kept.
3. Work judged late at arrival is left out when the caller asks (prizes, unless a prize counts late work).
4. Each student's entry is her submission marked final, else her best by public score (a missing score is worst),
   else the earliest received. Staff baselines are all shown, never ranked.
5. Entries are ordered by the split's primary score, then its tie-break (each by its direction; a missing or
   non-finite value last), then the earliest received_at, then the lower submission id.
"""

from dataclasses import dataclass

from django.db import connection

from labs.models import BaseModel, Evaluation, EvaluationStatus, Lab, Submission

# The SQL below is assembled from table names and fixed fragments chosen in this module (S608); every value a
# person could set (lab, member, times, device class, positions) travels as a query parameter.
# The largest finite double: "BETWEEN -MAX AND MAX" is false for NULL, the infinities and (in PostgreSQL) NaN.
_FINITE_MAX = "1.7976931348623157e308"


@dataclass(frozen=True)
class RankedRow:
    evaluation_id: int
    position: int  # place in the whole board, baselines included (1 = top)
    rank: int | None  # place among students; None for a baseline


@dataclass(frozen=True)
class Selection:
    """Which positions of the board to load: none given means every row."""

    first: int | None = None  # positions first..last, inclusive
    last: int | None = None
    member_id: int | None = None  # her entry and ``around`` rows either side of it
    around: int = 0
    baselines: bool = True


def _results_sql(lab: Lab) -> tuple[str, list]:
    """Rule 1: per submission, its newest counted succeeded evaluation (``newest = 1``)."""
    evaluation, submission = Evaluation._meta.db_table, Submission._meta.db_table
    where = ["s.lab_id = %s", "e.status = %s"]
    params: list = [lab.pk, EvaluationStatus.SUCCEEDED.value]
    if lab.frozen_at is not None:
        where.append("e.finished_at <= %s")
        params.append(lab.frozen_at)
    if lab.base_model_id:
        # Scores on one base model say nothing of another: only results on the lab's current base are ranked.
        basemodel = BaseModel._meta.db_table
        where.append(f"e.base_model_sha256 = (SELECT config_sha256 FROM {basemodel} WHERE id = %s)")  # noqa: S608
        params.append(lab.base_model_id)
    sql = f"""
        SELECT e.id, e.submission_id, e.device_class, e.public_score, e.private_score,
               e.public_tiebreak, e.private_tiebreak,
               s.member_id, s.received_at, s.is_final, s.late, s.baseline_label,
               ROW_NUMBER() OVER (PARTITION BY e.submission_id ORDER BY e.id DESC) AS newest
        FROM {evaluation} e JOIN {submission} s ON s.id = e.submission_id
        WHERE {" AND ".join(where)}
    """  # noqa: S608
    return sql, params


def _order(value: str, direction: str) -> str:
    """Sort terms putting a missing or non-finite value last, then the better value first."""
    finite = f"{value} BETWEEN -{_FINITE_MAX} AND {_FINITE_MAX}"
    return f"CASE WHEN {finite} THEN 0 ELSE 1 END, CASE WHEN {finite} THEN {value} END {_word(direction)}"


def _word(direction: str) -> str:
    return "ASC" if direction == "min" else "DESC"


def _counted_sql(lab: Lab, include_late: bool) -> tuple[str, list]:
    """Rules 1 to 3 as the ``results``, ``usual`` and ``counted`` parts of a WITH clause, and their parameters."""
    results, params = _results_sql(lab)
    if lab.device_class:
        device = "%s"
        params.append(lab.device_class)
    else:
        device = "COALESCE((SELECT device_class FROM usual), '')"
    # A tie between classes goes to the first by code point, whatever the database's default collation.
    by_code_point = 'COLLATE "C"' if connection.vendor == "postgresql" else "COLLATE BINARY"
    late = "" if include_late else "AND NOT late"
    sql = f"""
        results AS ({results}),
        usual AS (
            SELECT device_class FROM results WHERE newest = 1 AND device_class <> ''
            GROUP BY device_class ORDER BY COUNT(*) DESC, device_class {by_code_point} LIMIT 1
        ),
        counted AS (
            SELECT * FROM results
            WHERE newest = 1 AND (device_class = {device} OR device_class = '') {late}
        )
    """  # noqa: S608
    return sql, params


def counted_results(*, lab: Lab, submission_ids: list[int], include_late: bool = True) -> dict[int, int]:
    """Rules 1 to 3 for chosen submissions: each one's counted evaluation id; a submission without one is absent.

    For readers that rank submissions chosen elsewhere (a lab entry names hers) by the board's own results.
    """
    if not submission_ids:
        return {}
    counted, params = _counted_sql(lab, include_late)
    wanted = ", ".join(["%s"] * len(submission_ids))
    sql = f"WITH {counted} SELECT submission_id, id FROM counted WHERE submission_id IN ({wanted})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params + list(submission_ids))
        return dict(cursor.fetchall())


def ranked_rows(
    *, lab: Lab, split: str, include_late: bool = True, selection: Selection | None = None
) -> tuple[list[RankedRow], int, int | None]:
    """The selected rows of the board in order, the number of rows of the whole board, and her position on it."""
    selection = selection or Selection()
    counted, params = _counted_sql(lab, include_late)
    score, tiebreak = (
        ("private_score", "private_tiebreak") if split == "private" else ("public_score", "public_tiebreak")
    )
    board_order = f"{_order(score, lab.primary_direction)}, {_order(tiebreak, lab.tiebreak_direction)}, received_at, submission_id"
    # Her choice compares raw public scores, as a student reads them; a missing score loses to any number.
    choice_order = (
        "is_final DESC, CASE WHEN public_score IS NULL THEN 1 ELSE 0 END, "
        f"public_score {_word(lab.primary_direction)}, received_at, submission_id"
    )
    wanted = ["TRUE"] if selection.first is None else ["b.position BETWEEN %s AND %s"]
    wanted_params: list = [] if selection.first is None else [selection.first, selection.last]
    if selection.baselines:
        wanted.append("b.baseline_label <> ''")
    her_params: list = []
    if selection.member_id is not None:
        wanted.append("b.position BETWEEN summary.her - %s AND summary.her + %s")
        wanted_params += [selection.around, selection.around]
        her_params = [selection.member_id]
    her = "(SELECT position FROM board WHERE member_id = %s AND baseline_label = '')" if her_params else "NULL"
    # The summary row makes the answer never empty: the board's size and her position come even for a page past
    # the end, in the same query.
    sql = f"""
        WITH {counted},
        entries AS (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY member_id, baseline_label ORDER BY {choice_order}) AS pick
            FROM counted
        ),
        board AS (
            SELECT id, member_id, baseline_label,
                   ROW_NUMBER() OVER (ORDER BY {board_order}) AS position,
                   ROW_NUMBER() OVER (PARTITION BY baseline_label = '' ORDER BY {board_order}) AS place
            FROM entries WHERE pick = 1 OR baseline_label <> ''
        ),
        summary AS (SELECT (SELECT COUNT(*) FROM board) AS total, {her} AS her)
        SELECT summary.total, summary.her, b.id, b.position, CASE WHEN b.baseline_label = '' THEN b.place END
        FROM summary LEFT JOIN board b ON ({" OR ".join(wanted)})
        ORDER BY b.position
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params + her_params + wanted_params)
        fetched = cursor.fetchall()
    rows = [RankedRow(evaluation_id=r[2], position=r[3], rank=r[4]) for r in fetched if r[2] is not None]
    return rows, fetched[0][0], fetched[0][1]
