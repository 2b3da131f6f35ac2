"""Process-level tuning for the long-running service (called once by ``assistant serve``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(n: int) -> bool:
    """Cap glibc's malloc arenas at ``n`` (0: leave glibc's default); True when applied.

    glibc gives each thread that allocates its own arena (up to 8 per core), so the model workers, the SQLite
    thread and the tokenizers each keep freed memory of their own: after a 300-call load RSS was 1.50 GB with
    the default and 1.23 GB with 2 arenas, at the same throughput. Not glibc (macOS, musl): nothing to do.
    """
    if n <= 0 or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = bool(libc.mallopt(_M_ARENA_MAX, n))
    except (OSError, AttributeError):
        return False
    if not ok:
        log.warning("mallopt(M_ARENA_MAX) was refused; memory use may be higher", extra={"arenas": n})
    return ok


def limit_onednn_cache(capacity: int) -> None:
    """Cap oneDNN's primitive cache (0: leave its default of 1,024). Must run before the first model pass.

    Kernels are built per input shape (~4 ms, ~0.55 MB each for a bf16 product), and live batches come in many
    shapes: at 1,000 calls on bf16 the cache thrashed and, with PyTorch's own ideep cache, held ~500 MB
    (session 25). ``ASSISTANT_BF16_ROW_BUCKETS`` (on by default) cuts the shapes to ~100 instead. A small cache only
    rebuilds kernels: 64 entries cost 40-50% more CPU per utterance (session 16), so the default stays 1,024.
    """
    if capacity > 0:
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def set_gil_switch_interval(ms: float) -> None:
    """Let a thread that waits for the GIL get it after at most ``ms`` (Python's default: 5 ms).

    The event loop gives the GIL away at every socket write and read, and must win it back from the model
    threads, which hold it between their passes' C calls.
    """
    if ms <= 0:
        raise ValueError(f"the GIL switch interval must be > 0 ms, got {ms}")
    sys.setswitchinterval(ms / 1000.0)


def set_gc_gen0_threshold(allocations: int) -> tuple[int, int, int]:
    """Run a young garbage collection every ``allocations`` net allocations (Python's default: 700); returns the
    thresholds now in force. The older generations' thresholds stay Python's."""
    if allocations < 1:
        raise ValueError(f"the young generation's threshold must be >= 1, got {allocations}")
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(allocations, gen1, gen2)
    return gc.get_threshold()


def raise_open_files_limit(wanted: int | None = None) -> tuple[int, int]:
    """Raise this process's soft limit on open files towards its hard limit; returns ``(soft, hard)`` after.

    Every live call holds at least two sockets (source and sidebar) on the server and on a load generator,
    and many distributions start processes with a soft limit of 1,024: a 1,000-call load then fails with
    "Too many open files" although the hard limit allows far more. ``wanted`` (None: the hard limit) caps
    the raise; the limit is never lowered. Not POSIX: nothing to do.
    """
    try:
        import resource
    except ImportError:  # Windows
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else wanted
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open files limit", extra={"wanted": target, "error": str(e)})
    return (soft, hard)
