"""Our written examples: templates in ``training_data/templates/`` expanded into transcript-like rows.

Data files, not code: each group is ``<group>.tsv`` (header ``id, labels, context, text``; labels are the code
letters of ``CODES`` or ``-`` for none; context empty when there is no earlier turn), the slot lists are
``slots.yaml``, and ``groups.yaml`` lists the groups in build order with their expansion counts.

Each template is filled with seeded slot values and styled like a call transcript: mostly ASR-style (lower
case, no punctuation, dropped apostrophes, disfluencies such as "um", "you know" and repeated words), sometimes
cased with punctuation. A template and all its expansions share one split, fixed by its id (``template_splits``),
so the test split measures unseen phrasings, not unseen slot values. Expanding takes about a second and is
cached per process.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import yaml

from assistant.errors import DataError
from assistant.labels import LABELS
from assistant.redflags.data.examples import SPLITS, Example, Split

SEED: Final = 13
CODES: Final[dict[str, str]] = {
    "P": "profanity",
    "I": "insult",
    "T": "threat",
    "E": "escalation_request",
    "L": "legal_threat",
    "C": "churn_risk",
    "F": "frustration",
}
FILLERS: Final = ["um", "uh", "like", "you know", "i mean", "erm", "so", "well", "okay so"]
HEADER: Final = ("id", "labels", "context", "text")
# Near-duplicate rule: two templates whose texts (lower case, apostrophes dropped, slot names as words) have a
# difflib ratio >= this over their word sequences are paraphrases ("i want to end my {service}" / "i want to
# cancel my {service}", 0.83) and share a split. 0.75 catches one-word swaps in short lines without joining
# lines that merely share a frame ("is there anything else today ..."), which a context-inclusive or
# character-level ratio did.
NEAR_DUPLICATE_RATIO: Final = 0.75
_ID_RE: Final = re.compile(r"^([a-z_]+)-(\d{3,})$")


@dataclass(frozen=True)
class Template:
    """One hand-written line: its id, labels, earlier turn (or none) and text with ``{slot}`` names."""

    id: str
    group: str
    labels: tuple[str, ...]
    context: str | None
    text: str

    @property
    def number(self) -> int:
        return int(self.id.rsplit("-", 1)[1])


@dataclass(frozen=True)
class TemplateSet:
    groups: dict[str, int]  # group -> expansions, in build order
    slots: dict[str, list[str]]
    templates: list[Template]  # build order: groups in order, then by id number


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"expected the template file {path}; is this a full checkout of the project?")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e})") from e


def _read_group(path: Path, group: str, slots: dict[str, list[str]]) -> list[Template]:
    if not path.is_file():
        raise DataError(
            f"groups.yaml names the group {group!r} but {path} does not exist; add it or drop the entry"
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise DataError(f"{path}:1: expected the header {'<TAB>'.join(HEADER)}")
    out: list[Template] = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataError(
                f"{path}:{n}: expected 4 tab-separated fields (id, labels, context, text), got {len(parts)}"
            )
        id_, codes, context, text = (p.strip() for p in parts)
        m = _ID_RE.match(id_)
        if m is None or m.group(1) != group:
            raise DataError(f"{path}:{n}: id {id_!r} must be '{group}-NNN' (the group, a dash, a number)")
        bad = [c for c in codes if c not in CODES and c != "-"]
        if bad or not codes or ("-" in codes and len(codes) > 1):
            raise DataError(f"{path}:{n}: labels {codes!r}: use letters of {''.join(CODES)} or '-' for none")
        if not text:
            raise DataError(f"{path}:{n}: empty text")
        for slot in re.findall(r"\{(\w+)\}", context + " " + text):
            if slot not in slots:
                raise DataError(f"{path}:{n}: unknown slot {{{slot}}}; add it to slots.yaml")
        labels = tuple(sorted(CODES[c] for c in codes if c != "-"))
        out.append(Template(id_, group, labels, context or None, text))
    return out


def load_templates(templates_dir: Path) -> TemplateSet:
    """Read and check ``groups.yaml``, ``slots.yaml`` and every group's ``.tsv``.

    Raises:
        DataError: a missing file, a malformed line (with ``path:line``), a duplicate id or an unknown slot.
    """
    groups_raw = _read_yaml(templates_dir / "groups.yaml")
    slots_raw = _read_yaml(templates_dir / "slots.yaml")
    if not isinstance(groups_raw, dict) or not isinstance(slots_raw, dict):
        raise DataError(f"{templates_dir}: groups.yaml and slots.yaml must each be a mapping")
    slots = {str(k): [str(v) for v in vs] for k, vs in slots_raw.items()}
    groups: dict[str, int] = {}
    for g, spec in groups_raw.items():
        n = spec.get("expansions") if isinstance(spec, dict) else None
        if not isinstance(n, int) or n <= 0:
            raise DataError(f"{templates_dir}/groups.yaml: group {g!r} needs a positive 'expansions'")
        groups[str(g)] = n
    templates: list[Template] = []
    seen: set[str] = set()
    for g in groups:
        for t in sorted(_read_group(templates_dir / f"{g}.tsv", g, slots), key=lambda t: t.number):
            if t.id in seen:
                raise DataError(
                    f"{templates_dir}/{g}.tsv: duplicate template id {t.id!r}; ids are never reused"
                )
            seen.add(t.id)
            templates.append(t)
    return TemplateSet(groups, slots, templates)


def _hash_split(template_id: str) -> Split:
    u = int(hashlib.sha1(f"{SEED}:{template_id}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    return "test" if u < 0.15 else "valid" if u < 0.30 else "train"


def _words(template: Template) -> list[str]:
    return re.findall(r"[\w{}]+", template.text.lower().replace("'", ""))


def template_splits(templates: list[Template]) -> dict[str, Split]:
    """Each template's split: ~70/15/15 by a seeded hash of its id, unless it paraphrases an earlier template.

    A template whose text is a near duplicate (``NEAR_DUPLICATE_RATIO``) of templates before it in build order
    takes the split of the most similar of them (the first on a tie), so paraphrases never straddle splits. The
    order is by id, not by line, so inserting a line anywhere moves nothing; a new template (a new id, the next
    number of its group) can only follow an existing one, except a near duplicate in an earlier group of a
    template in a later group, which ``tests/redflags/test_templates.py`` then reports.
    """
    out: dict[str, Split] = {}
    words = [_words(t) for t in templates]
    for i, t in enumerate(templates):
        best, best_ratio = -1, NEAR_DUPLICATE_RATIO
        sm = difflib.SequenceMatcher(None, [], words[i], autojunk=False)
        for j in range(i):
            sm.set_seq1(words[j])
            if sm.real_quick_ratio() < best_ratio or sm.quick_ratio() < best_ratio:
                continue
            r = sm.ratio()
            if r >= best_ratio and (best < 0 or r > best_ratio):
                best, best_ratio = j, r
        out[t.id] = out[templates[best].id] if best >= 0 else _hash_split(t.id)
    return out


def _fill(text: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(slots[m.group(1)]), text)


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


def _style(text: str, rng: random.Random) -> str:
    return asr_style(text, rng) if rng.random() < 0.7 else cased_style(text, rng)


def build_rows(templates_dir: Path) -> list[dict[str, Any]]:
    """Every template's expansions as rows ``{id, template_id, text, [context], labels, split}``."""
    ts = load_templates(templates_dir)
    splits = template_splits(ts.templates)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for t in ts.templates:
        rng = random.Random(f"{SEED}:{t.id}")  # per template: editing one line does not reshuffle others
        for k in range(ts.groups[t.group]):
            text = _style(_fill(t.text, ts.slots, rng), rng)
            context = _style(_fill(t.context, ts.slots, rng), rng) if t.context else None
            key = " ".join(re.findall(r"\w+", text.lower()))
            if key in seen:
                continue
            seen.add(key)
            row: dict[str, Any] = {"id": f"{t.id}-{k}", "template_id": t.id, "text": text}
            if context:
                row["context"] = [context]
            row["labels"] = list(t.labels)
            row["split"] = splits[t.id]
            rows.append(row)
    return rows


@functools.lru_cache(maxsize=4)
def _cached_rows(templates_dir: Path, stamp: tuple[tuple[str, int], ...]) -> tuple[dict[str, Any], ...]:
    return tuple(build_rows(templates_dir))


def written_rows(written_dir: Path) -> list[dict[str, Any]]:
    """The expanded rows of the templates under ``written_dir/templates`` (cached while the files are unchanged).

    The rows are derived data (seeded), so they are built here rather than kept as a file that could go stale
    against the templates. ``training_data/build_written.py`` writes the same rows to ``written.jsonl``.
    """
    tdir = (written_dir / "templates").resolve()
    if not tdir.is_dir():
        raise DataError(f"expected the written templates in {tdir}; is this a full checkout of the project?")
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in tdir.iterdir() if p.is_file()))
    return [dict(r) for r in _cached_rows(tdir, stamp)]


def written_examples(written_dir: Path) -> list[Example]:
    out: list[Example] = []
    for r in written_rows(written_dir):
        labels = frozenset(r["labels"])
        if not labels <= frozenset(LABELS) or r["split"] not in SPLITS:
            raise DataError(
                f"written template {r['template_id']}: unknown label or split; fix training_data/templates/"
            )
        out.append(
            Example(
                r["text"].strip(),
                tuple(r.get("context", ())),
                labels,
                frozenset(LABELS),
                "written",
                cast(Split, r["split"]),
                r["id"],
            )
        )
    return out
