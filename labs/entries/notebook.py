"""Checking, masking and rendering an uploaded notebook once, at upload, in a limited child (never executed).

The parent side is ``render_notebook``: it runs ``python -m labs.entries.notebook NOTEBOOK OUT_DIR --max-output
BYTES`` through ``grader.limited_child`` (an environment built from nothing, CPU, memory, file-size and wall-clock
limits). The child parses the JSON, validates it with nbformat, refuses outputs beyond the caps, finds credentials
in code cells and masks them everywhere, drops JavaScript and widget outputs, converts the rest to HTML with
nbconvert (no execution) and passes it through ``labs.entries.sanitise``. It writes ``masked.ipynb`` and
``rendered.html`` into OUT_DIR and prints one JSON line: {"ok": true, "findings": [...]} or {"ok": false, "error"}.
"""

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grader.limited_child import ChildLimits, run_limited

logger = logging.getLogger(__name__)

PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
MAX_OUTPUT_BYTES = 5 * 1024 * 1024  # one output's data (an image, a long log)
MAX_OUTPUTS_BYTES = 15 * 1024 * 1024  # all outputs together
MAX_CELLS = 3000
MB = 1024 * 1024
# Outputs that only work by running code in the viewer's browser; the rendering shows none of them.
ACTIVE_TYPES = ("javascript", "ecmascript", "widget-view", "widget-state", "image/svg+xml")
# Lab 3's do-not-modify cell prints this line; its number is read from her notebook, never typed by her.
YODA_LINE = re.compile(r"Yoda test loglikelihood\W{0,8}?(-?\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class NotebookRender:
    ok: bool
    error: str = ""
    findings: list[dict] = field(default_factory=list)
    last_cell: int | None = None  # the number of the notebook's last code cell
    reported: float | None = None  # the "Yoda test loglikelihood" its output prints, if it does


def render_notebook(path: Path, out_dir: Path, *, max_bytes: int) -> NotebookRender:
    """Check and render the notebook at ``path`` into ``out_dir``; a refusal carries a message for her."""
    limits = ChildLimits(
        cpu_seconds=30,
        memory_bytes=1536 * MB + 8 * max_bytes,
        file_size_bytes=3 * max_bytes + MB,
        wall_seconds=60,
    )
    done = run_limited(
        "labs.entries.notebook", [str(path), str(out_dir)], limits=limits, pythonpath=[PROJECT_ROOT], cwd=out_dir
    )
    try:
        verdict = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        if not isinstance(verdict, dict):
            raise ValueError("not an object")
    except (IndexError, ValueError):
        logger.warning(
            "notebook render of %s failed: exit %s, timed out %s, stderr %r",
            path,
            done.returncode,
            done.timed_out,
            done.stderr[-2000:],
        )
        return NotebookRender(
            False, "The notebook could not be rendered within the platform's limits; clear large outputs and retry."
        )
    if not verdict.get("ok"):
        return NotebookRender(False, str(verdict.get("error") or "The notebook could not be read."))
    findings = [item for item in verdict.get("findings") or [] if isinstance(item, dict)]
    last, reported = verdict.get("last_cell"), verdict.get("reported")
    return NotebookRender(
        True,
        findings=findings,
        last_cell=last if isinstance(last, int) and not isinstance(last, bool) else None,
        reported=float(reported) if isinstance(reported, (int, float)) and not isinstance(reported, bool) else None,
    )


# The child side: everything below runs in the limited process only.


class Refusal(Exception):
    pass


def _size(value) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "replace"))
    if isinstance(value, list):
        return sum(_size(item) for item in value)
    return len(json.dumps(value))


def _check_caps(raw: dict) -> None:
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise Refusal("This file is not a Jupyter notebook (it has no list of cells).")
    if len(cells) > MAX_CELLS:
        raise Refusal(f"The notebook has {len(cells)} cells; at most {MAX_CELLS} are accepted.")
    total = 0
    for number, cell in enumerate(cells, start=1):
        for output in (cell.get("outputs") or []) if isinstance(cell, dict) else []:
            size = _size(output) if isinstance(output, (dict, list, str)) else 0
            total += size
            if size > MAX_OUTPUT_BYTES:
                raise Refusal(
                    f"An output of cell {number} is {size // MB} MB; outputs may be at most "
                    f"{MAX_OUTPUT_BYTES // MB} MB each. Clear that output (or save a smaller figure) and upload again."
                )
    if total > MAX_OUTPUTS_BYTES:
        raise Refusal(
            f"The notebook's outputs add up to {total // MB} MB; at most {MAX_OUTPUTS_BYTES // MB} MB are accepted. "
            "Clear the largest outputs and upload again."
        )


def _drop_active_outputs(notebook) -> None:
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is not None:
                for mime in [m for m in data if any(kind in m for kind in ACTIVE_TYPES)]:
                    del data[mime]
                if not data:
                    continue
            kept.append(output)
        cell["outputs"] = kept


def _output_text(output: dict) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    else:
        text = (output.get("data") or {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


def last_cell_report(notebook) -> tuple[int | None, float | None]:
    """The number of the last code cell, and the Yoda test loglikelihood its outputs print (the last one shown)."""
    code = [(number, cell) for number, cell in enumerate(notebook.cells, start=1) if cell.get("cell_type") == "code"]
    if not code:
        return None, None
    number, cell = code[-1]
    text = "\n".join(_output_text(output) for output in cell.get("outputs", []))
    found = YODA_LINE.findall(text)
    return number, (float(found[-1]) if found else None)


def process(source: Path, out_dir: Path) -> dict:
    import nbformat
    from nbconvert import HTMLExporter

    from labs.entries.credentials import mask_tree, scan_code
    from labs.entries.sanitise import sanitise

    try:
        raw = json.loads(source.read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refusal(f"This file is not a notebook: it is not valid JSON ({exc}). Upload the .ipynb file.") from None
    if not isinstance(raw, dict):
        raise Refusal("This file is not a Jupyter notebook (its JSON is not an object).")
    _check_caps(raw)
    cells = raw["cells"]
    code = [
        (number, "".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source", "")))
        for number, c in enumerate(cells, start=1)
        if isinstance(c, dict) and c.get("cell_type") == "code"
    ]
    findings, values = scan_code(code)
    raw = mask_tree(raw, values)
    try:
        notebook = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds; all mean "not a notebook"
        message = str(exc).splitlines()[0][:200]
        raise Refusal(f"This file is not a valid Jupyter notebook ({message}).") from None
    _drop_active_outputs(notebook)
    last_cell, reported = last_cell_report(notebook)
    (out_dir / "masked.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(notebook)
    (out_dir / "rendered.html").write_text(sanitise(body), encoding="utf-8")
    return {"findings": findings, "last_cell": last_cell, "reported": reported}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    os.umask(0o077)
    logging.disable(logging.CRITICAL)
    try:
        report = process(args.notebook, args.out)
    except Refusal as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    except (MemoryError, RecursionError):
        print(json.dumps({"ok": False, "error": "The notebook is too large or too deeply nested to render."}))
        return 1
    print(json.dumps({"ok": True, **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
