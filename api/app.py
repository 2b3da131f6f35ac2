"""The FastAPI application: ``create_app(settings, *, analyzer=None, advisor=None)``.

Constructing the app is cheap; the lifespan loads the models (unless given), connects the store (running
its migrations), the event bus and the webhook, and shares one ``CallService`` through ``app.state``.

Example:
    >>> from assistant.testing import KeywordAnalyzer, RuleAdvisor
    >>> app = create_app(analyzer=KeywordAnalyzer(), advisor=RuleAdvisor())
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

import assistant
from assistant.calls.demo import DemoCalls
from assistant.calls.metrics import ServiceMetrics
from assistant.calls.service import CallService
from assistant.events.bus import EventBus
from assistant.events.memory import InProcessBus
from assistant.events.webhook import AlertWebhook
from assistant.guidance.policies import load_policies
from assistant.settings import Settings, get_settings
from assistant.store import Store
from assistant.types import NextStepAdvisor, RedFlagAnalyzer

from .guidance import router as guidance_router
from .limits import BodyLimit, validation_error
from .pages import router as pages_router
from .procedures import router as procedures_router
from .readiness import router as readiness_router
from .routes import router as http_router
from .streams import router as ws_router

log = logging.getLogger(__name__)


def load_analyzer(settings: Settings) -> RedFlagAnalyzer:
    """The shipped red-flag classifier (or the keyword stand-in with ASSISTANT_USE_FAKE_MODELS=1)."""
    if settings.use_fake_models:
        from assistant.testing import KeywordAnalyzer

        return KeywordAnalyzer(model_ms=settings.fake_model_ms)
    from assistant.redflags.classifier import load_classifier

    clf = load_classifier(settings)
    clf.warm_up()
    return clf


def load_next_step_advisor(settings: Settings) -> NextStepAdvisor:
    """The knowledge-base advisor (or the rule stand-in with ASSISTANT_USE_FAKE_MODELS=1)."""
    if settings.use_fake_models:
        from assistant.testing import RuleAdvisor

        return RuleAdvisor()
    from assistant.knowledge import load_advisor

    return load_advisor(settings, device=settings.device)  # warmed up


def make_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        from assistant.events.redis_bus import RedisBus

        return RedisBus(settings.redis_url, history=settings.event_history)
    return InProcessBus(history=settings.event_history)


def create_app(
    settings: Settings | None = None,
    *,
    analyzer: RedFlagAnalyzer | None = None,
    advisor: NextStepAdvisor | None = None,
    bus: EventBus | None = None,
    store: Store | None = None,
    webhook: AlertWebhook | None = None,
) -> FastAPI:
    """Build the app; models not given are loaded in the lifespan from the settings."""
    settings = settings or get_settings()
    # The policy files are read and validated here, at start-up: a bad file stops the service with its path.
    guidance = load_policies(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        an = analyzer if analyzer is not None else await asyncio.to_thread(load_analyzer, settings)
        adv = advisor if advisor is not None else await asyncio.to_thread(load_next_step_advisor, settings)
        hook = webhook
        if hook is None and settings.alert_webhook_url:
            hook = AlertWebhook(
                settings.alert_webhook_url,
                timeout_s=settings.alert_webhook_timeout_s,
                retries=settings.alert_webhook_retries,
            )
        service = CallService(
            settings,
            analyzer=an,
            advisor=adv,
            bus=bus or make_bus(settings),
            store=store or Store(settings.resolved_database_url()),
            webhook=hook,
            metrics=ServiceMetrics(),
            guidance=guidance,
        )
        if not settings.auth_secret:
            log.warning("authentication is OFF (ASSISTANT_AUTH_SECRET is not set): every caller is an admin")
        await service.start()
        app.state.service = service
        app.state.demos = DemoCalls(service)
        # The models, tokenizers and index are hundreds of thousands of long-lived objects; moved out of the
        # collector's generations, a full collection no longer walks them (measured: 160 ms -> ~0 ms).
        gc.freeze()
        log.info("service started", extra={"database": settings.resolved_database_url().split("://")[0]})
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="Call-center assistant",
        version=assistant.__version__,
        description="Live transcripts in; red flags, SOP next steps and supervisor alerts out. "
        "WebSocket protocol: docs/protocol.md.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.guidance = guidance
    app.include_router(http_router)
    app.include_router(ws_router)
    app.include_router(pages_router)
    app.include_router(procedures_router)
    app.include_router(readiness_router)
    app.include_router(guidance_router)
    return app
