"""Supervisor alerts: raising them from a call's episodes, the index of open alerts, acknowledgements.

An alert goes to the call's own topic (the sidebar), to the shared alerts topic (every supervisor, every
worker), to the store and to the webhook. Each worker indexes the alerts topic, so a supervisor who connects
to any worker sees the open alerts, and an acknowledgement made on one worker is known on all.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.calls.episode import AlertDecision
from assistant.calls.live import CallEvents, LiveCall
from assistant.calls.metrics import ServiceMetrics
from assistant.calls.recorder import CallRecorder
from assistant.calls.session import ChunkData
from assistant.calls.severity import SeverityReading
from assistant.errors import InvalidInputError
from assistant.events.bus import ALERTS_TOPIC, BusMessage, EventBus, Subscription
from assistant.events.messages import AlertAckEvent, AlertEvent, encode
from assistant.events.webhook import AlertWebhook

log = logging.getLogger(__name__)

ALERT_INDEX_SIZE = 10_000  # alerts this worker remembers (oldest dropped first)


class UnknownAlert(InvalidInputError):
    """No alert with this id."""


def alert_id_of(call_id: str, episode: int) -> str:
    """An episode's alert id: the same on every worker, so a call resumed elsewhere never makes a second one."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"assistant-alert:{call_id}:{episode}").hex[:20]


@dataclass(slots=True)
class AlertState:
    data: dict[str, Any]
    acked_by: str | None = None


class AlertDesk:
    """Raises, indexes and acknowledges alerts; ``find_call`` gives the live call of a call id, if any."""

    def __init__(
        self,
        *,
        bus: EventBus,
        events: CallEvents,
        recorder: CallRecorder,
        metrics: ServiceMetrics,
        find_call: Callable[[str], LiveCall | None],
        webhook: AlertWebhook | None = None,
    ) -> None:
        self.bus = bus
        self.events = events
        self.recorder = recorder
        self.metrics = metrics
        self.webhook = webhook
        self._find_call = find_call
        self.index: OrderedDict[str, AlertState] = OrderedDict()
        self._sub: Subscription | None = None

    def subscribe(self) -> None:
        """Start listening on the alerts topic (before the indexing task runs, so nothing is missed)."""
        self._sub = self.bus.subscribe(ALERTS_TOPIC, maxsize=100_000)

    async def run_index(self) -> None:
        """Index every alert and acknowledgement on the alerts topic until the subscription ends."""
        sub = self._sub
        if sub is None:
            return
        while True:
            msg = await sub.get()
            if msg is None:
                return
            self._index(msg)

    def _index(self, msg: BusMessage) -> None:
        data = json.loads(msg.data)
        alert_id = data.get("id")
        if not alert_id:
            return
        if data.get("type") == "alert":
            prev = self.index.get(alert_id)
            self.index[alert_id] = AlertState(data, prev.acked_by if prev else None)
            self.index.move_to_end(alert_id)
            while len(self.index) > ALERT_INDEX_SIZE:
                self.index.popitem(last=False)
        elif data.get("type") == "alert_ack" and alert_id in self.index:
            self.index[alert_id].acked_by = data.get("acked_by")

    async def load_open(self) -> None:
        """Index the open alerts kept in the store (after a restart, before any supervisor connects)."""
        store = self.recorder.store
        if store is None:
            return
        loaded: OrderedDict[str, AlertState] = OrderedDict()
        for a in await store.open_alerts(limit=ALERT_INDEX_SIZE):
            event = AlertEvent(
                call_id=a.call_id,
                id=a.id,
                episode=a.episode,
                severity=a.severity,
                level=a.level,
                labels=a.labels,
                reason=a.reason,
                text=a.text,
                seq=a.seq,
                update=a.updates > 0,
            )
            loaded[a.id] = AlertState(event.model_dump(mode="json"))
        loaded.update(self.index)  # what was already seen live on the alerts topic is newer
        self.index = loaded
        log.info("open alerts loaded from the store", extra={"alerts": len(self.index)})

    # ---- raising ----------------------------------------------------------------------------------------
    async def raise_alert(
        self, live: LiveCall, chunk: ChunkData, decision: AlertDecision, reading: SeverityReading
    ) -> None:
        """Publish a new alert or an update of the episode's alert (the episode tracker decided which)."""
        s = live.session
        kind, episode = decision.kind, decision.episode
        if kind == "new":
            alert_id = alert_id_of(s.call_id, episode)
            s.alert_ids[episode] = alert_id
        else:
            alert_id = s.alert_ids[episode]
        event = AlertEvent(
            call_id=s.call_id,
            id=alert_id,
            episode=episode,
            severity=reading.score,
            level=reading.level,
            labels=list(decision.labels),
            reason=decision.reason,
            text=chunk.text,
            seq=chunk.seq,
            update=kind == "update",
        )
        # On the call's topic and the alerts topic in one group; not again when the worker this call was resumed
        # from had published it (its state below still counts it: the alert exists).
        sent = await self.events.emit(live, event, also=(ALERTS_TOPIC,))
        if kind == "update":
            live.alert_updates[alert_id] = live.alert_updates.get(alert_id, 0) + 1
        if not sent:
            if kind == "new":
                self.recorder.alert_raised(event)  # its row, in case the dead worker never wrote it (once)
            return
        self.metrics.alerts.labels(decision.reason, kind).inc()
        log.info(
            "alert",
            extra={
                "call_id": s.call_id,
                "seq": chunk.seq,
                "alert_id": alert_id,
                "kind": kind,
                "level": reading.level,
            },
        )
        if kind == "new":
            self.recorder.alert_raised(event)
        else:
            self.recorder.alert_updated(event, updates=live.alert_updates[alert_id])
        if self.webhook is not None:
            self.webhook.send(event.model_dump(mode="json"))

    # ---- reading and acknowledging ----------------------------------------------------------------------
    def open_alerts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest unacknowledged alerts (newest last), for a supervisor who just connected."""
        items = [a.data for a in self.index.values() if a.acked_by is None]
        return items[-limit:]

    async def ack(self, alert_id: str, *, subject: str, note: str | None = None) -> dict[str, Any]:
        """Record a supervisor's acknowledgement (idempotent) and tell every supervisor and the sidebar."""
        state = self.index.get(alert_id)
        call_id: str | None = state.data.get("call_id") if state else None
        store = self.recorder.store
        if state is None and store is not None:
            await self.recorder.flush()
            rec = await store.get_alert(alert_id)
            if rec is not None:
                call_id = rec.call_id
                if rec.acked_by is not None:
                    return {
                        "id": alert_id,
                        "call_id": call_id,
                        "acked_by": rec.acked_by,
                        "already_acked": True,
                    }
        if call_id is None:
            raise UnknownAlert(f"no alert with id {alert_id!r}; use an id from an alert event")
        if state is not None and state.acked_by is not None:
            return {"id": alert_id, "call_id": call_id, "acked_by": state.acked_by, "already_acked": True}
        if state is not None:
            state.acked_by = subject
        self.recorder.alert_acked(alert_id, call_id, subject=subject, note=note)
        event = AlertAckEvent(call_id=call_id, id=alert_id, acked_by=subject, note=note)
        live = self._find_call(call_id)
        if live is not None:
            await self.events.emit(live, event)
        await self.bus.publish(ALERTS_TOPIC, encode(event), eid=event.eid)
        self.metrics.alert_acks.inc()
        log.info("alert acknowledged", extra={"call_id": call_id, "alert_id": alert_id, "by": subject})
        return {"id": alert_id, "call_id": call_id, "acked_by": subject, "already_acked": False}
