"""Whether a generated tune is playable ABC: music21 parses it, it has the headers, enough notes, and full bars."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REQUIRED_HEADERS = ("X", "T", "M", "K")
MIN_NOTES = 8
MIN_FULL_BAR_SHARE = 0.5  # of the bars between the first (a pickup) and the last
HEADER_LINE = re.compile(r"^([A-Za-z]):(.*)$")


@dataclass
class Validity:
    valid: bool
    reason: str  # "ok" or why not, short and safe to show
    notes: int = 0
    bars: int = 0
    full_bars: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def abc_headers(text: str) -> dict[str, str]:
    """The header fields (first occurrence of each letter) that precede the tune body."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        match = HEADER_LINE.match(line.strip())
        if not match:
            if line.strip():
                break  # the body has started
            continue
        headers.setdefault(match.group(1), match.group(2).strip())
        if match.group(1) == "K":
            break  # K: closes the header in ABC
    return headers


def check_abc(text: str) -> Validity:
    headers = abc_headers(text)
    missing = [h for h in REQUIRED_HEADERS if not headers.get(h)]
    if missing:
        return Validity(False, f"missing header {', '.join(h + ':' for h in missing)}", headers=headers)
    try:
        score = _parse(text)
    except Exception as exc:  # music21 raises many kinds of errors on broken input
        return Validity(False, f"music21 cannot parse it ({type(exc).__name__})", headers=headers)
    notes = len(score.flatten().notes)
    if notes < MIN_NOTES:
        return Validity(False, f"only {notes} notes (at least {MIN_NOTES} needed)", notes=notes, headers=headers)
    bars = full = 0
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    for part in parts:
        measures = list(part.getElementsByClass("Measure"))
        # The first bar may be a pickup and the last may complete it, so neither is judged.
        for measure in measures[1:-1]:
            try:
                expected = measure.barDuration.quarterLength
            except Exception:  # noqa: S112 - a bar without a metre is not judged
                continue
            bars += 1
            full += int(abs(measure.duration.quarterLength - expected) < 1e-9)
    if bars == 0:
        return Validity(False, "too few bars to judge the metre", notes=notes, headers=headers)
    if full / bars < MIN_FULL_BAR_SHARE:
        return Validity(
            False, f"only {full} of {bars} bars fill the metre", notes=notes, bars=bars, full_bars=full, headers=headers
        )
    return Validity(True, "ok", notes=notes, bars=bars, full_bars=full, headers=headers)


def _parse(text: str):
    from music21 import converter

    return converter.parse(text, format="abc", forceSource=True)
