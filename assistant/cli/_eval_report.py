"""`assistant eval report --inputs A.json B.json ... --out report.html`: one page comparing runs side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.errors import InvalidInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="one HTML page (tables and PNG plots) from eval and bench JSON files, runs side by side",
        description="Inputs: JSON from `assistant eval redflags --json`, `assistant eval retrieval --json` and "
        "`assistant bench --json`, recognised by their keys. Plots: per-label precision/recall/F1, confusion "
        "counts, calibration (when the eval JSON has a `calibration` block: ECE and a reliability diagram "
        "per label, with the decision thresholds), latency histograms. Plots are embedded in the page "
        "(base64), so the one file is the whole report.",
    )
    p.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="eval / bench JSON files, in column order"
    )
    p.add_argument(
        "--names", nargs="+", default=None, help="column names, one per input (default: file names)"
    )
    p.add_argument("--out", type=Path, required=True, help="HTML file to write")
    p.add_argument("--title", default="Model report")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from assistant.eval.report import kind_of, render_report, run_name

    if args.names is not None and len(args.names) != len(args.inputs):
        raise InvalidInputError(
            f"--names has {len(args.names)} names for {len(args.inputs)} inputs; give one each"
        )
    runs = []
    for i, path in enumerate(args.inputs):
        if not path.exists():
            raise InvalidInputError(f"--inputs: {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InvalidInputError(
                f"--inputs: {path} is not JSON ({e}); pass files written with --json"
            ) from e
        if not isinstance(data, dict) or kind_of(data) == "unknown":
            raise InvalidInputError(
                f"--inputs: {path} is neither an eval report (per_label, recall@1) nor a bench report (p95_ms)"
            )
        runs.append((args.names[i] if args.names else run_name(path, data), data))
    page = render_report(runs, title=args.title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"report: {args.out} ({len(runs)} runs)")
    return 0
