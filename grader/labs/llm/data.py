"""Lab 3's texts: (prompt, answer) pairs built from the course's style texts, and their deterministic splits."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

# Words that never make a topic: function words and the styles' own fillers.
STOPWORDS = set(
    """a about above after again against all also am an and any are around as at be because been before being
    below between both but by can could did do does doing down during each even few for from further had has have
    having he her here hers him his how i if in into is it its itself just like many may me might more most much
    must my no nor not now of off on once only or other our out over own same she should so some such than that the
    their them then there these they this those through thus to too under until up upon very was we were what when
    where which while who whom why will with would yes yet you your hmm hmmm hmmmm mmm mmmm mm young padawan indeed
    well sure ye ya me lad lass top mornin hearty aye begorrah""".split()
)
TEMPLATES = (
    "Tell me about {topic}.",
    "What can you tell me about {topic}?",
    "Explain {topic} to me.",
    "What do you know about {topic}?",
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)$")


@dataclass(frozen=True)
class Pair:
    prompt: str
    answer: str

    def to_json(self) -> dict[str, str]:
        return {"prompt": self.prompt, "answer": self.answer}


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def topic_of(text: str) -> str:
    """A short topic for a text: its longest run of capitalised words inside sentences, else two content words."""
    runs: list[list[str]] = []
    current: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        starts_sentence = bool(_SENTENCE_START.search(text[: match.start()]))
        if word[0].isupper() and not starts_sentence and word.lower() not in STOPWORDS:
            current.append(word)
        else:
            if current:
                runs.append(current)
            current = []
        # a comma or other punctuation between capitalised words ends the run
        following = text[match.end() : match.end() + 1]
        if following and following not in " " and current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    if runs:
        best = max(runs, key=len)  # max keeps the first of equally long runs
        return " ".join(best[:4])
    content = [w for w in _WORD.findall(text) if len(w) >= 4 and w.lower() not in STOPWORDS]
    if not content:
        return "that"
    longest = sorted(dict.fromkeys(content), key=lambda w: (-len(w), content.index(w)))[:2]
    longest.sort(key=content.index)
    return " and ".join(w.lower() for w in longest)


def prompt_for(text: str, index: int) -> str:
    return TEMPLATES[index % len(TEMPLATES)].format(topic=topic_of(text))


def make_pairs(answers: list[str]) -> list[Pair]:
    """Pair each answer with a prompt derived from the answer's own words (the course data has no questions)."""
    return [Pair(prompt=prompt_for(text, i), answer=text) for i, text in enumerate(answers)]


_BROGUE = [
    (r"\btop o' the mornin' to ye[^.!?]*[.!?]\s*", ""),
    (r"\bme hearty\b", "friend"),
    (r"\bYe\b", "You"),
    (r"\bye\b", "you"),
    (r"\bo'(?!\w)", "of"),
    (r"\bme\b", "my"),
    (r"\bfer\b", "for"),
    (r"\bwee\b", "small"),
    (r"\blassie\b", "girl"),
    (r"\blad\b", "boy"),
    (r"\bsure as [^,.!?]*", ""),
    (r"(\w)in'(?!\w)", r"\1ing"),
]


def plain_version(text: str) -> str:
    """A leprechaun text with the brogue taken out: ordinary English word order, the plain style's stand-in."""
    out = text
    for pattern, repl in _BROGUE:
        out = re.sub(pattern, repl, out, flags=0 if any(c.isupper() for c in pattern) else re.I)
    out = re.sub(r"\s+", " ", out).strip()
    return out[:1].upper() + out[1:] if out else text


@dataclass(frozen=True)
class Split:
    train: list[int]
    public: list[int]
    private: list[int]


def split_indices(n: int, *, seed: int, hidden_per_split: int) -> Split:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    private = sorted(order[:hidden_per_split])
    public = sorted(order[hidden_per_split : 2 * hidden_per_split])
    train = sorted(order[2 * hidden_per_split :])
    return Split(train=train, public=public, private=private)


def write_jsonl(path: Path, pairs: list[Pair]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.to_json(), ensure_ascii=False, sort_keys=True) + "\n")


def read_jsonl(path: Path) -> list[Pair]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            pairs.append(Pair(prompt=str(item["prompt"]), answer=str(item["answer"])))
    return pairs
