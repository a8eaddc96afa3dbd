"""Finding and masking API keys in a notebook's code (the course notebooks take Comet, Opik and OpenRouter keys).

Pure functions of strings, run inside the notebook's limited child: the scan looks at code cells, where the labs
ask for keys; the masking then replaces every value found wherever it occurs (outputs echo keys too).
"""

import re

MASK = "[credential removed]"

# Values that are credentials whatever they are assigned to.
TOKEN_PATTERNS = [
    ("OpenRouter key", re.compile(r"sk-or-v1-[A-Za-z0-9]{16,}")),
    ("OpenAI-style key", re.compile(r"sk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
    ("Hugging Face token", re.compile(r"hf_[A-Za-z0-9]{20,}")),
]
# A string literal given to a name or keyword that says it holds a secret: COMET_API_KEY = "...",
# os.environ["OPIK_API_KEY"] = "...", comet_ml.login(api_key="...").
NAME = r"[A-Za-z_]*(?:API_?KEY|TOKEN|SECRET|PASSWORD|api_?key|token|secret|password)[A-Za-z_]*"
ASSIGNED = re.compile(
    r"""(?P<name>""" + NAME + r""")["']?\]?\s*[=:]\s*(?P<quote>["'])(?P<value>[^"'\s]{8,})(?P=quote)"""
)
SHOWN_CHARS = 4


def _hint(value: str) -> str:
    return value[:SHOWN_CHARS] + "…" if len(value) > SHOWN_CHARS * 3 else "…"


def scan_code(cells: list[tuple[int, str]]) -> tuple[list[dict], set[str]]:
    """Findings (cell number from 1, line, what, a hint she recognises) and the secret values themselves."""
    findings: list[dict] = []
    values: set[str] = set()
    for number, source in cells:
        for line_number, line in enumerate(source.splitlines(), start=1):
            found: dict[str, str] = {}
            for match in ASSIGNED.finditer(line):
                found.setdefault(match["value"], f"value of {match['name']}")
            for label, pattern in TOKEN_PATTERNS:
                for match in pattern.finditer(line):
                    if not any(match.group(0) in value or value in match.group(0) for value in found):
                        found.setdefault(match.group(0), label)
            for value, what in found.items():
                values.add(value)
                findings.append({"cell": number, "line": line_number, "what": what, "hint": _hint(value)})
    return findings, values


def mask(text: str, values: set[str]) -> str:
    # Longest first, so a key that contains another found value is masked whole.
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def mask_tree(node, values: set[str]):
    """The JSON tree of a notebook with every found value masked in every string."""
    if not values:
        return node
    if isinstance(node, str):
        return mask(node, values)
    if isinstance(node, list):
        return [mask_tree(item, values) for item in node]
    if isinstance(node, dict):
        return {key: mask_tree(item, values) for key, item in node.items()}
    return node
