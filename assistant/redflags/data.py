"""Training and evaluation data for the red-flag classifier: public data sets plus our written examples.

Each public data set under the ``data_dir`` setting (``ASSISTANT_DATA_DIR``) is read as its authors released it
and mapped onto the red-flag labels of ``assistant.labels`` by the table ``MAPPING``. A source's annotation
does not speak for every label, so each example carries ``known``: the labels its annotation decides; the
trainer masks the loss on the others.

Splits are fixed: official splits where the authors made them, otherwise a seeded hash of a stable id (or of
the conversation, for ConvAbuse), never the order of a random generator. Texts that occur in a later split are
dropped from the earlier ones (test beats valid beats train), so no test text is ever trained on.

Example:
    >>> from assistant.settings import get_settings
    >>> rows = load_source("convabuse", get_settings().data_dir)  # doctest: +SKIP
    >>> sorted({r.split for r in rows})  # doctest: +SKIP
    ['test', 'train', 'valid']
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast

from assistant.errors import DataError
from assistant.labels import ABUSIVE, GROUPS, LABEL_TO_GROUP, LABELS, is_known
from assistant.redflags._lexicon import has_insulting_word, has_profanity, has_violent_wording
from assistant.settings import PROJECT_ROOT

Split = Literal["train", "valid", "test"]
SPLITS: Final[tuple[Split, ...]] = ("train", "valid", "test")
# Fixed once: changing it reshuffles every hash-made split and invalidates reported test figures.
SPLIT_SEED: Final = 13
WRITTEN_DIR: Final = PROJECT_ROOT / "training_data"
_SPLIT_RANK: Final[dict[str, int]] = {"train": 0, "valid": 1, "test": 2}


@dataclass(frozen=True, slots=True)
class Example:
    """One utterance with its red-flag labels, the labels its source decides, and its fixed split.

    Example:
        >>> e = Example("get me your manager", (), frozenset({"escalation_request"}),
        ...             frozenset({"escalation_request"}), "written", "train", "w1")
        >>> e.is_positive
        True
    """

    text: str
    context: tuple[str, ...]  # earlier turns, oldest first
    labels: frozenset[str]  # subset of LABELS
    known: frozenset[str]  # labels this row's annotation decides; labels <= known
    source: str
    split: Split
    id: str  # stable within the source
    # Training targets that are a share of annotators rather than 0/1, e.g. (("insult", 2 / 3),) for a row
    # two of three ConvAbuse annotators called abusive; ``labels`` keeps the majority decision for scoring.
    soft: tuple[tuple[str, float], ...] = ()

    @property
    def is_positive(self) -> bool:
        return bool(self.labels)


@dataclass(frozen=True, slots=True)
class EvalRow:
    """One row of a red-flag evaluation file (``shared/PRODUCT.md``): labels may be labels or group names."""

    text: str
    context: tuple[str, ...]
    labels: frozenset[str]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """How one public data set maps onto red-flag labels: the single table the datasheet reproduces."""

    name: str
    folder: str
    known: frozenset[str]  # labels decided for every row (single rows may add or drop some, see ``rules``)
    rules: tuple[str, ...]  # source annotation -> red-flag labels, in words
    splits: str
    licence: str
    eval_labels: tuple[str, ...]  # what `assistant data convert` writes for this source
    intents: dict[str, frozenset[str]] = field(default_factory=dict)  # intent -> labels (intent sources)
    unknown: dict[str, frozenset[str]] = field(default_factory=dict)  # intent -> labels it leaves undecided


_F = frozenset
_ABUSE_FINE: Final = _F({"profanity", "insult"})
# Polite service queries: safely not abusive and not a legal threat, and they say whether the customer asks
# for a human or to leave.
_INTENT_KNOWN: Final = _F(ABUSIVE) | _F({"escalation_request", "legal_threat", "churn_risk"})

MAPPING: Final[dict[str, SourceSpec]] = {
    s.name: s
    for s in (
        SourceSpec(
            "convabuse",
            "convabuse",
            _ABUSE_FINE,
            (
                "abusive (strict majority of the annotators who labelled the row chose -1/-2/-3) -> insult",
                "abusive and a lexicon swear word -> + profanity",
                "abusive and violent wording aimed at someone -> + threat (threat otherwise undecided)",
                "not abusive -> no label; profanity undecided when a swear word occurs",
            ),
            "test = official valid file; valid = ~15% of the official train file by conv_id hash; rest train",
            "CC BY 4.0",
            ("abusive",),
        ),
        SourceSpec(
            "davidson",
            "davidson",
            _ABUSE_FINE,
            (
                "class 0 hate speech -> insult (+ profanity with a lexicon swear word)",
                "class 1 offensive -> profanity (+ insult with a demeaning word: bitch, hoe, slur, idiot...)",
                "class 2 neither -> no label; profanity undecided when a swear word occurs",
                "threat undecided",
            ),
            "80/10/10 by hash of the row id",
            "MIT",
            ("abusive",),
        ),
        SourceSpec(
            "olid",
            "olid",
            _F(ABUSIVE),
            (
                "OFF + UNT (untargeted) -> profanity",
                "OFF + TIN (targeted insult or threat) -> insult; + threat with violent wording, else undecided;"
                " profanity from the lexicon, undecided without a match",
                "NOT -> no label; profanity undecided when a swear word occurs",
            ),
            "80/10/10 by hash of the tweet id",
            "CC BY 4.0 (repository licence)",
            ("abusive",),
        ),
        SourceSpec(
            "ethos",
            "ethos",
            _F({"insult", "profanity"}),
            (
                "binary isHate >= 0.5 -> insult (+ profanity with a lexicon swear word)",
                "multi-label violence >= 0.5 -> threat + insult; multi-label rows decide threat",
                "isHate < 0.5 -> no label (threat decided: no)",
            ),
            "80/10/10 by hash of the text",
            "GPL-3.0",
            ("abusive",),
        ),
        SourceSpec(
            "nlupp",
            "nlupp",
            _INTENT_KNOWN,
            (
                "handoff -> escalation_request",
                "cancel_close_leave_freeze about closing/leaving the account or bank -> churn_risk;"
                " about a payment, order, card freeze or appointment -> no churn; otherwise churn undecided",
                "profanity from the lexicon",
            ),
            "folds 0-13 train, 14-16 valid, 17-19 test",
            "CC BY 4.0",
            ("escalation_request", "churn_risk"),
        ),
        SourceSpec(
            "banking77",
            "banking77",
            _INTENT_KNOWN,
            (
                "terminate_account -> churn_risk",
                "every other intent -> no label",
                "profanity from the lexicon",
            ),
            "test = official test; valid = 10% of official train by hash",
            "CC BY 4.0",
            ("churn_risk",),
            intents={"terminate_account": _F({"churn_risk"})},
        ),
        SourceSpec(
            "bitext",
            "bitext_8k",
            _INTENT_KNOWN | {"frustration"},
            (
                "contact_human_agent -> escalation_request",
                "delete_account -> churn_risk (closing the account); cancel_order -> no churn (one order)",
                "complaint -> frustration (legal_threat undecided)",
                "contact_customer_service, check_cancellation_fee, payment_issue, registration_problems, review:"
                " the matching label undecided",
                "profanity from the lexicon (rows flagged W use damn/goddamn/bloody)",
            ),
            "70/15/15 by hash of the text",
            "not stated (Bitext free sample; check before commercial use)",
            ("escalation_request", "churn_risk", "frustration"),
            intents={
                "contact_human_agent": _F({"escalation_request"}),
                "delete_account": _F({"churn_risk"}),
                "complaint": _F({"frustration"}),
            },
            unknown={
                "contact_customer_service": _F({"escalation_request"}),
                "check_cancellation_fee": _F({"churn_risk"}),
                "complaint": _F({"legal_threat"}),
                "payment_issue": _F({"frustration"}),
                "registration_problems": _F({"frustration"}),
                "review": _F({"frustration"}),
            },
        ),
        SourceSpec(
            "clinc150",
            "clinc150",
            _INTENT_KNOWN,
            ("every intent, out-of-scope included -> no label (negatives)", "profanity from the lexicon"),
            "official train/val/test (oos_* with them)",
            "CC BY 3.0",
            ("escalation_request", "churn_risk"),
        ),
        SourceSpec(
            "goemotions",
            "goemotions",
            _F({"frustration"}),
            (
                "anger or annoyance -> frustration",
                "disappointment or disapproval without anger/annoyance -> frustration undecided",
                "any other emotion or neutral -> no label",
            ),
            "official train/dev/test",
            "CC BY 4.0",
            ("frustration",),
        ),
        SourceSpec(
            "complaints",
            "complaints",
            _F({"frustration"}),
            ("label 1 complaint -> frustration", "label 0 -> no label"),
            "70/15/15 by hash of the tweet id",
            "no licence: research use only",
            ("frustration",),
        ),
        SourceSpec(
            "airline",
            "airline_sentiment",
            _F({"frustration"}),
            (
                "negative with confidence >= 0.6 and a stated reason (not Can't Tell) -> frustration",
                "neutral or positive with confidence >= 0.6 -> no label",
                "the rest (low confidence, Can't Tell) -> dropped",
            ),
            "70/15/15 by hash of the tweet's unit id",
            "CC BY-NC-SA 4.0: non-commercial, share-alike",
            ("frustration",),
        ),
        SourceSpec(
            "written",
            "training_data",
            _F(LABELS),
            ("written by us with every label decided",),
            "by template: a template's expansions share a split (~70/15/15)",
            "ours (project licence)",
            LABELS,
        ),
    )
}
SOURCES: Final[tuple[str, ...]] = tuple(MAPPING)


# --- helpers -------------------------------------------------------------------------------------------------


def _bucket(key: str, *, seed: int = SPLIT_SEED) -> float:
    """A stable number in [0, 1) for a key: the same on every machine and Python version."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(key: str, *, valid: float = 0.1, test: float = 0.1) -> Split:
    """The split of a key under the fixed seed: ``test`` for the first share, ``valid`` for the next."""
    b = _bucket(key)
    if b < test:
        return "test"
    if b < test + valid:
        return "valid"
    return "train"


def _norm_text(text: str) -> str:
    """The key under which two texts count as duplicates: lower case, words only (the text itself if none)."""
    return " ".join(re.findall(r"\w+", text.lower())) or text.strip()


def _dedup(examples: list[Example]) -> list[Example]:
    """Drop a text from a split when it also occurs in a later one (test > valid > train)."""
    best: dict[str, int] = {}
    for e in examples:
        k = _norm_text(e.text)
        best[k] = max(best.get(k, -1), _SPLIT_RANK[e.split])
    return [e for e in examples if _SPLIT_RANK[e.split] == best[_norm_text(e.text)]]


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataError(
            f"expected the data file {path}, but it does not exist; set ASSISTANT_DATA_DIR to the folder that "
            "holds the public data sets (default ../shared/datasets)"
        )
    return path


def _open_csv(path: Path, *, encoding: str = "utf-8", **kw: Any) -> list[dict[str, str]]:
    with _require(path).open(encoding=encoding, newline="") as f:
        return list(csv.DictReader(f, **kw))


def _abuse_profanity(text: str, labels: set[str], known: set[str], *, abusive: bool) -> None:
    """Refine profanity from the lexicon: decided on abusive rows; undecided on clean rows with a swear word."""
    if has_profanity(text):
        if abusive:
            labels.add("profanity")
        else:
            known.discard("profanity")


def _example(
    source: str,
    id_: str,
    text: str,
    split: Split,
    labels: Iterable[str],
    known: Iterable[str],
    context: Iterable[str] = (),
    soft: tuple[tuple[str, float], ...] = (),
) -> Example:
    return Example(text.strip(), tuple(context), _F(labels), _F(known), source, split, id_, soft)


# --- one reader per source ------------------------------------------------------------------------------------


def _convabuse(data_dir: Path) -> list[Example]:
    spec = MAPPING["convabuse"]
    out: list[Example] = []
    for fname, official in (("ConvAbuseEMNLPtrain.csv", "train"), ("ConvAbuseEMNLPvalid.csv", "valid")):
        rows = _open_csv(data_dir / spec.folder / fname)
        annotators = sorted({c.split("_")[0] for c in rows[0] if c.startswith("Annotator")}) if rows else []
        for r in rows:
            labelled = abusive_votes = 0
            for a in annotators:
                votes = {k: r.get(f"{a}_is_abuse.{k}", "") for k in ("1", "0", "-1", "-2", "-3")}
                if not any(v.strip() for v in votes.values()):
                    continue  # this annotator did not label the row
                labelled += 1
                abusive_votes += any(votes[k].strip() == "1" for k in ("-1", "-2", "-3"))
            abusive = labelled > 0 and 2 * abusive_votes > labelled
            text = r["user"]
            labels: set[str] = {"insult"} if abusive else set()
            known = set(spec.known)
            _abuse_profanity(text, labels, known, abusive=abusive)
            if abusive and has_violent_wording(text):
                labels.add("threat")
                known.add("threat")
            split: Split = (
                "test"
                if official == "valid"
                else hash_split(f"convabuse:{r['conv_id']}", valid=0.15, test=0.0)
            )
            # "_" marks a turn that did not exist (the conversation's start).
            context = [c for c in (r["prev_agent"], r["prev_user"], r["agent"]) if c.strip() not in ("", "_")]
            soft = (("insult", abusive_votes / labelled),) if labelled else ()
            out.append(_example("convabuse", r["example_id"], text, split, labels, known, context, soft))
    return out


def _davidson(data_dir: Path) -> list[Example]:
    spec = MAPPING["davidson"]
    out: list[Example] = []
    for r in _open_csv(data_dir / spec.folder / "labeled_data.csv"):
        text, cls = r["tweet"], r["class"]
        labels: set[str] = set()
        known = set(spec.known)
        if cls == "0":
            labels.add("insult")
            _abuse_profanity(text, labels, known, abusive=True)
        elif cls == "1":
            labels.add("profanity")
            if has_insulting_word(text):
                labels.add("insult")
        else:
            _abuse_profanity(text, labels, known, abusive=False)
        id_ = r[""]
        out.append(_example("davidson", id_, text, hash_split(f"davidson:{id_}"), labels, known))
    return out


def _olid(data_dir: Path) -> list[Example]:
    spec = MAPPING["olid"]
    out: list[Example] = []
    for r in _open_csv(
        data_dir / spec.folder / "olid-training-v1.0.tsv", delimiter="\t", quoting=csv.QUOTE_NONE
    ):
        text = r["tweet"]
        labels: set[str] = set()
        known = set(spec.known)
        if r["subtask_a"] == "OFF" and r["subtask_b"] == "TIN":
            labels.add("insult")
            if has_profanity(text):
                labels.add("profanity")
            else:
                known.discard("profanity")  # a targeted insult may well swear in words the lexicon lacks
            if has_violent_wording(text):
                labels.add("threat")
            else:
                known.discard("threat")  # TIN lumps insults and threats together
        elif r["subtask_a"] == "OFF":
            labels.add("profanity")
        else:
            _abuse_profanity(text, labels, known, abusive=False)
        out.append(_example("olid", r["id"], text, hash_split(f"olid:{r['id']}"), labels, known))
    return out


def _ethos(data_dir: Path) -> list[Example]:
    folder = data_dir / MAPPING["ethos"].folder
    multi: dict[str, float] = {}
    with _require(folder / "Ethos_Dataset_Multi_Label.csv").open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f, delimiter=";"):
            multi[r["comment"].strip()] = float(r["violence"])
    out: list[Example] = []
    seen: set[str] = set()
    with _require(folder / "Ethos_Dataset_Binary.csv").open(encoding="utf-8", newline="") as f:
        rows = [(r["comment"].strip(), float(r["isHate"])) for r in csv.DictReader(f, delimiter=";")]
    # Multi-label rows are all hateful; the few missing from the binary file join as hateful rows.
    rows += [(c, 1.0) for c in multi if c not in {t for t, _ in rows}]
    for i, (text, is_hate) in enumerate(rows):
        if not text or text in seen:
            continue
        seen.add(text)
        hate = is_hate >= 0.5
        labels: set[str] = {"insult"} if hate else set()
        known = {"insult", "profanity"}
        _abuse_profanity(text, labels, known, abusive=hate)
        if text in multi:
            known.add("threat")
            if multi[text] >= 0.5:
                labels.add("threat")
        elif not hate:
            known.add("threat")
        key = hashlib.sha1(text.encode()).hexdigest()[:12]
        out.append(_example("ethos", f"{i}-{key}", text, hash_split(f"ethos:{key}"), labels, known))
    return out


_CHURN_RE: Final = re.compile(
    r"\b(?:clos\w*|cancel\w*|terminat\w*|shut\w*|kill|end|delete|leav\w*|quit)\b.{0,40}"
    r"\b(?:account|accounts|membership|relationship|banking|bank)\b"
    r"|\b(?:leav\w*|switch\w*|quit\w*) (?:this|your|the) bank\b",
    re.IGNORECASE,
)
_NOT_CHURN_RE: Final = re.compile(
    r"\b(?:payments?|standing orders?|direct debits?|transactions?|transfers?|appointments?|cards?|contactless|"
    r"freeze|block\w*|on hold|revert|cheques?|orders?)\b",
    re.IGNORECASE,
)


def _nlupp_churn(text: str) -> bool | None:
    """Whether a cancel/close/leave/freeze request is about leaving (True), something smaller (False), or unclear."""
    if _CHURN_RE.search(text) and "card" not in text.lower():
        return True
    if _NOT_CHURN_RE.search(text):
        return False
    return None


def _nlupp(data_dir: Path) -> list[Example]:
    spec = MAPPING["nlupp"]
    out: list[Example] = []
    for fold in range(20):
        path = _require(data_dir / spec.folder / "banking" / f"fold{fold}.json")
        split: Split = "train" if fold < 14 else "valid" if fold < 17 else "test"
        for i, row in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            text, intents = row["text"], set(row.get("intents", []))
            labels: set[str] = set()
            known = set(spec.known)
            if "handoff" in intents:
                labels.add("escalation_request")
            if "cancel_close_leave_freeze" in intents:
                churn = _nlupp_churn(text)
                if churn:
                    labels.add("churn_risk")
                elif churn is None:
                    known.discard("churn_risk")
            _intent_profanity(text, labels)
            out.append(_example("nlupp", f"fold{fold}-{i}", text, split, labels, known))
    return out


def _intent_profanity(text: str, labels: set[str]) -> None:
    # Intent data sets are polite queries; the odd "damn" is swearing all the same.
    if has_profanity(text):
        labels.add("profanity")


def _intent_example(source: str, id_: str, text: str, intent: str, split: Split) -> Example:
    spec = MAPPING[source]
    labels = set(spec.intents.get(intent, ()))
    known = set(spec.known) - spec.unknown.get(intent, _F())
    _intent_profanity(text, labels)
    return _example(source, id_, text, split, labels, known)


def _banking77(data_dir: Path) -> list[Example]:
    out: list[Example] = []
    for fname in ("train.csv", "test.csv"):
        for i, r in enumerate(_open_csv(data_dir / MAPPING["banking77"].folder / fname)):
            id_ = f"{fname[:-4]}-{i}"
            split: Split = (
                "test" if fname == "test.csv" else hash_split(f"banking77:{id_}", valid=0.1, test=0.0)
            )
            out.append(_intent_example("banking77", id_, r["text"], r["category"], split))
    return out


def _bitext(data_dir: Path) -> list[Example]:
    path = data_dir / MAPPING["bitext"].folder / "Bitext_Sample_Customer_Service_Training_Dataset.csv"
    out: list[Example] = []
    for i, r in enumerate(_open_csv(path, encoding="utf-8-sig")):
        split = hash_split(f"bitext:{_norm_text(r['utterance'])}", valid=0.15, test=0.15)
        out.append(_intent_example("bitext", str(i), r["utterance"], r["intent"], split))
    return out


def _clinc150(data_dir: Path) -> list[Example]:
    path = _require(data_dir / MAPPING["clinc150"].folder / "data_full.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[Example] = []
    splits: dict[str, Split] = {"train": "train", "val": "valid", "test": "test"}
    for key, rows in data.items():
        split = splits[key.removeprefix("oos_")]
        for i, (text, intent) in enumerate(rows):
            out.append(_intent_example("clinc150", f"{key}-{i}", text, intent, split))
    return out


def _goemotions(data_dir: Path) -> list[Example]:
    folder = data_dir / MAPPING["goemotions"].folder
    names = _require(folder / "labels.txt").read_text(encoding="utf-8").split()
    out: list[Example] = []
    for fname, split in (("train.tsv", "train"), ("dev.tsv", "valid"), ("test.tsv", "test")):
        with _require(folder / fname).open(encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3:
                    continue
                text, ids, cid = parts
                emotions = {names[int(x)] for x in ids.split(",") if x}
                labels: set[str] = set()
                known = {"frustration"}
                if emotions & {"anger", "annoyance"}:
                    labels.add("frustration")
                elif emotions & {"disappointment", "disapproval"}:
                    known.clear()  # dissatisfaction without anger: too close to call either way
                out.append(_example("goemotions", cid, text, cast(Split, split), labels, known))
    return out


def _complaints(data_dir: Path) -> list[Example]:
    path = data_dir / MAPPING["complaints"].folder / "complaints-data.csv"
    out: list[Example] = []
    for r in _open_csv(path, fieldnames=["id", "text", "label", "domain"]):
        labels = {"frustration"} if r["label"] == "1" else set()
        split = hash_split(f"complaints:{r['id']}", valid=0.15, test=0.15)
        out.append(_example("complaints", r["id"], r["text"], split, labels, {"frustration"}))
    return out


def _airline(data_dir: Path) -> list[Example]:
    path = data_dir / MAPPING["airline"].folder / "Airline-Sentiment-2-w-AA.csv"
    out: list[Example] = []
    # The file is latin-1: reading it as UTF-8 fails on the first accented byte.
    for r in _open_csv(path, encoding="latin-1"):
        sentiment, conf = r["airline_sentiment"], float(r["airline_sentiment:confidence"] or 0)
        if conf < 0.6:
            continue
        if sentiment == "negative":
            if r["negativereason"] in ("", "Can't Tell"):
                continue
            labels = {"frustration"}
        else:
            labels = set()
        split = hash_split(f"airline:{r['_unit_id']}", valid=0.15, test=0.15)
        out.append(_example("airline", r["_unit_id"], r["text"], split, labels, {"frustration"}))
    return out


def written_rows(written_dir: Path) -> list[dict[str, Any]]:
    """Our written examples, expanded from the templates by ``build_written.py`` in ``written_dir``.

    The rows are derived data (seeded, a fraction of a second to build), so they are built here rather than
    kept as a file that could go stale against the templates. ``build_written.py`` run as a script writes the
    same rows to ``written.jsonl`` for reading.
    """
    script = written_dir / "build_written.py"
    name = "_assistant_build_written"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None or not script.exists():
        raise DataError(f"expected the written-example builder at {script}; is this a full checkout?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return cast(list[dict[str, Any]], module.build())


def _written(written_dir: Path) -> list[Example]:
    out: list[Example] = []
    for r in written_rows(written_dir):
        labels = _F(r["labels"])
        if not labels <= _F(LABELS) or r["split"] not in SPLITS:
            raise DataError(
                f"written template {r['template_id']}: unknown label or split in {r['labels']!r} / "
                f"{r['split']!r}; fix training_data/_templates.py"
            )
        out.append(_example("written", r["id"], r["text"], r["split"], labels, LABELS, r.get("context", ())))
    return out


_READERS: Final[dict[str, Callable[[Path], list[Example]]]] = {
    "convabuse": _convabuse,
    "davidson": _davidson,
    "olid": _olid,
    "ethos": _ethos,
    "nlupp": _nlupp,
    "banking77": _banking77,
    "bitext": _bitext,
    "clinc150": _clinc150,
    "goemotions": _goemotions,
    "complaints": _complaints,
    "airline": _airline,
}


# --- public API -----------------------------------------------------------------------------------------------


def load_source(name: str, data_dir: Path, *, written_dir: Path | None = None) -> list[Example]:
    """All examples of one source, every split, mapped to red-flag labels and deduplicated across splits.

    Raises:
        DataError: unknown source, or a missing data directory or file (names the path and the setting).
    """
    if name not in MAPPING:
        raise DataError(f"unknown source {name!r}; expected one of {', '.join(SOURCES)}")
    if name == "written":
        examples = _written(written_dir or WRITTEN_DIR)
    else:
        if not data_dir.is_dir():
            raise DataError(
                f"data directory {data_dir} does not exist; set ASSISTANT_DATA_DIR to the folder that holds "
                "the public data sets (default ../shared/datasets)"
            )
        try:
            examples = _READERS[name](data_dir)
        except (KeyError, ValueError, IndexError, UnicodeDecodeError) as e:
            raise DataError(
                f"could not read source {name!r} under {data_dir}: {e!r}; is the file as released?"
            ) from e
    return _dedup([e for e in examples if e.text])


def cap_examples(examples: list[Example], cap: int, seed: int) -> list[Example]:
    """At most ``cap`` examples, positives first but keeping a third of the budget for negatives if any."""
    if len(examples) <= cap:
        return examples

    def order(es: list[Example]) -> list[Example]:
        return sorted(es, key=lambda e: _bucket(f"{e.source}:{e.id}", seed=seed))

    pos = order([e for e in examples if e.labels])
    neg = order([e for e in examples if not e.labels])
    n_neg = min(len(neg), max(cap - len(pos), cap // 3))
    return pos[: cap - n_neg] + neg[:n_neg]


def load_corpus(
    data_dir: Path,
    *,
    sources: Sequence[str] | None = None,
    splits: Sequence[str] = SPLITS,
    max_per_source_split: int | None = None,
    seed: int = 13,
    written_dir: Path | None = None,
) -> list[Example]:
    """Examples of several sources and splits; ``max_per_source_split`` caps each (source, split) pair.

    The cap keeps positives first (seeded, stable order) and at least a third of the budget for negatives;
    the seed only picks which rows survive the cap, never the splits.
    """
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise DataError(f"unknown split(s) {bad}; expected some of {SPLITS}")
    out: list[Example] = []
    for name in sources if sources is not None else SOURCES:
        examples = load_source(name, data_dir, written_dir=written_dir)
        for split in splits:
            part = [e for e in examples if e.split == split]
            out.extend(
                part if max_per_source_split is None else cap_examples(part, max_per_source_split, seed)
            )
    return out


def eval_labels(example: Example, names: Sequence[str]) -> list[str] | None:
    """The example's truth over ``names`` (labels or group names), or None when its source leaves one undecided.

    A group is positive when any of its labels is; groups are only asked of sources that annotate the group.
    """
    out: list[str] = []
    for name in names:
        members = GROUPS.get(name)
        if members is not None:
            if example.labels & set(members):
                out.append(name)
        elif name in example.labels:
            out.append(name)
        elif name not in example.known:
            return None
    return out


def to_eval_rows(
    examples: Iterable[Example], *, names: Sequence[str] | None = None
) -> Iterator[dict[str, Any]]:
    """PRODUCT.md red-flag eval rows ``{"text", "context", "labels"}``.

    ``names`` defaults to each source's ``eval_labels`` in ``MAPPING``; rows whose source leaves one of them
    undecided are skipped, since an evaluation file cannot mask a label.
    """
    for e in examples:
        labels = eval_labels(e, names if names is not None else MAPPING[e.source].eval_labels)
        if labels is None:
            continue
        row: dict[str, Any] = {"text": e.text}
        if e.context:
            row["context"] = list(e.context)
        row["labels"] = labels
        yield row


def _parse_eval_row(obj: object) -> EvalRow:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError(f"expected 'text' to be a string, got {type(text).__name__}")
    context = obj.get("context", [])
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise ValueError("expected 'context' to be a list of strings")
    labels = obj.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError("expected 'labels' to be a list of strings (empty for no red flag)")
    unknown = [x for x in labels if not is_known(x)]
    if unknown:
        names = ", ".join((*LABEL_TO_GROUP, *GROUPS))
        raise ValueError(f"unknown label(s) {unknown}; expected labels or groups among {names}")
    return EvalRow(text, tuple(context), _F(labels))


def read_eval_jsonl(path: Path) -> list[EvalRow]:
    """Read and validate a red-flag evaluation file; blank lines are skipped.

    Raises:
        DataError: the file is missing, empty, or a line is malformed (the message gives ``path:line``).
    """
    if not path.is_file():
        raise DataError(f"expected a red-flag evaluation file (JSON Lines) at {path}, but there is none")
    rows: list[EvalRow] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 JSON Lines, got undecodable bytes ({e.reason})") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(_parse_eval_row(json.loads(line)))
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise DataError(f"{path}:{n}: {e}") from e
    if not rows:
        raise DataError(f"{path}: no rows; expected one JSON object per line")
    return rows
