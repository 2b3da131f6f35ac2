"""Between phases the bench waits for the service's red flags to catch up (``wait_caught_up``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant.eval.bench import red_flags_behind, wait_caught_up

BEHIND = 'assistant_degraded{feature="red_flags"} 1.0\nassistant_degraded{feature="suggestions"} 1.0\n'
CAUGHT_UP = 'assistant_degraded{feature="red_flags"} 0.0\nassistant_degraded{feature="suggestions"} 1.0\n'


def test_the_red_flags_gauge_is_read_from_a_metrics_page() -> None:
    assert red_flags_behind(BEHIND)
    assert not red_flags_behind(CAUGHT_UP)
    assert not red_flags_behind("")  # a service without the gauge is not behind


@pytest.fixture()
def metrics_server() -> Iterator[tuple[str, list[str]]]:
    """A /metrics page that says ``pages[0]`` until it is popped, then the next."""
    pages = [BEHIND, BEHIND, CAUGHT_UP]
    served: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.pop(0) if len(pages) > 1 else pages[0]
            served.append(page)
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()


def test_waits_until_red_flags_have_caught_up(metrics_server: tuple[str, list[str]]) -> None:
    url, served = metrics_server
    assert asyncio.run(wait_caught_up(url, timeout_s=30.0, every_s=0.01))
    assert served == [BEHIND, BEHIND, CAUGHT_UP]


def test_gives_up_after_the_timeout(metrics_server: tuple[str, list[str]]) -> None:
    url, served = metrics_server
    ticks = iter(range(100))
    assert not asyncio.run(wait_caught_up(url, timeout_s=0.5, every_s=0.01, clock=lambda: next(ticks)))
    assert served == [BEHIND]
