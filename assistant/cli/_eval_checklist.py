"""`assistant eval checklist`: the behavioural test suite, pass rate per capability, model beside baselines."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from assistant.errors import InvalidInputError
from assistant.settings import get_settings

EXPECTED_FILE = "checklist.json"  # beside the model's weights: the figures its card shows


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checklist",
        help="run the behavioural test suite (negation, reported speech, ASR noise, ...) on the model and baselines",
        description="Runs the hand-written CheckList-style cases of eval/data/checklist/ (MFT, INV and DIR tests) "
        "through the red-flag model and, on the same texts, the baselines alt-profanity-check (abusive and "
        "profanity only), keyword rules and TF-IDF + logistic regression (trained on the model's training data), "
        "and prints the pass rate per capability. --json writes per capability the tests, the pass rate per "
        "system and every failure (text, expected, got); the trainer page shows the newest such file in "
        "var/reports/. --write-expected stores the figures beside the model (checklist.json) and rewrites the "
        "'Behavioural suite' table of its MODEL_CARD.md: run it after retraining.",
    )
    p.add_argument(
        "--json", type=Path, default=None, help="write the full report here (e.g. var/reports/checklist.json)"
    )
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None, help="where the model runs")
    p.add_argument(
        "--mode",
        choices=["auto", "fp32", "int8", "bf16"],
        default=None,
        help="inference precision (default: ASSISTANT_INFERENCE_MODE, auto; --write-expected defaults to fp32)",
    )
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    p.add_argument(
        "--cases", type=Path, default=None, help="folder of case files (default: eval/data/checklist)"
    )
    p.add_argument(
        "--capability",
        nargs="+",
        default=None,
        metavar="NAME",
        help="run only these capabilities (default: all)",
    )
    p.add_argument("--no-baselines", action="store_true", help="run the model only")
    p.add_argument(
        "--no-tfidf",
        action="store_true",
        help="skip the TF-IDF baseline (it trains on the model's training data first, about a minute)",
    )
    p.add_argument(
        "--write-expected",
        action="store_true",
        help="store the figures as the model's expected ones (MODEL/checklist.json) and update its model card",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.write_expected and (args.capability or args.cases or args.no_baselines or args.no_tfidf):
        raise InvalidInputError(
            "--write-expected records the whole suite with every baseline; drop --capability, --cases, "
            "--no-baselines and --no-tfidf"
        )

    from assistant.digest import file_sha256
    from assistant.eval.baselines import KeywordRules, ProfanityCheck, TfidfLogReg
    from assistant.eval.checklist import (
        CASES_DIR,
        card_section,
        expected_figures,
        format_table,
        load_cases,
        run_suite,
        update_card,
    )
    from assistant.eval.redflags import ModelScorer
    from assistant.redflags.classifier import RedFlagClassifier

    settings = get_settings()
    cases_dir = args.cases or CASES_DIR
    if not cases_dir.is_dir():
        raise InvalidInputError(f"--cases {cases_dir} is not a folder of case files")
    cases = load_cases(cases_dir, args.capability)
    model_path = args.model or settings.redflag_model_path()
    mode = args.mode or ("fp32" if args.write_expected else settings.inference_mode)
    clf = RedFlagClassifier.load(
        model_path,
        device=args.device or settings.device,
        mode=mode,
        torchscript=settings.torchscript,
        row_buckets=settings.bf16_row_buckets,
    )
    systems: list[Any] = [ModelScorer(clf)]
    if not args.no_baselines:
        systems += [ProfanityCheck(), KeywordRules()]
        if not args.no_tfidf:
            systems.append(_tfidf(clf, settings, TfidfLogReg))
    report = run_suite(cases, systems)
    weights = model_path / "weights.safetensors"
    report.update(
        {
            "model_path": str(model_path),
            "model_sha256": file_sha256(weights) if weights.exists() else None,
            "device": str(clf.device),
            "mode": clf.mode,
            "precision": clf.precision,  # what `auto` ran as on this machine
            "cases_dir": str(cases_dir),
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.write_expected:
        expected = expected_figures(
            report,
            model_sha256=report["model_sha256"] or "",
            mode=clf.mode,
            written=time.strftime("%Y-%m-%d"),
        )
        (model_path / EXPECTED_FILE).write_text(json.dumps(expected, indent=2) + "\n")
        card = model_path / "MODEL_CARD.md"
        text = card.read_text() if card.exists() else "# Model card\n"
        card.write_text(update_card(text, card_section(expected, model_path.name)))
        print(f"expected figures: {model_path / EXPECTED_FILE}; card table: {card}")
    return 0


def _tfidf(clf: Any, settings: Any, tfidf_cls: Any) -> Any:
    """The TF-IDF baseline trained on exactly the model's training data (sources, per-source caps, seed)."""
    from assistant.redflags.recipe import model_splits

    data = model_splits(clf, settings.data_dir)
    return tfidf_cls(seed=int(clf.config.training.get("seed", 13))).fit(data["train"], data["valid"])
