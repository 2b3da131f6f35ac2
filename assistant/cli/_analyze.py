"""`assistant analyze "TEXT"`: flags and suggestions for one utterance, printed as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from assistant.errors import InvalidInputError
from assistant.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="red flags (with spans) and SOP next steps for one utterance, as JSON",
        description="Scores one customer utterance with the shipped red-flag model and asks the SOP "
        "knowledge base for the next step. Use '-' to read the text from standard input.",
    )
    p.add_argument("text", help="the utterance, or - for standard input")
    p.add_argument("--context", action="append", default=[], help="an earlier turn (repeat, oldest first)")
    p.add_argument("--no-suggestions", action="store_true", help="red flags only (skips the knowledge base)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from assistant.analysis import analyze_once
    from assistant.redflags.classifier import load_classifier

    text = sys.stdin.read() if args.text == "-" else args.text
    if not isinstance(text, str):
        raise InvalidInputError("expected the utterance as text")
    settings = get_settings()
    classifier = load_classifier(settings, device=args.device)
    advisor = None
    if not args.no_suggestions:
        from assistant.knowledge import load_advisor

        advisor = load_advisor(settings, device=args.device or settings.device)
    result = analyze_once(classifier, advisor, text, tuple(args.context))
    print(
        json.dumps({"text": text if len(text) <= 2000 else text[:2000] + "...", **result.to_dict()}, indent=2)
    )
    return 0
