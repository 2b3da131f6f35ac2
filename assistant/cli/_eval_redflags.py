"""`assistant eval redflags --data FILE.jsonl`: the model beside its baselines, a table and JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from assistant.errors import InvalidInputError
from assistant.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "redflags",
        help="evaluate the red-flag classifier and its baselines on a JSONL file",
        description='Rows: {"text": str, "context": [str] (optional), "labels": [label or group]}. Scores exactly '
        "the labels and groups that occur in the file, for the model and, on the same rows, the baselines "
        "alt-profanity-check and TF-IDF + logistic regression (trained on the model's training data).",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", type=Path, help="JSONL file (see shared/PRODUCT.md)")
    what.add_argument(
        "--split",
        choices=["valid", "test"],
        help="instead of a file: every source's (deduplicated) split of ASSISTANT_DATA_DIR, scored per source at "
        "the model's thresholds, with the mean F1 over the targeted (source, label) pairs (the model choice "
        "criterion on valid)",
    )
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None, help="where the model runs")
    p.add_argument(
        "--mode",
        choices=["auto", "fp32", "int8", "bf16"],
        default=None,
        help="inference precision (default: ASSISTANT_INFERENCE_MODE, auto)",
    )
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    p.add_argument("--json", type=Path, default=None, help="write the full report here")
    p.add_argument("--no-baselines", action="store_true", help="score the model only")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import platform

    import torch

    from assistant.eval.baselines import ProfanityCheck, TfidfLogReg
    from assistant.eval.redflags import ModelScorer, evaluate, measure_latency
    from assistant.redflags.classifier import RedFlagClassifier
    from assistant.redflags.data import read_eval_jsonl
    from assistant.redflags.recipe import model_splits

    settings = get_settings()
    if args.split:
        return _run_split(args)
    if not args.data.exists():
        raise InvalidInputError(
            f"--data {args.data} does not exist; convert a test split with `assistant data convert`"
        )
    rows = read_eval_jsonl(args.data)
    if not rows:
        raise InvalidInputError(f"{args.data} has no rows")
    model_path = args.model or settings.redflag_model_path()
    clf = RedFlagClassifier.load(
        model_path,
        device=args.device or settings.device,
        mode=args.mode or settings.inference_mode,
        torchscript=settings.torchscript,  # measure what the service runs
        row_buckets=settings.bf16_row_buckets,
    )
    texts = [r.text for r in rows]
    contexts = [list(r.context) for r in rows]
    labels = [list(r.labels) for r in rows]
    baselines: list[Any] = []
    if not args.no_baselines:
        seed = int(clf.config.training.get("seed", 13))
        # The baseline learns from exactly the model's training data: its sources, per-source caps and seed.
        data = model_splits(clf, settings.data_dir)
        train, valid = data["train"], data["valid"]
        baselines = [ProfanityCheck(), TfidfLogReg(seed=seed).fit(train, valid)]
    report = evaluate(texts, contexts, labels, ModelScorer(clf, progress=True), baselines)
    report["data"] = str(args.data)
    report["model_path"] = str(model_path)
    report["device"] = str(clf.device)
    report["mode"] = clf.mode
    report["thresholds"] = {label: round(float(t), 4) for label, t in clf.config.thresholds.items()}
    report["precision"] = clf.precision
    report["torchscript"] = clf.torchscript
    report["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if clf.device.type == "cuda" else None,
    }
    if not args.no_latency:
        report["latency"] = measure_latency(clf, texts)
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table: one row per label/group, model then each baseline.

    P / R / F1 are of the positive class; mF1 is the mean F1 of both classes (what papers usually report).
    """
    systems = {"model": report, **report["baselines"]}
    head = f"{'label':<20}{'support':>8}  " + "  ".join(f"{name:>33}" for name in systems)
    sub = f"{'':<20}{'':>8}  " + "  ".join(f"{'P':>6}{'R':>6}{'F1':>7}{'AUC':>7}{'mF1':>7}" for _ in systems)
    lines = [f"{report['n']} rows from {report.get('data', '?')}", head, sub]
    for name in report["names"]:
        support = report["per_label"].get(name, {}).get("support", "")
        cells = []
        for sysrep in systems.values():
            m = sysrep["per_label"].get(name)
            if m is None:
                cells.append(f"{'n/a':>33}")
            else:
                auc = f"{m['roc_auc']:.3f}" if m["roc_auc"] is not None else "-"
                mf1 = _fmt(m.get("f1_macro"))
                cells.append(f"{m['precision']:>6.3f}{m['recall']:>6.3f}{m['f1']:>7.3f}{auc:>7}{mf1:>7}")
        lines.append(f"{name:<20}{support!s:>8}  " + "  ".join(cells))
    macro = "  ".join(f"{_fmt(s['macro_f1']):>33}" for s in systems.values())
    lines.append(f"{'macro F1':<20}{'':>8}  {macro}")
    if "latency" in report:
        lat = report["latency"]
        lines.append(
            f"latency ({report['device']}, {report['mode']}): one utterance p50 {lat['single_p50_ms']} ms, "
            f"p95 {lat['single_p95_ms']} ms; batch of {lat['batch_size']}: {lat['batch_throughput_per_s']}/s"
        )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _run_split(args: argparse.Namespace) -> int:
    from assistant.redflags.classifier import RedFlagClassifier
    from assistant.redflags.recipe import model_splits, source_metrics, target_f1s, target_mean_f1

    settings = get_settings()
    model_path = args.model or settings.redflag_model_path()
    clf = RedFlagClassifier.load(  # as the service runs it
        model_path,
        device=args.device or settings.device,
        mode=args.mode or settings.inference_mode,
        torchscript=settings.torchscript,
        row_buckets=settings.bf16_row_buckets,
    )
    rows = model_splits(clf, settings.data_dir)[args.split]
    per_source = source_metrics(clf, rows, progress=True)
    report: dict[str, Any] = {
        "split": args.split,
        "model_path": str(model_path),
        "mode": clf.mode,
        "rows": len(rows),
        "target_mean_f1": target_mean_f1(per_source),
        "targets": target_f1s(per_source),
        "sources": per_source,
    }
    print(f"{len(rows)} {args.split} rows, model {model_path} ({clf.mode})")
    print(f"{'source/label':<32}{'F1':>7}")
    for name, f1 in report["targets"].items():
        print(f"{name:<32}{f1:>7.3f}")
    print(f"{'mean over targeted pairs':<32}{_fmt(report['target_mean_f1']):>7}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
