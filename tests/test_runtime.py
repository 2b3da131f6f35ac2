"""Process tuning applied by `assistant serve`."""

from __future__ import annotations

import gc
import os
import sys

import pytest

from assistant.runtime import (
    limit_malloc_arenas,
    limit_onednn_cache,
    raise_open_files_limit,
    set_gc_gen0_threshold,
    set_gil_switch_interval,
)


def test_malloc_arenas_are_capped_on_linux_and_zero_means_untouched() -> None:
    assert limit_malloc_arenas(0) is False
    assert limit_malloc_arenas(2) is sys.platform.startswith("linux")


def test_onednn_cache_capacity_is_set_unless_the_user_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    limit_onednn_cache(0)
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ
    limit_onednn_cache(64)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"
    limit_onednn_cache(8)  # an explicit environment variable wins
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


def test_gil_switch_interval_is_set_in_milliseconds_and_must_be_positive() -> None:
    before = sys.getswitchinterval()
    try:
        set_gil_switch_interval(1.0)
        assert sys.getswitchinterval() == pytest.approx(0.001)
        with pytest.raises(ValueError, match="> 0 ms"):
            set_gil_switch_interval(0)
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(before)


def test_gc_gen0_threshold_sets_only_the_young_generation() -> None:
    before = gc.get_threshold()
    try:
        assert set_gc_gen0_threshold(10_000) == (10_000, before[1], before[2])
        assert gc.get_threshold()[0] == 10_000
        with pytest.raises(ValueError, match=">= 1"):
            set_gc_gen0_threshold(0)
        assert gc.get_threshold()[0] == 10_000
    finally:
        gc.set_threshold(*before)


def test_the_service_default_gc_threshold_is_above_pythons() -> None:
    from assistant.settings import Settings

    assert Settings().gc_gen0_threshold > 700  # why: assistant/settings.py, docs/benchmarks.md session 24
    with pytest.raises(ValueError):
        Settings(gc_gen0_threshold=10)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_open_files_limit_is_raised_towards_the_hard_limit_never_lowered() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, before[1]), before[1]))
        soft, hard = raise_open_files_limit(300)
        assert hard == before[1] and soft == min(300, hard)
        assert raise_open_files_limit(100)[0] == soft  # never lowered
        assert raise_open_files_limit()[0] == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
