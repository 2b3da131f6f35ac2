"""The public data sets: one reader per source, and the table ``MAPPING`` that maps each onto red-flag labels.

Each data set under the ``data_dir`` setting (``ASSISTANT_DATA_DIR``) is read as its authors released it. A
source's annotation does not speak for every label, so each example carries ``known``: the labels its
annotation decides; the trainer masks the loss on the others. ``training_data/DATASHEET.md`` reproduces the
table in words.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from assistant.errors import DataError
from assistant.labels import ABUSIVE, LABELS
from assistant.redflags._lexicon import has_insulting_word, has_profanity, has_violent_wording
from assistant.redflags.data.examples import Example, Split
from assistant.redflags.data.splits import content_signature, hash_split

# Share of ConvAbuse's official train conversations held out for validation (by conversation). 0.30 since
# 2026-11-30 (0.15 before): 229 validation rows with 49 abusive ones moved its F1 by 0.02 per row or two.
CONVABUSE_VALID_SHARE: Final = 0.30


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
            "test = official valid file; valid = ~30% of the official train file by conv_id hash; rest train",
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
            "70/15/15 by hash of the content-word signature (paraphrases share a split)",
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
                else hash_split(f"convabuse:{r['conv_id']}", valid=CONVABUSE_VALID_SHARE, test=0.0)
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
        split = hash_split(f"bitext:{content_signature(r['utterance'])}", valid=0.15, test=0.15)
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


READERS: Final[dict[str, Callable[[Path], list[Example]]]] = {
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
