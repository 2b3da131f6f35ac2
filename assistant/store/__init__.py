"""The call record: SQLAlchemy 2 async models, Alembic migrations run at start-up, a write-behind writer."""

from __future__ import annotations

from assistant.store.records import ResumeState
from assistant.store.repository import Insert, Op, Store, Update, Upsert, utcnow
from assistant.store.writer import StoreWriter

__all__ = ["Insert", "Op", "ResumeState", "Store", "StoreWriter", "Update", "Upsert", "utcnow"]
