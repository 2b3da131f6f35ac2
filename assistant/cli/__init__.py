"""The ``assistant`` console script.

Each command group lives in its own module exposing ``register(subparsers)``; a command's handler takes the
parsed ``argparse.Namespace`` and returns an exit code. Library code never prints; only these handlers do.
Every command exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from assistant.errors import AssistantError

Handler = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    from assistant.cli import (
        _analyze,
        _bench,
        _calibrate,
        _cluster,
        _data,
        _eval,
        _kb,
        _replay,
        _report,
        _serve,
        _token,
        _train,
    )

    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Real-time assistant for call-center agents: red flags, SOP next steps, supervisor alerts.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        _serve,
        _cluster,
        _analyze,
        _replay,
        _report,
        _train,
        _data,
        _kb,
        _eval,
        _bench,
        _calibrate,
        _token,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from assistant.logs import configure_logging

    configure_logging(logging.DEBUG if args.verbose else logging.WARNING)  # redacted at every level
    handler: Handler = args.handler
    try:
        return handler(args)
    except AssistantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
