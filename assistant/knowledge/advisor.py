"""The next-step engine: which procedure applies, which step comes next, and the words to say.

It follows the call, not only the last utterance:

* red flags force a procedure (abusive -> abusive-caller handling, ``legal_threat`` -> legal, ...), and
  ``frustration`` adds a de-escalation script *beside* the topical procedure;
* the procedure under way is kept (hysteresis) unless another one wins by ``switch_margin`` or a red flag
  forces the switch, so the sidebar does not flicker between procedures;
* agent utterances that say a step's script mark that step done, so the next suggestion is the step after
  (``assistant.knowledge.steps``: lexical by default, so an agent turn costs no encoder pass);
* the stage of the call (greeting at the start, closing at the end) comes from the procedure under way.

Routing is by the ``answers`` of each SOP's front matter, so a company's own SOP that answers
``legal_threat`` takes over from the shipped one only if the shipped one is removed (first id wins).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from assistant.errors import ConfigurationError
from assistant.knowledge.document import Procedure
from assistant.knowledge.embedder import Embedder, SentenceEmbedder
from assistant.knowledge.index import KnowledgeIndex, knowledge_folders, load_index
from assistant.knowledge.retriever import FusedRetriever, Hit, Query
from assistant.knowledge.steps import DEFAULT_THRESHOLD, ScriptMatcher
from assistant.settings import Settings
from assistant.types import AdvisorState, RedFlagResult, Speaker, Suggestion

logger = logging.getLogger(__name__)

# Red flags that force a procedure, highest priority first. A label maps to the procedure that lists it
# (or the group name) in ``answers``.
FLAG_PRIORITY: tuple[str, ...] = (
    "threat",
    "insult",
    "profanity",
    "legal_threat",
    "escalation_request",
    "churn_risk",
)
# Labels answered by a companion procedure, shown beside the topical one rather than replacing it.
COMPANION_LABELS: tuple[str, ...] = ("frustration",)
GROUP_OF = {"threat": "abusive", "insult": "abusive", "profanity": "abusive"}


@dataclass(slots=True)
class ProcedureProgress:
    """Per-call state of the advisor: the procedure under way, its steps done, the stage.

    ``to_dict``/``from_dict`` make it storable.

    Example:
        >>> s = ProcedureProgress()
        >>> s.to_dict()["stage"]
        'greeting'
    """

    turn: int = 0
    stage: str = "greeting"
    procedure_id: str | None = None
    procedure_score: float = 0.0
    forced_by: str | None = None  # the red flag that forced the current procedure, if any
    next_step: dict[str, int] = field(default_factory=dict)  # procedure id -> next step index
    done: dict[str, list[int]] = field(default_factory=dict)  # procedure id -> steps the agent did
    flags_seen: dict[str, int] = field(default_factory=dict)
    companion_id: str | None = None
    switches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcedureProgress:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def mark_done(self, procedure_id: str, step: int) -> None:
        done = self.done.setdefault(procedure_id, [])
        if step not in done:
            done.append(step)
            done.sort()
        self.next_step[procedure_id] = max(self.next_step.get(procedure_id, 0), step + 1)


@dataclass(frozen=True, slots=True)
class AdvisorConfig:
    """Thresholds of the engine (see ``ASSISTANT_KB_*`` settings)."""

    min_score: float = 0.35
    switch_margin: float = 0.08
    done_threshold: float = 0.55  # step_tracking "embedding": cosine of an agent utterance to a step passage
    score_decay: float = 0.9  # per turn, the remembered strength of the procedure under way
    # "lexical": the agent's words against the steps' scripts (ScriptMatcher), no encoder pass for agent turns;
    # "embedding": the agent turn's query vector against the step passages (the earlier way).
    step_tracking: str = "lexical"
    script_threshold: float = DEFAULT_THRESHOLD  # lexical: share of a script's (IDF-weighted) words said


class KnowledgeAdvisor:
    """Suggests SOP next steps for a live call (implements ``assistant.types.NextStepAdvisor``).

    Cheap constructor; ``warm_up()`` loads the encoder and the index (rebuilding a stale one when the
    settings allow). Per chunk it encodes the text once.

    Example:
        >>> advisor = load_advisor(get_settings())  # doctest: +SKIP
        >>> state = advisor.start_call()  # doctest: +SKIP
        >>> advisor.advise(state, speaker="customer", text="I want to cancel", context=(), flags=None)  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        *,
        config: AdvisorConfig | None = None,
        index: KnowledgeIndex | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.config = config or AdvisorConfig(
            min_score=settings.kb_min_score,
            switch_margin=settings.kb_switch_margin,
            step_tracking=settings.kb_step_tracking,
            script_threshold=settings.kb_script_threshold,
        )
        if self.config.step_tracking not in ("lexical", "embedding"):
            raise ValueError(f"step_tracking must be lexical or embedding, got {self.config.step_tracking!r}")
        self._index = index
        self._scripts: ScriptMatcher | None = (
            ScriptMatcher(index.procedures, threshold=self.config.script_threshold)
            if index is not None
            else None
        )
        self._retriever: FusedRetriever | None = (
            FusedRetriever(index, embedder) if index is not None else None
        )
        self._signature: tuple[Any, ...] | None = None
        # Monotonic time of the last look at the files; None means never looked. Not 0.0: the monotonic clock
        # counts from boot, so on a freshly booted machine 0.0 would read as "looked a moment ago".
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------------
    def _kb_signature(self) -> tuple[Any, ...]:
        """Names, sizes and mtimes of the SOP files and the manifest: cheap to take, changes on any edit."""
        sig: list[Any] = []
        for folder in knowledge_folders(self.settings):
            if folder.is_dir():
                for p in sorted(folder.rglob("*.md")):
                    st = p.stat()
                    sig.append((str(p), st.st_size, st.st_mtime_ns))
        manifest = self.settings.resolved_index_dir() / "manifest.json"
        if manifest.exists():
            sig.append(("manifest", manifest.stat().st_mtime_ns))
        return tuple(sig)

    def warm_up(self) -> None:
        """Load the encoder and the index (once)."""
        self.embedder.warm_up()
        if self._index is None:
            self.reload()

    def reload(self) -> None:
        index = load_index(self.settings, self.embedder)
        scripts = ScriptMatcher(index.procedures, threshold=self.config.script_threshold)
        with self._lock:
            self._index = index
            self._scripts = scripts
            self._retriever = FusedRetriever(index, self.embedder)
            self._signature = self._kb_signature()
        logger.info("knowledge advisor loaded %d procedures", len(index.procedures))

    def refresh(self, *, max_age_s: float = 0.0) -> bool:
        """Reload when an SOP file or the index changed on disk (e.g. after ``assistant kb import``).

        With ``max_age_s``, the files are looked at only when the last look is older than that: listing them
        for every new call cost a few ms each when hundreds of calls start together.
        """
        if self._signature is None:
            return False
        now = time.monotonic()
        if max_age_s > 0 and self._checked_at is not None and now - self._checked_at < max_age_s:
            return False
        self._checked_at = now
        sig = self._kb_signature()
        if sig == self._signature:
            return False
        self.reload()
        return True

    @property
    def index(self) -> KnowledgeIndex:
        if self._index is None:
            self.warm_up()
        if self._index is None:  # warm_up() loads it; a subclass that does not is a bug worth naming
            raise ConfigurationError("KnowledgeAdvisor.warm_up() did not load the index")
        return self._index

    # -- NextStepAdvisor -----------------------------------------------------------------------------
    def needs_vector(self, speaker: Speaker) -> bool:
        """Whether ``advise`` uses a query vector for a chunk of ``speaker`` (the service encodes only then)."""
        return speaker == "customer" or self.config.step_tracking == "embedding"

    def start_call(self) -> ProcedureProgress:
        """A fresh state for a new call; picks up SOPs imported since (at most) ``kb_refresh_s`` ago."""
        if self._signature is not None:
            self.refresh(max_age_s=self.settings.kb_refresh_s)
        return ProcedureProgress()

    def restore_call(self, data: dict[str, Any]) -> ProcedureProgress:
        """The state of a call resumed after a restart or on another worker (what ``to_dict`` wrote)."""
        return ProcedureProgress.from_dict(data)

    def advise(
        self,
        state: AdvisorState,
        *,
        speaker: Speaker,
        text: str,
        context: tuple[str, ...] = (),
        flags: RedFlagResult | None = None,
        vector: np.ndarray | None = None,
    ) -> list[Suggestion]:
        """Update the call state with one chunk and return suggestions (primary first, then companion).

        ``vector``: the chunk's query vector from :meth:`encode_queries` (batched across calls by the
        service); without it the text is encoded here, one at a time.
        """
        if not isinstance(state, ProcedureProgress):
            raise TypeError(f"expected the ProcedureProgress from start_call(), got {type(state).__name__}")
        index = self.index
        retriever = self._retriever
        if index.empty or retriever is None or not text.strip():
            return []
        state.turn += 1
        flagged = list(flags.flagged) if flags is not None else []
        for label in flagged:
            state.flags_seen[label] = state.flags_seen.get(label, 0) + 1

        query = Query(text)
        if speaker == "agent" and not self.needs_vector(speaker):
            self._track_agent_words(state, text)
            return self._suggestions(state, {}, reason_prefix="", flagged=flagged)
        if vector is None:
            vector = retriever.encode(query)
        hits = retriever.retrieve(query, top_k=len(index.procedure_ids), vector=vector)
        by_id = {h.procedure_id: h for h in hits}

        if speaker == "agent":
            self._track_agent(state, vector)
            return self._suggestions(state, by_id, reason_prefix="", flagged=flagged)

        reason = self._choose_primary(state, hits, by_id, flagged)
        companion = self._companion_for(flagged)
        # No classifier ran: a clear retrieval match for de-escalation stands in for the flag.
        top = hits[0] if hits else None
        if (
            flags is None
            and top is not None
            and self._is_companion(top.procedure_id)
            and top.score >= self.config.min_score
        ):
            companion = top.procedure_id
            flagged = [*flagged, *COMPANION_LABELS]
        state.companion_id = companion
        return self._suggestions(state, by_id, reason_prefix=reason, flagged=flagged)

    def encode_queries(self, texts: list[str]) -> list[np.ndarray]:
        """Query vectors for many chunks in one encoder pass (the same vectors ``advise`` would compute)."""
        if not texts:
            return []
        return list(self.embedder.encode(texts))

    @property
    def query_space(self) -> str:
        """The retrieval encoder's fingerprint: query vectors from elsewhere must come from this encoder's space."""
        return self.embedder.fingerprint

    def query_encoder(self) -> _QueryBatch:
        """``encode_queries`` as a batch predictor, for the service's cross-call query batching."""
        return _QueryBatch(self)

    def procedure(self, procedure_id: str) -> Procedure | None:
        """The SOP with this id in the loaded index, or None."""
        return self.index.procedures.get(procedure_id)

    # -- internals -----------------------------------------------------------------------------------
    def _procedures_answering(self, label: str) -> list[str]:
        group = GROUP_OF.get(label)
        return [
            pid
            for pid, p in self.index.procedures.items()
            if label in p.answers or (group is not None and group in p.answers)
        ]

    def _route(self, flagged: list[str]) -> tuple[str, str] | None:
        """The procedure a red flag forces, with the label, by priority."""
        for label in FLAG_PRIORITY:
            if label in flagged:
                candidates = self._procedures_answering(label)
                # Prefer a procedure that answers the label itself over one answering only its group.
                exact = [pid for pid in candidates if label in self.index.procedures[pid].answers]
                if exact or candidates:
                    return (exact or candidates)[0], label
        return None

    def _companion_for(self, flagged: list[str]) -> str | None:
        for label in COMPANION_LABELS:
            if label in flagged:
                found = self._procedures_answering(label)
                if found:
                    return found[0]
        return None

    def _is_companion(self, pid: str) -> bool:
        return any(label in self.index.procedures[pid].answers for label in COMPANION_LABELS)

    def _choose_primary(
        self, state: ProcedureProgress, hits: list[Hit], by_id: dict[str, Hit], flagged: list[str]
    ) -> str:
        cfg = self.config
        current = state.procedure_id if state.procedure_id in self.index.procedures else None
        forced = self._route(flagged)
        if forced is not None:
            pid, label = forced
            current_rank = FLAG_PRIORITY.index(state.forced_by) if state.forced_by in FLAG_PRIORITY else 99
            if pid != current and FLAG_PRIORITY.index(label) <= current_rank:
                self._switch(state, pid, by_id[pid].score if pid in by_id else 1.0, forced_by=label)
                return f"red flag '{label}' calls for this procedure"
            if pid == current:
                state.procedure_score = max(state.procedure_score, by_id[pid].score if pid in by_id else 0.0)
                return f"red flag '{label}' again: staying on this procedure"
        # Companion procedures (de-escalation) never take the primary slot while a topical one qualifies.
        topical = [h for h in hits if not self._is_companion(h.procedure_id)]
        best = topical[0] if topical else None
        if best is None or best.score < cfg.min_score:
            if current is not None:
                state.procedure_score *= cfg.score_decay
                return "continuing the procedure under way"
            if topical == [] or best is None:
                return ""
            # Nothing matches well: at the very start of a call, the greeting stage applies.
            greeting = self._stage_procedure("greeting")
            if state.turn == 1 and greeting is not None and not state.done.get(greeting):
                self._switch(state, greeting, best.score, forced_by=None)
                return "start of the call"
            return ""
        if current is None:
            self._switch(state, best.procedure_id, best.score, forced_by=None)
            return f"best match for what the customer said (score {best.score:.2f})"
        now = by_id[current].score if current in by_id else 0.0
        held = max(now, state.procedure_score * cfg.score_decay)
        state.procedure_score = held
        if (
            best.procedure_id != current
            and best.score >= held + cfg.switch_margin
            and state.forced_by is None
        ):
            self._switch(state, best.procedure_id, best.score, forced_by=None)
            return f"switched: this procedure now fits clearly better ({best.score:.2f} vs {held:.2f})"
        return "continuing the procedure under way"

    def _switch(self, state: ProcedureProgress, pid: str, score: float, *, forced_by: str | None) -> None:
        if state.procedure_id is not None and state.procedure_id != pid:
            state.switches += 1
        state.procedure_id = pid
        state.procedure_score = score
        state.forced_by = forced_by
        state.stage = self.index.procedures[pid].stage
        logger.debug("advisor switched procedure to %s (forced_by=%s)", pid, forced_by)

    def _stage_procedure(self, stage: str) -> str | None:
        for pid, p in self.index.procedures.items():
            if p.stage == stage and stage in p.answers:
                return pid
        return None

    def _track_agent_words(self, state: ProcedureProgress, text: str) -> None:
        """Mark the step of the current (or companion) procedure whose script the agent just said."""
        scripts = self._scripts
        if scripts is None:
            return
        for pid in (state.procedure_id, state.companion_id):
            if pid is None or pid not in self.index.procedures:
                continue
            found = scripts.match(pid, text)
            if found is not None:
                state.mark_done(pid, found[0])

    def _track_agent(self, state: ProcedureProgress, vector: np.ndarray) -> None:
        """Mark the step of the current (or companion) procedure that the agent's words carry out
        (step_tracking "embedding")."""
        index = self.index
        for pid in (state.procedure_id, state.companion_id):
            if pid is None or pid not in index.procedures:
                continue
            ids = index.step_passages(pid)
            if not ids:
                continue
            sims = index.vectors[ids] @ vector
            j = int(np.argmax(sims))
            if float(sims[j]) >= self.config.done_threshold:
                state.mark_done(pid, index.passages[ids[j]].step_index)

    def _next_step(self, state: ProcedureProgress, proc: Procedure) -> int | None:
        done = set(state.done.get(proc.id, []))
        k = state.next_step.get(proc.id, 0)
        while k < len(proc.steps) and k in done:
            k += 1
        return k if k < len(proc.steps) else None

    def _suggestion(
        self, state: ProcedureProgress, pid: str, hit: Hit | None, reason: str
    ) -> Suggestion | None:
        proc = self.index.procedures[pid]
        k = self._next_step(state, proc)
        if k is None:
            return None
        step = proc.steps[k]
        done = state.done.get(pid, [])
        why = reason
        if done:
            why += f"; steps done by the agent: {', '.join(str(i + 1) for i in done)}"
        return Suggestion(
            procedure_id=pid,
            procedure_title=proc.title,
            step_index=k,
            step_count=len(proc.steps),
            step=f"{step.title}. {step.action}".strip(),
            script=step.script,
            source=proc.step_source(k),
            score=round(float(hit.score) if hit is not None else self._remembered(state, pid), 4),
            reason=why.strip("; "),
            stage=proc.stage,
        )

    @staticmethod
    def _remembered(state: ProcedureProgress, pid: str) -> float:
        """A suggestion's score on a turn that ran no retrieval (an agent turn): the procedure's held score."""
        return float(state.procedure_score) if pid == state.procedure_id else 0.0

    def _suggestions(
        self, state: ProcedureProgress, by_id: dict[str, Hit], *, reason_prefix: str, flagged: list[str]
    ) -> list[Suggestion]:
        out: list[Suggestion] = []
        pid = state.procedure_id
        if pid is not None and pid in self.index.procedures:
            s = self._suggestion(state, pid, by_id.get(pid), reason_prefix or "procedure under way")
            if s is None:  # every step done: the procedure is complete
                state.procedure_id, state.forced_by, state.procedure_score = None, None, 0.0
            else:
                out.append(s)
        comp = state.companion_id
        if comp is not None and comp != pid and comp in self.index.procedures and "frustration" in flagged:
            s = self._suggestion(
                state, comp, by_id.get(comp), "the customer sounds frustrated: de-escalate too"
            )
            if s is not None:
                out.append(s)
        return out


def retrieval_layers(settings: Settings) -> int | None:
    """The embedder's ``layers`` for these settings: None for the whole encoder, else the first N layers."""
    from assistant.settings import BASE_ENCODER_LAYERS

    n = settings.retrieval_encoder_layers()
    return None if n >= BASE_ENCODER_LAYERS else n


def retrieval_query_space(settings: Settings) -> str:
    """The fingerprint of the retrieval encoder these settings run (what a query map must be fitted for);
    hashes the weights file once, loads no model."""
    return SentenceEmbedder(layers=retrieval_layers(settings)).fingerprint


def load_advisor(settings: Settings, *, device: str = "cpu") -> KnowledgeAdvisor:
    """The advisor with the shipped MiniLM encoder and the index, loaded and ready.

    ``ASSISTANT_TORCH_THREADS`` (when > 0) is applied here: one short utterance gains nothing from
    intra-op threads, and on a busy 2-core machine 2 threads measured ~40x slower than 1 (400 ms vs 9 ms).
    """
    if settings.torch_threads > 0:
        import torch

        torch.set_num_threads(settings.torch_threads)
    embedder = SentenceEmbedder(device=device, layers=retrieval_layers(settings))
    advisor = KnowledgeAdvisor(settings, embedder)
    advisor.warm_up()
    # After warm-up, so the index's passages are fp32 embeddings; only live queries change precision.
    embedder.set_query_precision(
        settings.query_inference_mode,
        torchscript=settings.torchscript,
        calibration=settings.retrieval_int8_calibration_path(),
        row_buckets=settings.bf16_row_buckets,
    )
    return advisor


class _QueryBatch:
    """``KnowledgeAdvisor.encode_queries`` under the ``QueryEncoder`` protocol (``predict(texts)``)."""

    def __init__(self, advisor: KnowledgeAdvisor) -> None:
        self._advisor = advisor

    def predict(self, texts: list[str], /) -> list[np.ndarray]:
        return self._advisor.encode_queries(texts)
