"""The behavioural test suite for call language (CheckList-style), run by ``assistant eval checklist``.

Cases are hand-written, one JSON Lines file per capability under ``eval/data/checklist/`` (never taken from a
data set's test split, and kept apart from the training templates). Three kinds of test (Ribeiro et al., 2020):

* ``MFT`` (minimum functionality): ``{"type": "MFT", "text", "context"?, "expect": {name: bool}}``. Passes when
  the system's decision for every expected label or group is the expected one.
* ``INV`` (invariance): ``{"type": "INV", "text", "labels": [names], "perturb"?: [...], "variants"?: [...]}``.
  Each variant (written, or made from the seed by the named perturbations, all of :data:`PERTURBATIONS` when
  ``perturb`` is absent) is one test; it passes when the decisions on ``labels`` are the same for the variant
  as for the seed.
* ``DIR`` (direction): ``{"type": "DIR", "text", "variant", "label", "direction": "up"|"down",
  "tolerance"?}``. Passes when the label's score moves the expected way, within ``tolerance`` (default
  :data:`DIR_TOLERANCE`): for ``up``, score(variant) >= score(text) - tolerance.

A system is scored on a test only when it decides every name the test looks at (alt-profanity-check decides
``profanity`` and ``abusive`` only); the report counts such tests per system (``n``) and leaves out the rest.
``run_suite`` is pure (cases and scorers in, a report out); the CLI loads the model and writes files.

Example:
    >>> case = Case("x-001", "demo", "MFT", "I want to cancel", (), expect={"churn_risk": True})
    >>> case.names
    ('churn_risk',)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from assistant.errors import InvalidInputError
from assistant.labels import is_known

CASES_DIR: Final = Path(__file__).resolve().parent / "data" / "checklist"
DIR_TOLERANCE: Final = 0.1
KINDS: Final = ("MFT", "INV", "DIR")

# The capabilities the suite tests, in report order; each has one case file ``<name>.jsonl``.
CAPABILITIES: Final[dict[str, str]] = {
    "negation": "negation of every label: a negated red flag is no red flag for that label",
    "reported_speech": "reported or quoted speech: what someone else said is not the caller's abuse or threat",
    "counter_speech": "counter-speech: condemning abuse or hate is not abuse",
    "identity_mentions": "neutral and positive mentions of identity groups are not abuse",
    "undirected_swearing": "undirected and self-directed swearing: profanity yes, insult no",
    "sexual_harassment": "sexual harassment without swear words is an insult",
    "idioms_not_threats": "idioms of violence that are not threats ('this bill is killing me')",
    "department_transfers": "transfers to a department (hotel, airline, telecom, bank, retail, health) are "
    "escalation requests; a transfer of money or a booking is not",
    "asr_noise": "ASR noise (lower case, no punctuation, fillers, repeats, homophones) changes no decision",
    "two_intents": "two intents in one line: both are flagged, neither is diluted by the other",
}

Scored = dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (scores, decisions) per text


class Scorer(Protocol):
    name: str

    def score(self, texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> Scored: ...


@dataclass(frozen=True)
class Case:
    """One test: an MFT row, one (seed, variant) pair of an INV row, or a DIR row."""

    id: str
    capability: str
    kind: str
    text: str
    context: tuple[str, ...]
    variant: str | None = None
    expect: Mapping[str, bool] = field(default_factory=dict)  # MFT
    labels: tuple[str, ...] = ()  # INV: names whose decisions must not change; DIR: the one label
    direction: str = "up"  # DIR
    tolerance: float = DIR_TOLERANCE  # DIR
    tags: Mapping[str, str] = field(default_factory=dict)  # e.g. domain, perturbation

    @property
    def names(self) -> tuple[str, ...]:
        """The labels and groups this test looks at."""
        return tuple(self.expect) if self.kind == "MFT" else self.labels

    def inputs(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(self.text, self.context)] + (
            [(self.variant, self.context)] if self.variant is not None else []
        )


# ---- ASR perturbations (deterministic per case) ---------------------------------------------------------------
FILLERS: Final = ("um", "uh", "like", "you know", "erm", "so")
HOMOPHONES: Final[dict[str, str]] = {
    "to": "too",
    "too": "to",
    "two": "to",
    "your": "you're",
    "you're": "your",
    "there": "their",
    "their": "there",
    "for": "four",
    "four": "for",
    "know": "no",
    "no": "know",
    "right": "write",
    "by": "buy",
    "here": "hear",
    "hear": "here",
    "week": "weak",
    "one": "won",
    "would": "wood",
    "i'll": "aisle",
    "where": "wear",
    "new": "knew",
    "our": "hour",
    "wait": "weight",
}


def asr_text(text: str) -> str:
    """What a speech recogniser typically emits: lower case, no punctuation but apostrophes."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def _rng(text: str, how: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{how}|{text}".encode()).hexdigest()[:12], 16))


def add_fillers(text: str, rng: random.Random, n: int = 2) -> str:
    words = asr_text(text).split()
    for _ in range(n):
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
    return " ".join(words)


def add_repeats(text: str, rng: random.Random, n: int = 2) -> str:
    words = asr_text(text).split()
    for i in sorted(rng.sample(range(len(words)), min(n, len(words))), reverse=True):
        words.insert(i, words[i])
    return " ".join(words)


def swap_homophones(text: str, rng: random.Random, n: int = 2) -> str | None:
    """Up to ``n`` words swapped for a homophone; None when the text has none to swap."""
    words = asr_text(text).split()
    where = [i for i, w in enumerate(words) if w in HOMOPHONES]
    if not where:
        return None
    for i in rng.sample(where, min(n, len(where))):
        words[i] = HOMOPHONES[words[i]]
    return " ".join(words)


def perturb(text: str, how: str) -> str | None:
    """One ASR-noise variant of ``text``; None when ``how`` does not apply (no homophone to swap)."""
    rng = _rng(text, how)
    if how == "asr":
        return asr_text(text)
    if how == "fillers":
        return add_fillers(text, rng)
    if how == "repeats":
        return add_repeats(text, rng)
    if how == "homophones":
        return swap_homophones(text, rng)
    if how == "all":
        swapped = swap_homophones(text, rng) or asr_text(text)
        return add_repeats(add_fillers(swapped, rng, n=1), rng, n=1)
    raise InvalidInputError(f"unknown perturbation {how!r}; use one of {', '.join(PERTURBATIONS)}")


PERTURBATIONS: Final = ("asr", "fillers", "repeats", "homophones", "all")


# ---- loading ------------------------------------------------------------------------------------------------
def load_cases(folder: Path = CASES_DIR, capabilities: Sequence[str] | None = None) -> list[Case]:
    """Every test of the chosen capabilities (default: all), INV rows expanded to one test per variant."""
    chosen = list(capabilities) if capabilities else list(CAPABILITIES)
    unknown = [c for c in chosen if c not in CAPABILITIES]
    if unknown:
        raise InvalidInputError(f"unknown capability {unknown[0]!r}; choose from {', '.join(CAPABILITIES)}")
    cases: list[Case] = []
    for cap in chosen:
        path = folder / f"{cap}.jsonl"
        if not path.exists():
            raise InvalidInputError(f"no case file {path} for capability {cap!r}")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{path}:{lineno} is not JSON ({e})") from e
            cases += _cases_from_row(row, cap, f"{path}:{lineno}")
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInputError(f"case id {dup!r} occurs twice; ids must be unique")
    return cases


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInputError(f"{where}: give a non-empty list of labels or groups")
    bad = [v for v in value if not isinstance(v, str) or not is_known(v)]
    if bad:
        raise InvalidInputError(f"{where}: {bad[0]!r} is no label or group of shared/PRODUCT.md")
    return tuple(value)


def _cases_from_row(row: Any, cap: str, where: str) -> list[Case]:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
        raise InvalidInputError(f"{where}: a case is an object with a non-empty 'text'")
    kind = row.get("type")
    if kind not in KINDS:
        raise InvalidInputError(f"{where}: 'type' must be one of {', '.join(KINDS)}, not {kind!r}")
    case_id = str(row.get("id") or "")
    if not case_id:
        raise InvalidInputError(f"{where}: every case needs an 'id'")
    context = tuple(str(c) for c in row.get("context") or ())
    reserved = {"id", "type", "text", "context", "expect", "labels", "variant", "variants", "perturb"}
    reserved |= {"label", "direction", "tolerance"}
    tags = {k: str(v) for k, v in row.items() if k not in reserved}
    text = row["text"]
    if kind == "MFT":
        expect = row.get("expect")
        if not isinstance(expect, dict) or not expect:
            raise InvalidInputError(f"{where}: an MFT case needs 'expect': {{label or group: true|false}}")
        _names(list(expect), where)
        if not all(isinstance(v, bool) for v in expect.values()):
            raise InvalidInputError(f"{where}: 'expect' values are true or false")
        return [Case(case_id, cap, kind, text, context, expect=dict(expect), tags=tags)]
    if kind == "DIR":
        label, direction = row.get("label"), row.get("direction")
        variant = row.get("variant")
        if not isinstance(variant, str) or not variant.strip():
            raise InvalidInputError(f"{where}: a DIR case needs a 'variant' text")
        if direction not in ("up", "down"):
            raise InvalidInputError(f"{where}: 'direction' is 'up' or 'down', not {direction!r}")
        tolerance = float(row.get("tolerance", DIR_TOLERANCE))
        return [
            Case(
                case_id,
                cap,
                kind,
                text,
                context,
                variant=variant,
                labels=_names([label], where),
                direction=direction,
                tolerance=tolerance,
                tags=tags,
            )
        ]
    labels = _names(row.get("labels"), where)
    written = row.get("variants") or []
    if not isinstance(written, list) or not all(isinstance(v, str) and v.strip() for v in written):
        raise InvalidInputError(f"{where}: 'variants' is a list of non-empty texts")
    variants: list[tuple[str, str]] = [("written", v) for v in written]
    perturbations = row.get("perturb", PERTURBATIONS)
    if not isinstance(perturbations, list | tuple):
        raise InvalidInputError(f"{where}: 'perturb' is a list of {', '.join(PERTURBATIONS)}")
    for how in perturbations:
        made = perturb(text, how)
        if made is not None:
            variants.append((how, made))
    out = []
    seen: set[str] = set()
    for how, variant in variants:
        if variant in seen:
            continue
        seen.add(variant)
        out.append(
            Case(
                f"{case_id}/{how}",
                cap,
                kind,
                text,
                context,
                variant=variant,
                labels=labels,
                tags={**tags, "perturbation": how},
            )
        )
    return out


# ---- running ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    passed: bool
    expected: Any
    got: Any


def judge(case: Case, scored: Scored, index: Mapping[tuple[str, tuple[str, ...]], int]) -> Outcome | None:
    """The outcome of one test for one system, or None when the system does not decide all its names."""
    if any(name not in scored for name in case.names):
        return None
    i = index[(case.text, case.context)]
    if case.kind == "MFT":
        got = {
            n: {"decision": bool(scored[n][1][i]), "score": round(float(scored[n][0][i]), 4)}
            for n in case.names
        }
        passed = all(got[n]["decision"] == want for n, want in case.expect.items())
        return Outcome(passed, dict(case.expect), got)
    if case.variant is None:
        raise InvalidInputError(f"case {case.id}: an {case.kind} test needs a variant")
    j = index[(case.variant, case.context)]
    if case.kind == "INV":
        seed = {n: bool(scored[n][1][i]) for n in case.names}
        var = {n: bool(scored[n][1][j]) for n in case.names}
        return Outcome(seed == var, {"decisions as on the seed": seed}, {"decisions": var})
    label = case.labels[0]
    before, after = float(scored[label][0][i]), float(scored[label][0][j])
    delta = after - before
    passed = delta >= -case.tolerance if case.direction == "up" else delta <= case.tolerance
    return Outcome(
        passed,
        {label: f"{case.direction} (tolerance {case.tolerance})"},
        {label: {"text": round(before, 4), "variant": round(after, 4)}},
    )


def run_suite(cases: Sequence[Case], systems: Sequence[Scorer]) -> dict[str, Any]:
    """Every system on every test; per capability: tests, pass rate per system, and each system's failures."""
    inputs: dict[tuple[str, tuple[str, ...]], int] = {}
    for case in cases:
        for key in case.inputs():
            inputs.setdefault(key, len(inputs))
    keys = list(inputs)
    texts = [t for t, _ in keys]
    contexts = [list(c) for _, c in keys]
    scored = {s.name: s.score(texts, contexts) for s in systems}
    names = [s.name for s in systems]
    caps: dict[str, Any] = {}
    for cap in dict.fromkeys(c.capability for c in cases):
        cap_cases = [c for c in cases if c.capability == cap]
        block: dict[str, Any] = {
            "description": CAPABILITIES.get(cap, ""),
            "n": len(cap_cases),
            "types": {
                k: sum(c.kind == k for c in cap_cases) for k in KINDS if any(c.kind == k for c in cap_cases)
            },
            "systems": {},
            "failures": {},
        }
        for name in names:
            outcomes = [(c, judge(c, scored[name], inputs)) for c in cap_cases]
            judged = [(c, o) for c, o in outcomes if o is not None]
            passed = sum(o.passed for _, o in judged)
            block["systems"][name] = {
                "n": len(judged),
                "passed": passed,
                "pass_rate": round(passed / len(judged), 4) if judged else None,
            }
            block["failures"][name] = [_failure(c, o) for c, o in judged if not o.passed]
        caps[cap] = block
    overall = {}
    for name in names:
        n = sum(b["systems"][name]["n"] for b in caps.values())
        k = sum(b["systems"][name]["passed"] for b in caps.values())
        overall[name] = {"n": n, "passed": k, "pass_rate": round(k / n, 4) if n else None}
    return {
        "suite": "checklist",
        "n_cases": len(cases),
        "systems": names,
        "capabilities": caps,
        "overall": overall,
    }


def _failure(case: Case, outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"id": case.id, "type": case.kind, "text": case.text}
    if case.variant is not None:
        out["variant"] = case.variant
    out["expected"] = outcome.expected
    out["got"] = outcome.got
    if case.tags:
        out["tags"] = dict(case.tags)
    return out


# ---- printing, expected figures and the model card ------------------------------------------------------------
def format_table(report: Mapping[str, Any]) -> str:
    """Pass rate per capability, one column per system ('n/a' where a system decides none of the names)."""
    names = list(report["systems"])
    width = max(16, *(len(n) + 2 for n in names))
    lines = [f"{'capability':<22}{'tests':>6}  " + "".join(f"{n:>{width}}" for n in names)]
    rows = [(cap, b["n"], b["systems"]) for cap, b in report["capabilities"].items()]
    rows.append(("overall", report["n_cases"], report["overall"]))
    for cap, n, systems in rows:
        cells = "".join(f"{_rate(systems[s]):>{width}}" for s in names)
        lines.append(f"{cap:<22}{n:>6}  {cells}")
    return "\n".join(lines)


def _rate(entry: Mapping[str, Any]) -> str:
    if entry.get("pass_rate") is None:
        return "n/a"
    return f"{entry['pass_rate']:.3f} ({entry['n']})" if entry["n"] else "n/a"


def expected_figures(
    report: Mapping[str, Any], *, model_sha256: str, mode: str, written: str
) -> dict[str, Any]:
    """The machine-readable figures the model card shows and the CI test holds the model to."""
    caps = {
        cap: {
            "n": b["n"],
            "pass_rate": {s: v["pass_rate"] for s, v in b["systems"].items()},
            "scored": {s: v["n"] for s, v in b["systems"].items()},
        }
        for cap, b in report["capabilities"].items()
    }
    return {
        "model_sha256": model_sha256,
        "mode": mode,
        "written": written,
        "systems": list(report["systems"]),
        "capabilities": caps,
        "overall": {s: v["pass_rate"] for s, v in report["overall"].items()},
        "overall_scored": {s: v["n"] for s, v in report["overall"].items()},
    }


CARD_START: Final = (
    "<!-- behavioural-suite:start (written by `assistant eval checklist --write-expected`) -->"
)
CARD_END: Final = "<!-- behavioural-suite:end -->"
_SYSTEM_TITLES: Final = {
    "model": "model",
    "profanity_check": "alt-profanity-check",
    "tfidf_logreg": "TF-IDF + LR",
    "keyword_rules": "keyword rules",
}


def card_section(expected: Mapping[str, Any], model: str = "redflags") -> str:
    """The model card's "Behavioural suite" section, rendered from the expected figures of ``models/<model>``."""
    systems = list(expected["systems"])
    head = "| capability | tests | " + " | ".join(_SYSTEM_TITLES.get(s, s) for s in systems) + " |"
    lines = [
        CARD_START,
        "## Behavioural suite (`assistant eval checklist`)",
        "Pass rate per capability on the hand-written cases of `eval/data/checklist/` (MFT, INV and DIR tests, see",
        "`eval/checklist.py`); a baseline is scored only on the tests whose labels it decides (tests scored in",
        f"brackets). Mode {expected['mode']}, written {expected['written']}; figures in `models/{model}/checklist.json`,",
        "which `tests/eval/test_checklist.py` holds the shipped model to.",
        "",
        head,
        "|---|---|" + "---|" * len(systems),
    ]
    for cap, b in expected["capabilities"].items():
        cells = []
        for s in systems:
            rate, n = b["pass_rate"].get(s), b["scored"].get(s, 0)
            cells.append("n/a" if rate is None else (f"{rate:.3f}" if n == b["n"] else f"{rate:.3f} ({n})"))
        lines.append(f"| {cap} | {b['n']} | " + " | ".join(cells) + " |")
    total = sum(b["n"] for b in expected["capabilities"].values())
    cells = []
    for s in systems:
        rate, n = expected["overall"].get(s), expected.get("overall_scored", {}).get(s, total)
        cells.append("n/a" if rate is None else (f"{rate:.3f}" if n == total else f"{rate:.3f} ({n})"))
    lines.append(f"| **all** | {total} | " + " | ".join(cells) + " |")
    lines.append(CARD_END)
    return "\n".join(lines) + "\n"


def update_card(card: str, section: str) -> str:
    """The card with its behavioural-suite section replaced (or inserted before "## How to reproduce")."""
    if CARD_START in card and CARD_END in card:
        head, rest = card.split(CARD_START, 1)
        _, tail = rest.split(CARD_END, 1)
        return head + section.rstrip("\n") + tail
    marker = "## How to reproduce"
    if marker in card:
        head, tail = card.split(marker, 1)
        return head + section + "\n" + marker + tail
    return card.rstrip("\n") + "\n\n" + section


def card_section_of(card: str) -> str | None:
    """The behavioural-suite section as it stands in the card, or None."""
    if CARD_START not in card or CARD_END not in card:
        return None
    _, rest = card.split(CARD_START, 1)
    body, _ = rest.split(CARD_END, 1)
    return CARD_START + body + CARD_END + "\n"
