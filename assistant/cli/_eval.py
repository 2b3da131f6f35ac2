"""`assistant eval ...`: evaluation commands. Each evaluator registers itself from its own module."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from assistant.cli import _eval_checklist, _eval_redflags, _eval_report, _eval_retrieval

    p = sub.add_parser("eval", help="evaluate models on labeled JSONL data (red flags, retrieval, reports)")
    evsub = p.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    for module in (_eval_redflags, _eval_retrieval, _eval_report, _eval_checklist):
        module.register(evsub)
