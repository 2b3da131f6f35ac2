"""The written templates as data: stable ids, splits fixed by id, near duplicates together, clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from assistant.errors import DataError
from assistant.redflags._lexicon import has_profanity
from assistant.redflags.data import WRITTEN_DIR, written_rows
from assistant.redflags.data.written import (
    NEAR_DUPLICATE_RATIO,
    Template,
    build_rows,
    load_templates,
    template_splits,
)

FROZEN = Path(__file__).parent / "fixtures" / "written_frozen.tsv"
TEMPLATES = WRITTEN_DIR / "templates"

# The only templates whose split differs from the frozen map of _templates.py (commit ae32fed). Each is a near
# duplicate (NEAR_DUPLICATE_RATIO) of an earlier template in another split and follows it, so paraphrases no
# longer straddle splits. id -> (split before, split now, the template it follows).
FORCED_MOVES: dict[str, tuple[str, str, str]] = {
    "esc-083": (
        "train",
        "valid",
        "esc-046",
    ),  # "you're fucking useless get me your {mgr}" / without "fucking"
    "churn-136": ("valid", "train", "churn-000"),  # "i want to end my {service}" / "... cancel my {service}"
    "threat-049": (
        "valid",
        "train",
        "threat-046",
    ),  # "i'll come down there and sort you out" / "... make you"
    "threat-118": ("valid", "train", "threat-012"),  # "i'll break your legs" / "i'll break your neck"
    "abuse-020": ("test", "train", "abuse-001"),  # "you're a {hard_swear} {insult}" / "you're a {insult}"
    "neg-250": ("train", "valid", "neg-045"),  # "i have a quick question about my bill" / "{issue}"
    "neg-274": (
        "train",
        "test",
        "neg-077",
    ),  # "can you close the ticket it's resolved" / "... all sorted now"
}


def _frozen() -> dict[str, tuple[str, int, str]]:
    out: dict[str, tuple[str, int, str]] = {}
    for line in FROZEN.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or line.startswith("id\t"):
            continue
        id_, split, n, digest = line.split("\t")
        out[id_] = (split, int(n), digest)
    return out


def _digest(rows: list[dict[str, object]]) -> str:
    return hashlib.sha1(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def rows_by_template() -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in written_rows(WRITTEN_DIR):
        out[str(row["template_id"])].append(row)
    return out


def test_every_existing_template_keeps_its_split_and_rows(
    rows_by_template: dict[str, list[dict[str, object]]],
) -> None:
    frozen = _frozen()
    assert len(frozen) == 1027
    moved = {}
    for id_, (split, n, digest) in frozen.items():
        rows = rows_by_template[id_]
        assert len(rows) == n, id_
        now = str(rows[0]["split"])
        if now != split:
            moved[id_] = (split, now)
        # Same texts, contexts and labels as before; the split is compared above.
        assert _digest([{**r, "split": split} for r in rows]) == digest, id_
    assert moved == {k: v[:2] for k, v in FORCED_MOVES.items()}


def test_forced_moves_follow_their_near_duplicate(
    rows_by_template: dict[str, list[dict[str, object]]],
) -> None:
    for id_, (_, now, anchor) in FORCED_MOVES.items():
        assert rows_by_template[anchor][0]["split"] == now, (id_, anchor)


def _copy_templates(tmp_path: Path) -> Path:
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    return tmp_path


def test_inserting_a_template_anywhere_moves_nothing(tmp_path: Path) -> None:
    before = {r["id"]: r for r in build_rows(TEMPLATES)}
    root = _copy_templates(tmp_path)
    frust = root / "templates" / "frust.tsv"
    header, *lines = frust.read_text(encoding="utf-8").splitlines()
    # A new line at the top of the group, with the next free number of the group as its id.
    new = "frust-900\tF\t\tthe hold music has been playing for an hour and i am losing patience"
    frust.write_text("\n".join([header, new, *lines]) + "\n", encoding="utf-8")
    after = {r["id"]: r for r in build_rows(root / "templates")}
    assert {k for k in after if k not in before} and all(
        k.startswith("frust-900-") for k in after if k not in before
    )
    assert all(after[k] == v for k, v in before.items())


def _t(id_: str, text: str) -> Template:
    return Template(id_, id_.split("-")[0], (), None, text)


def test_near_duplicates_share_a_split_whatever_their_hash() -> None:
    # x-000 and x-003 hash to different splits on their own; x-003 paraphrases x-000 and follows it.
    alone = template_splits([_t("x-000", "a"), _t("x-003", "b")])
    assert alone["x-000"] != alone["x-003"]
    ts = [_t("x-000", "i want to cancel my {service}"), _t("x-003", "i want to end my {service}")]
    splits = template_splits(ts)
    assert splits["x-003"] == splits["x-000"] == alone["x-000"]
    # Below the ratio they keep their own hash split.
    far = template_splits([_t("x-000", "i want to cancel my {service}"), _t("x-003", "where is my parcel")])
    assert far == alone


def test_near_duplicate_rule_holds_on_the_real_templates() -> None:
    import difflib
    import re

    ts = load_templates(TEMPLATES).templates
    splits = template_splits(ts)
    words = [re.findall(r"[\w{}]+", t.text.lower().replace("'", "")) for t in ts]
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(ts):
        by_group[t.group].append(i)
    # Within each group (the full cross-group check is what template_splits itself does): no pair at or above
    # the ratio straddles splits.
    for idx in by_group.values():
        for a in idx:
            for b in idx:
                if a < b and splits[ts[a].id] != splits[ts[b].id]:
                    sm = difflib.SequenceMatcher(None, words[a], words[b], autojunk=False)
                    if sm.quick_ratio() >= NEAR_DUPLICATE_RATIO:
                        assert sm.ratio() < NEAR_DUPLICATE_RATIO, (ts[a].id, ts[b].id)


# Groups written to contrast the suite's phenomena: they must not copy its cases. contrast_blind was written by
# someone who had not seen the suite (training_data/DATASHEET.md).
CONTRAST_GROUPS = ("contrast", "contrast_blind")


def test_contrast_profanity_agrees_with_the_lexicon(
    rows_by_template: dict[str, list[dict[str, object]]],
) -> None:
    # The contrast lines separate swearing (profanity) from abuse (insult), so their profanity label must be
    # exactly the lexicon's verdict. (Older groups call a few slurs insult without profanity.)
    rows = [r for k, rs in rows_by_template.items() if k.rsplit("-", 1)[0] in CONTRAST_GROUPS for r in rs]
    assert rows
    for r in rows:
        assert has_profanity(str(r["text"])) == ("profanity" in r["labels"]), r  # type: ignore[operator]


def test_contrast_group_covers_each_phenomenon() -> None:
    ts = [t for t in load_templates(TEMPLATES).templates if t.group == "contrast"]
    assert len(ts) >= 150  # 27 lines near a behavioural-suite case were dropped, their ids unused
    transfers = [t for t in ts if t.labels == ("escalation_request",)]
    assert len(transfers) >= 20
    harassment = [t for t in ts if t.labels == ("insult",)]
    assert len(harassment) >= 15 and not any(has_profanity(t.text) for t in harassment)
    swearing = [t for t in ts if t.labels == ("profanity",)]
    assert len(swearing) >= 15  # undirected or self-directed: profanity without insult


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("id\tlabels\tcontext\ttext", "id\tlabels\ttext"), "expected the header"),
        (lambda s: s.replace("frust-000\tF", "frust-000\tQ", 1), "labels 'Q'"),
        (lambda s: s.replace("frust-001\tF", "frust-000\tF", 1), "duplicate template id 'frust-000'"),
        (lambda s: s.replace("frust-000\tF", "esc-999\tF", 1), "must be 'frust-NNN'"),
        (lambda s: s + "frust-901\tF\t\tmy {nosuchslot} broke\n", "unknown slot {nosuchslot}"),
        (lambda s: s + "frust-902\tF\tonly three fields\n", "expected 4 tab-separated fields"),
    ],
)
def test_malformed_template_files_say_where(tmp_path: Path, edit: object, message: str) -> None:
    root = _copy_templates(tmp_path)
    frust = root / "templates" / "frust.tsv"
    frust.write_text(edit(frust.read_text(encoding="utf-8")), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(DataError, match=message.replace("{", r"\{").replace("}", r"\}")) as info:
        load_templates(root / "templates")
    assert "frust.tsv" in str(info.value)


def test_missing_template_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="full checkout"):
        written_rows(tmp_path)


def _checklist_texts() -> list[str]:
    root = Path(__file__).resolve().parents[2] / "eval" / "data" / "checklist"
    texts: list[str] = []
    for path in sorted(root.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts += [row[k] for k in ("text", "seed") if isinstance(row.get(k), str)]
                texts += [v for v in row.get("variants") or [] if isinstance(v, str)]
    return texts


def test_contrast_templates_stay_apart_from_the_behavioural_suite() -> None:
    import difflib
    import re

    from assistant.redflags.data import dedup_key

    texts = _checklist_texts()
    assert texts, "eval/data/checklist/ holds the behavioural suite's cases"
    suite = [dedup_key(t).split() for t in texts]
    for t in load_templates(TEMPLATES).templates:
        if t.group not in CONTRAST_GROUPS:
            continue
        words = dedup_key(re.sub(r"\{\w+\}", "", t.text)).split()
        sm = difflib.SequenceMatcher(None, [], words, autojunk=False)
        for case in suite:
            sm.set_seq1(case)
            if sm.real_quick_ratio() >= NEAR_DUPLICATE_RATIO and sm.quick_ratio() >= NEAR_DUPLICATE_RATIO:
                assert sm.ratio() < NEAR_DUPLICATE_RATIO, (t.id, " ".join(case))
