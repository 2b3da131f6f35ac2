from __future__ import annotations

import asyncio

import httpx

from assistant.events.webhook import AlertWebhook


def test_webhook_retries_then_delivers() -> None:
    calls: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append({"body": request.read()})
        return httpx.Response(503 if len(calls) < 3 else 200)

    async def scenario() -> AlertWebhook:
        hook = AlertWebhook(
            "http://hook.test/a", retries=3, backoff_s=0.01, transport=httpx.MockTransport(handler)
        )
        await hook.start()
        hook.send({"id": "a1", "type": "alert"})
        await hook.close()
        return hook

    hook = asyncio.run(scenario())
    assert len(calls) == 3 and hook.delivered == 1 and b'"a1"' in calls[0]["body"]


def test_webhook_gives_up_after_retries_and_on_4xx() -> None:
    attempts = {"n": 0}

    def down(request: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        raise httpx.ConnectError("refused")

    async def scenario(transport: httpx.MockTransport) -> AlertWebhook:
        hook = AlertWebhook("http://hook.test/a", retries=2, backoff_s=0.01, transport=transport)
        await hook.start()
        hook.send({"id": "a2"})
        await hook.close()
        return hook

    hook = asyncio.run(scenario(httpx.MockTransport(down)))
    assert attempts["n"] == 3 and hook.failed == 1
    hook = asyncio.run(scenario(httpx.MockTransport(lambda r: httpx.Response(400))))
    assert hook.failed == 1 and hook.delivered == 0


def test_webhook_send_never_blocks_when_full() -> None:
    async def scenario() -> AlertWebhook:
        hook = AlertWebhook("http://hook.test/a", queue_size=2)
        for i in range(5):
            hook.send({"id": str(i)})  # not started: the queue fills, later alerts are dropped
        return hook

    assert asyncio.run(scenario()).failed == 3
