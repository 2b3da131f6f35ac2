"""Expand the hand-written templates of ``_templates.py`` into examples (seeded, no network).

The red-flag data loader calls ``build()`` on every load; run as a script
(``.venv/bin/python training_data/build_written.py``) it writes the same rows to ``written.jsonl`` to read them.
Each template is filled with random slot values and styled like a call transcript: mostly ASR-style (lower case,
no punctuation, dropped apostrophes, disfluencies such as "um", "you know" and repeated words), sometimes cased
with punctuation. A template and all its expansions share one split (~70/15/15 per group, by a seeded hash of
the template id), so the test split measures generalisation to unseen phrasings, not to unseen slot values.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _templates import GROUPS, SLOTS  # noqa: E402

SEED = 13
OUT = HERE / "written.jsonl"
CODES = {
    "P": "profanity",
    "I": "insult",
    "T": "threat",
    "E": "escalation_request",
    "L": "legal_threat",
    "C": "churn_risk",
    "F": "frustration",
}
DEFAULT_CODES = {
    "esc": "E",
    "legal": "L",
    "churn": "C",
    "frust": "F",
    "threat": "T",
    "abuse": "I",
    "neg": "-",
}
# Attempts per template; duplicates are dropped, so templates without slots give fewer examples.
EXPANSIONS = {"esc": 9, "legal": 9, "churn": 9, "frust": 8, "threat": 13, "abuse": 7, "neg": 15}
FILLERS = ["um", "uh", "like", "you know", "i mean", "erm", "so", "well", "okay so"]


@dataclass(frozen=True)
class Template:
    """One hand-written line: its id, labels, earlier turn (or none) and text with slots."""

    id: str
    group: str
    labels: tuple[str, ...]
    context: str | None
    text: str


def parse(group: str, index: int, line: str) -> Template:
    """Parse ``"CODES | [context >> ]text"``; without CODES the group's default applies."""
    codes, sep, rest = line.partition(" | ")
    if not sep:
        codes, rest = DEFAULT_CODES[group], line
    labels = tuple(sorted(CODES[c] for c in codes.strip() if c != "-"))
    context, sep, text = rest.partition(" >> ")
    if not sep:
        context, text = "", rest
    return Template(f"{group}-{index:03d}", group, labels, context.strip() or None, text.strip())


def fill(text: str, rng: random.Random) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(SLOTS[m.group(1)]), text)


def asr_style(text: str, rng: random.Random) -> str:
    """Lower case without punctuation, maybe without apostrophes, with a few disfluencies."""
    words = re.sub(r"[^\w\s'&$£]", " ", text.lower()).split()
    if rng.random() < 0.5:
        words = [w.replace("'", "") for w in words]
    out: list[str] = []
    for i, w in enumerate(words):
        if i < len(words) - 1 and rng.random() < 0.06:
            out.append(rng.choice(FILLERS))
        out.append(w)
        if rng.random() < 0.04:
            out.append(w)  # a stutter: "i i want"
    if rng.random() < 0.25:
        out.insert(0, rng.choice(FILLERS))
    return " ".join(out)


def cased_style(text: str, rng: random.Random) -> str:
    """Sentence case with an end mark, as a careful transcriber or a chat would write it."""
    text = re.sub(r"\bi\b", "I", text)
    text = re.sub(r"\bim\b", "I'm", text)
    end = rng.choice([".", ".", "!", "?"]) if not text.endswith("?") else ""
    return text[:1].upper() + text[1:] + end


def style(text: str, rng: random.Random) -> str:
    return asr_style(text, rng) if rng.random() < 0.7 else cased_style(text, rng)


def template_splits(templates: list[Template]) -> dict[str, str]:
    """~70/15/15: each template's split is a function of its own seeded hash only.

    So appending templates never moves an existing one between splits (a rank-based cut did: adding 313
    templates moved 16 old ones, which is why the rule changed once, in the second batch).
    """
    out: dict[str, str] = {}
    for t in templates:
        u = int(hashlib.sha1(f"{SEED}:{t.id}".encode()).hexdigest()[:12], 16) / float(1 << 48)
        out[t.id] = "test" if u < 0.15 else "valid" if u < 0.30 else "train"
    return out


def build() -> list[dict[str, object]]:
    templates = [parse(g, i, line) for g, lines in GROUPS.items() for i, line in enumerate(lines)]
    splits = template_splits(templates)
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for t in templates:
        rng = random.Random(f"{SEED}:{t.id}")  # per template: editing one line does not reshuffle others
        for k in range(EXPANSIONS[t.group]):
            text = style(fill(t.text, rng), rng)
            context = style(fill(t.context, rng), rng) if t.context else None
            key = " ".join(re.findall(r"\w+", text.lower()))
            if key in seen:
                continue
            seen.add(key)
            row: dict[str, object] = {"id": f"{t.id}-{k}", "template_id": t.id, "text": text}
            if context:
                row["context"] = [context]
            row["labels"] = list(t.labels)
            row["split"] = splits[t.id]
            rows.append(row)
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} examples to {OUT}")


if __name__ == "__main__":
    main()
