"""`assistant serve [--host H] [--port P]`: run the streaming service with uvicorn."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the service (HTTP + WebSockets)", description=__doc__)
    p.add_argument("--host", default=None, help="address to bind (default: ASSISTANT_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: ASSISTANT_PORT or 8000)")
    p.add_argument(
        "--fake-models",
        action="store_true",
        help="use the keyword analyzer and rule advisor instead of the shipped models (demo without models)",
    )
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from assistant.api.app import create_app
    from assistant.errors import InvalidInputError
    from assistant.runtime import limit_malloc_arenas, limit_onednn_cache, raise_open_files_limit
    from assistant.settings import get_settings, load_settings

    base = get_settings()
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            raise InvalidInputError(f"--port must be 1-65535, got {args.port}")
        overrides["port"] = args.port
    if args.fake_models:
        overrides["use_fake_models"] = True
    settings = load_settings(**overrides) if overrides else base
    limit_malloc_arenas(settings.malloc_arena_max)
    limit_onednn_cache(settings.onednn_cache_capacity)
    raise_open_files_limit()  # two sockets per live call
    app = create_app(settings)
    print(
        f"serving on http://{settings.host}:{settings.port} (API docs: /docs; protocol: docs/protocol.md)",
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, ws_max_size=1 << 22)
    return 0
