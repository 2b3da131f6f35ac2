"""permessage-deflate: off unless ASSISTANT_WS_COMPRESSION turns it on (browsers offer it on every socket)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from streaming_support import LiveServer, make_settings
from websockets.asyncio.client import connect

from assistant.api.app import create_app
from assistant.testing import KeywordAnalyzer, RuleAdvisor


@pytest.mark.parametrize("enabled", [False, True])
def test_compression_is_negotiated_only_when_the_setting_allows_it(tmp_path: Path, enabled: bool) -> None:
    settings = make_settings(tmp_path, ws_compression=enabled)
    app = create_app(settings, analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())

    async def scenario(url: str) -> tuple[str | None, dict]:
        # What a browser offers; the client's default is the same extension.
        async with connect(f"{url}/v1/calls/deflate-{enabled}/stream", compression="deflate") as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
            ready = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return extensions, ready

    with LiveServer(app) as srv:
        extensions, ready = asyncio.run(scenario(srv.ws_url))
    assert ready["type"] == "ready"  # the socket works either way
    if enabled:
        assert extensions is not None and "permessage-deflate" in extensions
    else:
        assert extensions is None
