"""Helpers for the streaming-service tests: the shared live server and test settings."""

from __future__ import annotations

from live_server import TRANSCRIPTS, LiveServer, free_port, make_settings

__all__ = ["TRANSCRIPTS", "LiveServer", "free_port", "make_settings"]
