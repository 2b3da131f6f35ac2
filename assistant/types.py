"""Types shared across the pipeline: transport -> call session -> analyzers -> events.

These dataclasses are the boundaries between packages; each package keeps its internals private.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Speaker = Literal["customer", "agent"]


@dataclass(frozen=True, slots=True)
class Span:
    """A character span of the analysed text that drove a decision (for highlighting)."""

    start: int
    end: int
    text: str
    weight: float


@dataclass(frozen=True, slots=True)
class LabelScore:
    """One red-flag label's probability, the model's decision threshold, and the decision."""

    label: str
    probability: float
    threshold: float
    flagged: bool
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class RedFlagResult:
    """Multi-label red-flag scores for one utterance.

    ``labels`` holds every label of ``assistant.labels.LABELS``; ``groups`` the max score per group.
    """

    labels: dict[str, LabelScore]
    groups: dict[str, float]
    truncated: bool = False
    # The utterance's retrieval query vector from the same pass (a classifier with a query map), else None;
    # never serialised (assistant.redflags.querymap).
    query_vector: Any = field(default=None, compare=False, repr=False)

    @property
    def flagged(self) -> list[str]:
        return [name for name, s in self.labels.items() if s.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "labels": {k: asdict(v) for k, v in self.labels.items()},
            "groups": dict(self.groups),
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class Utterance:
    """The text to analyse with its recent context (earlier turns, oldest first)."""

    text: str
    context: tuple[str, ...] = ()


class RedFlagAnalyzer(Protocol):
    """Scores utterances for red flags. Implementations: the shipped classifier, ``assistant.testing`` fakes."""

    def warm_up(self) -> None:
        """Load what the first prediction would otherwise load (called once, before the service opens)."""
        ...

    def predict(self, utterances: list[Utterance]) -> list[RedFlagResult]: ...


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A next step from the SOP knowledge base, with its provenance and the reason it was chosen."""

    procedure_id: str
    procedure_title: str
    step_index: int  # 0-based position of the step in the procedure
    step_count: int
    step: str  # what to do
    script: str  # what to say
    source: str  # the passage (or file and heading) it came from
    score: float
    reason: str
    stage: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AdvisorState(Protocol):
    """Per-call state of the next-step engine (procedure under way, stage, steps done).

    Owned by the call session, mutated only by the advisor; ``to_dict`` makes it storable.
    """

    def to_dict(self) -> dict[str, Any]: ...


class QueryEncoder(Protocol):
    """Encodes many chunk texts in one pass into the query vectors ``NextStepAdvisor.advise(vector=...)`` takes."""

    def predict(self, texts: list[str], /) -> list[Any]: ...


class ProcedureStep(Protocol):
    """One ordered step of an SOP, as the sidebar checklist shows it."""

    @property
    def index(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def script(self) -> str: ...


class ProcedureOutline(Protocol):
    """An SOP's id, title, stage and ordered steps (``GET /v1/procedures/{id}``)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def steps(self) -> Sequence[ProcedureStep]: ...


class NextStepAdvisor(Protocol):
    """Suggests SOP next steps from the call's state. Implementations: assistant.knowledge, assistant.testing."""

    def warm_up(self) -> None:
        """Load the encoder and the index (once), before the service opens."""
        ...

    def start_call(self) -> AdvisorState: ...

    def advise(
        self,
        state: AdvisorState,
        *,
        speaker: Speaker,
        text: str,
        context: tuple[str, ...],
        flags: RedFlagResult | None,
        vector: Any | None = None,
    ) -> list[Suggestion]:
        """Update ``state`` with one chunk; ``vector`` is the chunk's query from ``query_encoder()``, if any."""
        ...

    def query_encoder(self) -> QueryEncoder | None:
        """A batch encoder for the chunk queries (batched across calls by the service), or None."""
        ...

    def needs_vector(self, speaker: Speaker) -> bool:
        """Whether ``advise`` uses a query vector for a chunk of ``speaker`` (the service encodes only then)."""
        ...

    def procedure(self, procedure_id: str) -> ProcedureOutline | None:
        """The SOP with this id, or None (unknown id, or an advisor without a knowledge base)."""
        ...


def shares_query_vectors(analyzer: RedFlagAnalyzer, advisor: NextStepAdvisor | None) -> bool:
    """Whether ``analyzer``'s results carry query vectors ``advisor`` can search with: both name the same
    retrieval encoder (``query_space``: a classifier with a query map, the advisor's embedder)."""
    space = getattr(analyzer, "query_space", None)
    return space is not None and advisor is not None and space == getattr(advisor, "query_space", None)
