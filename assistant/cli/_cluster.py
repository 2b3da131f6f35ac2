"""`assistant cluster [--workers N]`: Redis, PostgreSQL, N workers and nginx on this machine (make run-cluster).

Runs in the foreground until Ctrl-C or SIGTERM, then stops everything: the workers first (each drains its
live calls), then nginx, PostgreSQL and Redis. Data and logs are kept under ``--dir`` (var/cluster).
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cluster", help="run Redis, PostgreSQL, N workers and nginx locally", description=__doc__
    )
    p.add_argument("--workers", type=int, default=2, help="API workers (default 2)")
    p.add_argument(
        "--dir", type=Path, default=None, help="data and logs (default: ASSISTANT_VAR_DIR/cluster)"
    )
    p.add_argument(
        "--first-port", type=int, default=8001, help="port of the first worker; the next ones follow"
    )
    p.add_argument("--proxy-port", type=int, default=8080, help="nginx port (0: no nginx)")
    p.add_argument("--redis-port", type=int, default=6380)
    p.add_argument("--postgres-port", type=int, default=5440)
    p.add_argument("--fake-models", action="store_true", help="workers use the keyword/rule stand-ins")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from assistant.cluster.local import ClusterPorts, LocalCluster
    from assistant.errors import InvalidInputError
    from assistant.settings import get_settings

    if not 1 <= args.workers <= 64:
        raise InvalidInputError(f"--workers must be 1-64, got {args.workers}")
    for name in ("first_port", "redis_port", "postgres_port"):
        if not 1 <= getattr(args, name) <= 65535:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be 1-65535")
    root = args.dir or get_settings().var_dir / "cluster"
    ports = ClusterPorts(args.redis_port, args.postgres_port, args.first_port, args.proxy_port)
    cluster = LocalCluster(root.resolve(), workers=args.workers, ports=ports, fake_models=args.fake_models)
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"cluster: starting Redis, PostgreSQL and {args.workers} workers (data and logs: {root})", flush=True
    )
    cluster.start()
    workers = ", ".join(f"http://127.0.0.1:{p}" for p in cluster.worker_ports)
    print(
        f"cluster: ready at {cluster.entry_url} (workers {workers}; Redis {cluster.redis.url}; "
        f"PostgreSQL {cluster.postgres.url}). Ctrl-C stops it.",
        flush=True,
    )
    try:
        while not stopping:
            for port in cluster.supervise_once():
                print(f"cluster: worker on port {port} had exited; restarted it", flush=True)
            time.sleep(0.5)
    finally:
        print("cluster: stopping (workers drain their calls first)", flush=True)
        cluster.stop()
        print("cluster: stopped", flush=True)
    return 0
