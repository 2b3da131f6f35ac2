"""The supervisor report for a period, read from the store (shared by ``assistant report`` and the HTTP route).

Usage, in a coroutine (``GET /v1/reports/supervisor`` and ``assistant report`` call it; their tests run it on a real
store)::

    report = await report_from_store(store, policies, since=datetime(2026, 11, 1, tzinfo=UTC), until=now)
"""

from __future__ import annotations

from datetime import datetime

from assistant.guidance.facts import facts_from_record
from assistant.guidance.policies import GuidancePolicies
from assistant.guidance.report import SupervisorReport, build_report
from assistant.settings import Settings
from assistant.store import Store


async def report_from_store(
    store: Store,
    policies: GuidancePolicies,
    *,
    since: datetime,
    until: datetime,
    agent: str | None = None,
    limit: int = 10_000,
) -> SupervisorReport:
    """Every stored call that began in ``[since, until)`` (and was handled by ``agent``, if given)."""
    facts = []
    for call_id in await store.calls_started_between(since, until, agent=agent, limit=limit):
        record = await store.get_call(call_id)
        if record is not None:
            facts.append(facts_from_record(record))
    return build_report(facts, policies.stages, policies.protocol, since=since, until=until)


async def load_report(
    settings: Settings,
    policies: GuidancePolicies,
    *,
    since: datetime,
    until: datetime,
    agent: str | None = None,
    limit: int = 10_000,
) -> SupervisorReport:
    """Open the store of ``settings`` (migrated to the current schema), build the report, close it."""
    store = Store(settings.resolved_database_url())
    await store.start()
    try:
        return await report_from_store(store, policies, since=since, until=until, agent=agent, limit=limit)
    finally:
        await store.close()
