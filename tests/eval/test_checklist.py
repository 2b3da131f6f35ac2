"""`assistant eval checklist`: the case files, the pure suite runner, the card table and the shipped model's floor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.digest import file_sha256
from assistant.errors import InvalidInputError
from assistant.eval.baselines import KeywordRules
from assistant.eval.checklist import (
    CAPABILITIES,
    CASES_DIR,
    asr_text,
    card_section,
    card_section_of,
    expected_figures,
    load_cases,
    perturb,
    run_suite,
    update_card,
)
from assistant.labels import GROUPS, LABELS
from assistant.settings import FAST_REDFLAG_MODEL, FULL_REDFLAG_MODEL, get_settings


class _Table:
    """A scorer that answers from a table: text -> {name: score}; decides at 0.5, only the names it is given."""

    def __init__(self, name: str, table: dict[str, dict[str, float]], names: tuple[str, ...]) -> None:
        self.name, self.table, self.names = name, table, names

    def score(self, texts, contexts):  # type: ignore[no-untyped-def]
        out = {}
        for n in self.names:
            p = np.array([self.table.get(t, {}).get(n, 0.0) for t in texts])
            out[n] = (p, p >= 0.5)
        return out


def _write(folder: Path, cap: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{cap}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---- the shipped case files ------------------------------------------------------------------------------------
def test_every_capability_has_its_hand_written_cases() -> None:
    cases = load_cases()
    by_cap = {cap: [c for c in cases if c.capability == cap] for cap in CAPABILITIES}
    for cap, got in by_cap.items():
        assert 25 <= len(got) <= 130, (cap, len(got))
    assert {c.kind for c in by_cap["asr_noise"]} == {"INV"}
    assert {c.kind for c in by_cap["two_intents"]} == {"MFT", "DIR"}
    assert {c.kind for c in by_cap["negation"]} == {"MFT", "DIR"}
    negated = {c.tags.get("negated") for c in by_cap["negation"]}
    # Every label negated; profanity through the group ("I never swore at anyone": nothing abusive at all).
    assert set(LABELS) - {"profanity"} <= negated and "abusive" in negated
    domains = {c.tags.get("domain") for c in by_cap["department_transfers"]}
    assert {"hotel", "airline", "telecom", "bank", "retail", "health"} <= domains
    swearing = by_cap["undirected_swearing"]
    assert all(c.expect == {"profanity": True, "insult": False} for c in swearing)
    assert {c.tags["directed"] for c in swearing} == {"nobody", "self"}


def test_asr_perturbations_are_deterministic_and_noisy() -> None:
    seed = "Can you put me through to your manager, please?"
    assert asr_text(seed) == "can you put me through to your manager please"
    assert perturb(seed, "fillers") == perturb(seed, "fillers")
    assert len(perturb(seed, "fillers").split()) == len(asr_text(seed).split()) + 2  # type: ignore[union-attr]
    assert len(perturb(seed, "repeats").split()) == len(asr_text(seed).split()) + 2  # type: ignore[union-attr]
    swapped = perturb(seed, "homophones")
    assert swapped is not None and swapped != asr_text(seed) and ("too" in swapped or "you're" in swapped)
    assert perturb("Thanks a lot.", "homophones") is None  # nothing to swap: no test
    with pytest.raises(InvalidInputError, match="unknown perturbation"):
        perturb(seed, "shout")


# ---- the pure runner -------------------------------------------------------------------------------------------
def test_run_suite_scores_mft_inv_and_dir_per_system(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "negation",
        [
            {"id": "n1", "type": "MFT", "text": "I want to cancel", "expect": {"churn_risk": True}},
            {"id": "n2", "type": "MFT", "text": "I don't want to cancel", "expect": {"churn_risk": False}},
            {"id": "n3", "type": "MFT", "text": "you idiot", "expect": {"abusive": True}},
            {
                "id": "n4",
                "type": "DIR",
                "text": "I want to cancel",
                "variant": "I don't want to cancel",
                "label": "churn_risk",
                "direction": "down",
            },
        ],
    )
    _write(
        tmp_path,
        "asr_noise",
        [
            {
                "id": "a1",
                "type": "INV",
                "text": "I want to cancel.",
                "labels": ["churn_risk"],
                "perturb": ["asr"],
            }
        ],
    )
    cases = load_cases(tmp_path, ["negation", "asr_noise"])
    assert [c.id for c in cases] == ["n1", "n2", "n3", "n4", "a1/asr"]
    table = {
        "I want to cancel": {"churn_risk": 0.6},
        "I don't want to cancel": {"churn_risk": 0.95},  # fails n2 and the DIR test (up by 0.35, not down)
        "you idiot": {"abusive": 0.8},
        "I want to cancel.": {"churn_risk": 0.9},
        "i want to cancel": {"churn_risk": 0.2},  # the ASR variant flips: INV fails
    }
    model = _Table("model", table, ("churn_risk", "abusive"))
    abuse_only = _Table("abuse_only", table, ("abusive",))
    report = run_suite(cases, [model, abuse_only])
    neg = report["capabilities"]["negation"]
    assert neg["n"] == 4 and neg["types"] == {"MFT": 3, "DIR": 1}
    assert neg["systems"]["model"] == {"n": 4, "passed": 2, "pass_rate": 0.5}
    assert neg["systems"]["abuse_only"] == {"n": 1, "passed": 1, "pass_rate": 1.0}  # decides only 'abusive'
    failed = {f["id"]: f for f in neg["failures"]["model"]}
    assert set(failed) == {"n2", "n4"}
    assert failed["n2"]["expected"] == {"churn_risk": False}
    assert failed["n2"]["got"]["churn_risk"] == {"decision": True, "score": 0.95}
    assert failed["n4"]["got"]["churn_risk"] == {"text": 0.6, "variant": 0.95}
    asr = report["capabilities"]["asr_noise"]
    assert asr["systems"]["model"]["pass_rate"] == 0.0 and asr["systems"]["abuse_only"]["pass_rate"] is None
    assert asr["failures"]["model"][0]["variant"] == "i want to cancel"
    assert report["overall"]["model"] == {"n": 5, "passed": 2, "pass_rate": 0.4}
    assert "per_label" not in report  # never mistaken for a red-flag evaluation report


def test_inv_rows_take_written_variants_and_named_perturbations(tmp_path: Path) -> None:
    seed = {"type": "INV", "text": "Get me your manager.", "labels": ["escalation"]}
    rows = [
        {**seed, "id": "w", "variants": ["get me you're manger"], "perturb": []},
        {**seed, "id": "p", "perturb": ["asr"]},
        {**seed, "id": "all"},
    ]
    _write(tmp_path, "asr_noise", rows)
    cases = load_cases(tmp_path, ["asr_noise"])
    assert [c.id for c in cases[:2]] == ["w/written", "p/asr"]
    assert cases[0].variant == "get me you're manger" and cases[1].variant == "get me your manager"
    assert {c.id.split("/")[1] for c in cases[2:]} == {"asr", "fillers", "repeats", "homophones", "all"}
    _write(tmp_path, "asr_noise", [{**seed, "id": "x", "perturb": "asr"}])
    with pytest.raises(InvalidInputError, match="'perturb' is a list"):
        load_cases(tmp_path, ["asr_noise"])


def test_dir_tolerance_allows_small_moves_the_wrong_way(tmp_path: Path) -> None:
    row = {"id": "d", "type": "DIR", "text": "a", "variant": "b", "label": "insult", "direction": "up"}
    _write(tmp_path, "two_intents", [row, {**row, "id": "e", "tolerance": 0.0}])
    report = run_suite(
        load_cases(tmp_path, ["two_intents"]),
        [_Table("model", {"a": {"insult": 0.9}, "b": {"insult": 0.85}}, ("insult",))],
    )
    assert [f["id"] for f in report["capabilities"]["two_intents"]["failures"]["model"]] == ["e"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "x", "type": "MFT", "text": "hi", "expect": {"rudeness": True}}, "no label or group"),
        ({"id": "x", "type": "MFT", "text": "hi", "expect": {}}, "needs 'expect'"),
        ({"id": "x", "type": "MFT", "text": "hi", "expect": {"insult": "yes"}}, "true or false"),
        ({"id": "x", "type": "TEST", "text": "hi"}, "'type' must be one of"),
        ({"id": "x", "type": "DIR", "text": "hi", "label": "insult", "direction": "up"}, "needs a 'variant'"),
        (
            {"id": "x", "type": "DIR", "text": "a", "variant": "b", "label": "insult", "direction": "left"},
            "'up'",
        ),
        ({"id": "x", "type": "INV", "text": "hi"}, "non-empty list"),
        ({"type": "MFT", "text": "hi", "expect": {"insult": True}}, "needs an 'id'"),
        ({"id": "x", "type": "MFT", "text": " ", "expect": {"insult": True}}, "non-empty 'text'"),
    ],
)
def test_bad_case_rows_get_a_clear_error(tmp_path: Path, row: dict, message: str) -> None:
    _write(tmp_path, "negation", [row])
    with pytest.raises(InvalidInputError, match=message):
        load_cases(tmp_path, ["negation"])


def test_unknown_capability_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown capability 'sarcasm'"):
        load_cases(tmp_path, ["sarcasm"])
    with pytest.raises(InvalidInputError, match="no case file"):
        load_cases(tmp_path, ["negation"])


def test_keyword_rules_decide_every_label_and_group() -> None:
    scored = KeywordRules().score(["get me your manager", "thanks a lot"], [[], []])
    assert set(scored) == {*LABELS, *GROUPS}
    assert scored["escalation_request"][1].tolist() == [True, False]
    assert scored["escalation"][1].tolist() == [True, False] and scored["abusive"][1].tolist() == [
        False,
        False,
    ]


# ---- the card table and the expected figures -------------------------------------------------------------------
def _tiny_expected() -> dict:
    report = {
        "systems": ["model", "profanity_check"],
        "capabilities": {
            "negation": {
                "n": 4,
                "systems": {
                    "model": {"n": 4, "passed": 3, "pass_rate": 0.75},
                    "profanity_check": {"n": 1, "passed": 1, "pass_rate": 1.0},
                },
            },
            "sexual_harassment": {
                "n": 2,
                "systems": {
                    "model": {"n": 2, "passed": 1, "pass_rate": 0.5},
                    "profanity_check": {"n": 0, "passed": 0, "pass_rate": None},
                },
            },
        },
        "overall": {
            "model": {"n": 6, "passed": 4, "pass_rate": 0.6667},
            "profanity_check": {"n": 1, "passed": 1, "pass_rate": 1.0},
        },
    }
    return expected_figures(report, model_sha256="abc", mode="fp32", written="2026-11-30")


def test_card_section_is_rendered_from_the_expected_figures() -> None:
    section = card_section(_tiny_expected())
    assert "| capability | tests | model | alt-profanity-check |" in section
    assert "| negation | 4 | 0.750 | 1.000 (1) |" in section  # a baseline's partial coverage in brackets
    assert "| sexual_harassment | 2 | 0.500 | n/a |" in section
    assert "| **all** | 6 | 0.667 | 1.000 (1) |" in section


def test_update_card_inserts_once_then_replaces_in_place() -> None:
    card = "# Card\n\n## Metrics\nx\n\n## How to reproduce\nrun it\n"
    first = update_card(card, card_section(_tiny_expected()))
    assert first.index("Behavioural suite") < first.index("## How to reproduce") and first.endswith(
        "run it\n"
    )
    newer = _tiny_expected()
    newer["capabilities"]["negation"]["pass_rate"]["model"] = 1.0
    second = update_card(first, card_section(newer))
    assert second.count("Behavioural suite") == 1 and "| negation | 4 | 1.000 |" in second
    assert card_section_of(second) == card_section(newer)


SHIPPED = (FULL_REDFLAG_MODEL, FAST_REDFLAG_MODEL)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_shows_the_figures_recorded_for_the_shipped_model(name: str) -> None:
    """The card's table is rendered from models/NAME/checklist.json, recorded for exactly these weights."""
    model_dir = get_settings().models_dir / name
    expected_file = model_dir / "checklist.json"
    fix = "run `assistant eval checklist --write-expected` (see README, Behavioural suite)"
    assert expected_file.exists(), f"no {expected_file}: {fix}"
    expected = json.loads(expected_file.read_text())
    assert expected["model_sha256"] == file_sha256(model_dir / "weights.safetensors"), (
        f"the model changed since its behavioural figures were written: {fix}"
    )
    assert set(expected["capabilities"]) == set(CAPABILITIES), f"the suite's capabilities changed: {fix}"
    counts = {cap: sum(c.capability == cap for c in load_cases()) for cap in CAPABILITIES}
    assert {cap: b["n"] for cap, b in expected["capabilities"].items()} == counts, f"the cases changed: {fix}"
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert card_section_of(card) == card_section(expected, name), f"the card's table is stale: {fix}"


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_keeps_the_pass_rates_in_its_card(name: str, tmp_path: Path) -> None:
    """CI runs the suite on each shipped model: no capability may fall below the figure in its model card."""
    model_dir = get_settings().models_dir / name
    expected = json.loads((model_dir / "checklist.json").read_text())
    out = tmp_path / "checklist.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "eval",
            "checklist",
            "--no-baselines",
            "--device",
            "cpu",
            "--mode",
            expected["mode"],
            "--model",
            str(model_dir),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert (
        report["suite"] == "checklist"
        and report["systems"] == ["model"]
        and report["precision"] == expected["mode"]
    )
    assert report["cases_dir"] == str(CASES_DIR)
    for cap, want in expected["capabilities"].items():
        got = report["capabilities"][cap]["systems"]["model"]
        assert got["n"] == want["n"], cap
        assert got["pass_rate"] >= want["pass_rate"]["model"], (
            cap,
            got,
            report["capabilities"][cap]["failures"],
        )
    assert "negation" in run.stdout and "overall" in run.stdout


def test_cli_rejects_partial_runs_for_the_expected_figures() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "assistant", "eval", "checklist", "--write-expected", "--no-tfidf"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and "--write-expected records the whole suite" in run.stderr


@pytest.mark.slow
def test_cases_stay_apart_from_the_training_data() -> None:
    """No test line (seed or variant, compared as ASR text) occurs in the model's training or validation rows."""
    from assistant.redflags.recipe import training_splits

    settings = get_settings()
    trained_on = json.loads((settings.redflag_model_path() / "config.json").read_text())["training"]
    splits = training_splits(
        settings.data_dir,
        sources=trained_on.get("sources") or None,
        caps=trained_on.get("caps"),
        seed=int(trained_on.get("seed", 13)),
    )
    seen = {asr_text(e.text) for split in ("train", "valid") for e in splits[split]}
    ours = {asr_text(t) for c in load_cases() for t, _ in c.inputs()}
    assert not ours & seen, sorted(ours & seen)[:20]
