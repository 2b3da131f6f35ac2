"""`assistant serve [--host H] [--port P] [--insecure]`: run the streaming service with uvicorn.

Without ASSISTANT_AUTH_SECRET the service is open (every caller is an admin): it then only binds to a
loopback address (127.0.0.1, ::1, localhost) and warns; on any other host it refuses to start unless
``--insecure`` says that is really meant (a lab network, a container behind an authenticating proxy).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.settings import Settings


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
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow serving without ASSISTANT_AUTH_SECRET on a non-loopback address (everyone is admin)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from assistant.api.app import create_app
    from assistant.api.server import DrainingServer, server_config
    from assistant.errors import InvalidInputError
    from assistant.runtime import (
        limit_malloc_arenas,
        limit_onednn_cache,
        raise_open_files_limit,
        set_gc_gen0_threshold,
        set_gil_switch_interval,
    )
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
    check_open_mode(settings.host, has_secret=bool(settings.auth_secret), insecure=args.insecure)
    limit_malloc_arenas(settings.malloc_arena_max)
    limit_onednn_cache(settings.onednn_cache_capacity)
    set_gil_switch_interval(settings.gil_switch_interval_ms)
    set_gc_gen0_threshold(settings.gc_gen0_threshold)
    raise_open_files_limit()  # two sockets per live call
    app = create_app(settings)
    print(
        f"serving on http://{settings.host}:{settings.port} (API docs: /docs; protocol: docs/protocol.md)",
        flush=True,
    )
    if not settings.use_fake_models:
        print(f"red-flag model: {model_choice(settings)}", flush=True)
        print(f"retrieval encoder: {encoder_choice(settings)}", flush=True)
        print(f"inference precision: {precision_choice(settings)}", flush=True)
        print(f"retrieval queries: {query_pass_choice(settings)}", flush=True)
    config = server_config(app, settings, log_level=args.log_level)
    DrainingServer(config, drain_timeout_s=settings.drain_timeout_s).run()  # SIGTERM drains live calls first
    return 0


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_open_mode(host: str, *, has_secret: bool, insecure: bool) -> None:
    """Refuse an open (no secret) service on a non-loopback address unless ``insecure``; warn otherwise."""
    from assistant.errors import ConfigurationError

    if has_secret:
        return
    if not is_loopback(host) and not insecure:
        raise ConfigurationError(
            f"refusing to serve on {host} without authentication: set ASSISTANT_AUTH_SECRET (and issue "
            "tokens with `assistant token issue`), bind to 127.0.0.1, or pass --insecure if an open service "
            "on this network is really meant"
        )
    where = "on loopback only" if is_loopback(host) else f"on {host} (--insecure)"
    print(
        f"WARNING: authentication is OFF (ASSISTANT_AUTH_SECRET is not set): every caller is admin, {where}",
        file=sys.stderr,
        flush=True,
    )


def encoder_choice(settings: Settings) -> str:
    """The retrieval encoder's depth, and why when ``auto`` chose it."""
    from assistant.settings import BASE_ENCODER_LAYERS

    n = settings.retrieval_encoder_layers()
    what = f"{n} of {BASE_ENCODER_LAYERS} layers"
    if settings.query_encoder_layers:
        return what
    return f"{what} (auto: {_why(n == BASE_ENCODER_LAYERS)}; ASSISTANT_QUERY_ENCODER_LAYERS sets another)"


def model_choice(settings: Settings) -> str:
    """The red-flag model folder the service loads, and why when ``auto`` chose it (operators size by it)."""
    from assistant.settings import FAST_REDFLAG_MODEL

    path = settings.redflag_model_path()
    if settings.redflag_model != "auto":
        return str(path)
    return f"{path} (auto: {_why(path.name != FAST_REDFLAG_MODEL)}; ASSISTANT_REDFLAG_MODEL names another)"


def query_pass_choice(settings: Settings) -> str:
    """Where a customer chunk's retrieval query vector comes from (``ASSISTANT_SHARED_QUERY_PASS``)."""
    from assistant.knowledge.advisor import retrieval_query_space
    from assistant.redflags.classifier import WEIGHTS_FILE
    from assistant.redflags.querymap import QUERY_MAP_FILE, QueryMap, query_map_mismatch

    if settings.shared_query_pass == "off":
        return "their own encoder pass (ASSISTANT_SHARED_QUERY_PASS=off)"
    path = settings.redflag_model_path()
    if not (path / QUERY_MAP_FILE).exists():
        return "their own encoder pass (the red-flag model has no query map)"
    why = query_map_mismatch(
        QueryMap.load(path / QUERY_MAP_FILE), retrieval_query_space(settings), path / WEIGHTS_FILE
    )
    if why is not None:
        return f"their own encoder pass (the model's query map is not used: {why})"
    return (
        "from the red-flag pass, through the model's query map: one encoder pass per customer chunk "
        "(ASSISTANT_SHARED_QUERY_PASS=off gives them their own)"
    )


def precision_choice(settings: Settings) -> str:
    """The precision of each encoder, and why where ``auto`` chose it (``assistant.precision.resolve``)."""
    import torch

    from assistant import precision

    cuda = settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    parts = []
    for what, mode, variable in (
        ("red flags", settings.inference_mode, "ASSISTANT_INFERENCE_MODE"),
        ("retrieval queries", settings.query_inference_mode, "ASSISTANT_QUERY_INFERENCE_MODE"),
    ):
        chosen = precision.resolve(mode, device)
        if mode == "auto":
            why = "a GPU" if cuda else _why(chosen == "bf16")
            parts.append(f"{what} {chosen} (auto: {why}; {variable} sets another)")
        else:
            parts.append(f"{what} {chosen}")
    return ", ".join(parts)


def _why(full_cost_fits: bool) -> str:
    """Why ``auto`` chose the full-cost models or the cheaper ones (``Settings._full_model_affordable``)."""
    return "a GPU or bf16 units" if full_cost_fits else "no bf16 units on this CPU"
