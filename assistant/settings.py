"""One typed settings object, read from ``ASSISTANT_*`` environment variables.

No variable is needed for the embedded default (SQLite under ``var/``, in-process bus, shipped models).
A bad value fails at start-up with a message that names the variable.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigurationError

# The repository root: code lives in assistant/, models/ and knowledge_base/ sit beside it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


FULL_REDFLAG_MODEL = "redflags"
FAST_REDFLAG_MODEL = "redflags-fast"  # models/redflags-fast/MODEL_CARD.md
BASE_ENCODER_LAYERS = 6  # all-MiniLM-L6-v2
FAST_QUERY_ENCODER_LAYERS = 4  # the retrieval encoder's layers where the fast red-flag model runs
RETRIEVAL_MODEL_DIR = (
    "retrieval"  # models/retrieval: what the retrieval encoder ships beside the base weights
)
INT8_CALIBRATION_FILE = "int8_calibration.safetensors"  # beside a model's weights (assistant.precision)


class Settings(BaseSettings):
    """All configuration of the service, the CLI and the evaluators.

    Example:
        >>> Settings(port=9000).port
        9000
    """

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", extra="ignore", frozen=True)

    # Paths
    data_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "datasets", description="public data sets"
    )
    models_dir: Path = PROJECT_ROOT / "models"
    knowledge_dir: Path = PROJECT_ROOT / "knowledge_base"
    extra_knowledge_dirs: list[Path] = Field(default_factory=list, description="imported SOP packs")
    var_dir: Path = PROJECT_ROOT / "var"
    index_dir: Path | None = None  # default: var_dir / "index"

    # Models
    # auto: the full model (models/redflags) on a GPU or a CPU with bf16 units, the fast one (models/redflags-fast:
    # 3 layers distilled from it, half the compute) on CPUs without them; or a folder under models_dir, or a path.
    redflag_model: str = "auto"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    # Layers of the retrieval encoder (queries and passages alike; the index is rebuilt when it changes). 0, auto:
    # all six on a GPU or a CPU with bf16 units, the first four elsewhere (2/3 of the compute per customer turn;
    # retrieval dev MRR 0.961 -> 0.952, docs/benchmarks.md, session 12).
    query_encoder_layers: int = Field(
        default=0, ge=0, le=BASE_ENCODER_LAYERS, description="0: auto (6 with bf16 units or a GPU, else 4)"
    )
    # The red-flag classifier's mode. auto: bf16 on a CPU with bf16 units (AMX / AVX512-BF16), else smoothed int8
    # (fp32 for a model without an int8 calibration); fp32 on a GPU (precision.py).
    inference_mode: Literal["auto", "fp32", "int8", "bf16"] = "auto"
    # The retrieval query encoder's mode; auto: as the classifier's (int8 needs models/retrieval's calibration).
    query_inference_mode: Literal["auto", "fp32", "int8", "bf16"] = "auto"
    # A customer chunk's retrieval query vector from its red-flag pass (assistant.redflags.querymap): one encoder
    # pass per chunk instead of two. auto: where the red-flag model has a query map fitted for the retrieval
    # encoder the service runs; on: the same, and refuse to start without one; off: queries get their own pass.
    shared_query_pass: Literal["auto", "on", "off"] = "auto"
    # Threads per model pass. The service runs two model workers side by side (red flags, query encoder):
    # one thread each fills two cores without the oversubscription that made latency 40x worse when tested.
    torch_threads: int = Field(default=1, ge=0, description="0: torch's default (all cores)")
    # Run both encoders as TorchScript traces (precision.trace): no GIL held during a forward pass.
    torchscript: bool = True
    # glibc malloc arenas for `assistant serve` (runtime.py): fewer arenas, less memory kept per thread.
    malloc_arena_max: int = Field(default=2, ge=0, description="0: glibc's default")
    # oneDNN kernels cached per input shape for `assistant serve` (runtime.py); 0: oneDNN's default (1,024).
    onednn_cache_capacity: int = Field(default=1024, ge=0)
    # bf16 on a CPU: run each group of a batch in a shape whose rows x tokens is one of 64 sizes
    # (padding.bucketed_shape), so oneDNN builds ~100 kernels instead of one per batch shape. 1,000 calls:
    # RSS 1.67 -> 1.12 GB, red flags p95 255-261 -> 132-172 ms; one call alone no slower (docs/benchmarks.md,
    # session 26).
    bf16_row_buckets: bool = True
    # How long a Python thread may hold the GIL while another waits for it, in `assistant serve` (runtime.py).
    # Python's 5 ms by default. 1 ms lowered p95 at 300 calls on an AVX2-only Zen 3 (3 of 4 pairs) but raised it
    # past capacity (500 calls: 2.96 vs 1.84 s, +4% CPU per chunk), and is unmeasured on bf16 CPUs
    # (docs/benchmarks.md, session 21).
    gil_switch_interval_ms: float = Field(default=5.0, gt=0, le=100)
    # Allocations (net of frees) between two young garbage collections in `assistant serve` (runtime.py); Python's
    # default is 700. At 700 the objects of chunks in flight outlive two young collections, reach the old
    # generation and make it grow a quarter every few seconds: a full collection then stalled the loop for
    # 200-400 ms each time (every 6 s at 600 calls), p99 55 -> 255 ms over five minutes. At 10,000: one full
    # collection in those five minutes, p99 59-69 ms throughout (docs/benchmarks.md, session 24).
    gc_gen0_threshold: int = Field(default=10_000, ge=100, le=1_000_000)

    # Service
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    database_url: str = ""  # default: sqlite+aiosqlite under var_dir
    redis_url: str = ""  # empty: in-process event bus
    auth_secret: str = ""  # empty: no authentication
    alert_webhook_url: str = ""
    max_chunk_chars: int = Field(default=4000, ge=16)
    batch_max_size: int = Field(default=64, ge=1)
    batch_max_wait_ms: float = Field(default=5.0, ge=0)
    # The store is written behind the hot path; waiting this long groups many chunks into one transaction.
    # 100 ms: at 500 calls a batch holds ~25 chunks and the writer thread used 4% of a core (20 ms: 9%);
    # reads that need the latest rows flush first, so only a crash can lose (at most) this window.
    store_linger_ms: float = Field(default=100.0, ge=0)
    context_turns: int = Field(default=3, ge=0)

    # Knowledge base and next-step retrieval
    kb_packs_dir: Path | None = None  # default: var_dir / "kb_packs"; imported SOP packs, one folder each
    kb_refresh_s: float = Field(
        default=2.0, ge=0, description="how often new calls look for changed SOP files"
    )
    kb_auto_rebuild: bool = True  # rebuild a stale index on load instead of refusing it
    kb_min_score: float = Field(
        default=0.35, ge=0.0, le=1.0, description="below this, no procedure is suggested"
    )
    kb_switch_margin: float = Field(default=0.08, ge=0.0, description="hysteresis margin to switch procedure")
    # How an agent turn marks a step done: "lexical" (its words against the step scripts, no encoder pass)
    # or "embedding" (its query vector against the step passages; one encoder pass per agent turn).
    kb_step_tracking: Literal["lexical", "embedding"] = "lexical"
    kb_script_threshold: float = Field(
        default=0.6, gt=0.0, le=1.0, description="lexical step tracking: share of a script's words said"
    )

    # Streaming service: calls, severity, alerts
    use_fake_models: bool = (
        False  # keyword analyzer + rule advisor instead of the shipped models (demos, tests)
    )
    fake_model_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="with fake models: simulated model time per utterance (bench)",
    )
    reorder_window: int = Field(
        default=32, ge=1, description="out-of-order chunks held per call before a gap"
    )
    reorder_timeout_ms: float = Field(default=1500.0, ge=0, description="wait for a missing seq before a gap")
    drain_timeout_s: float = Field(
        default=20.0, gt=0, description="SIGTERM: how long a worker may take to hand its live calls over"
    )
    call_idle_timeout_s: float = Field(default=300.0, gt=0, description="a detached call ends after this")
    # Admission: past its capacity a worker cannot keep even red flags in time for any call (they are never
    # skipped, so they fall behind for all); refusing the call beyond it lets the balancer place it elsewhere.
    max_live_calls: int = Field(
        default=0,
        ge=0,
        description="live calls this worker takes; a new call beyond them is refused (close 1013, error "
        "worker_full) and the source connects to another worker; 0: no limit (README, capacity per CPU class)",
    )
    refuse_calls_when_behind: bool = Field(
        default=True,
        description="while red flags run late (results later than ASSISTANT_FLAGS_LATE_MS, until "
        "ASSISTANT_DEGRADED_RECOVER_S without one) a new call is refused like a full worker: the calls held keep "
        "the cores (README, capacity per CPU class)",
    )
    event_history: int = Field(default=2000, ge=10, description="events kept per call for sidebar replay")
    severity_half_life_s: float = Field(default=60.0, gt=0, description="call-severity time decay")
    severity_turn_decay: float = Field(default=0.75, gt=0, le=1, description="call-severity decay per turn")
    alert_level: Literal["medium", "high", "critical"] = "high"  # call severity level that alerts
    alert_webhook_timeout_s: float = Field(default=5.0, gt=0)
    alert_webhook_retries: int = Field(default=3, ge=0)
    advisor_threads: int = Field(default=4, ge=1)
    token_ttl_s: int = Field(
        default=12 * 3600, ge=60, description="lifetime of tokens from `assistant token`"
    )

    # Security and limits (issue 17)
    # Browser pages that may open the WebSockets: exact origins such as https://desk.example.com. Empty: the
    # service's own origin only (the Host header). Clients that send no Origin (ASR bridges, CLIs) are let in.
    allowed_origins: list[str] = Field(default_factory=list)
    # Teams of agents, for supervisors' access: {"agent-7": ["billing"], ...} (JSON in the variable). A
    # supervisor reads the calls of agents in the teams of their token (`token issue --team`). Empty: teams are
    # not used and every supervisor reads every call.
    agent_teams: dict[str, list[str]] = Field(default_factory=dict)
    max_seq_jump: int = Field(
        default=100_000, ge=1, description="a chunk's seq may be at most this far ahead of the next expected"
    )
    max_frame_bytes: int = Field(default=65_536, ge=1024, description="largest inbound WebSocket frame")
    # Off: browsers offer permessage-deflate on every socket, and compressing each small event cost the worker
    # 3-5% more CPU per chunk at 500 calls and 9% of its saturation throughput (docs/benchmarks.md, session 24),
    # to save bandwidth of about a kilobyte a second per call.
    ws_compression: bool = Field(
        default=False, description="accept permessage-deflate on WebSockets when a client offers it"
    )
    max_json_depth: int = Field(default=16, ge=2, description="deepest nesting of an inbound JSON frame")
    max_request_bytes: int = Field(default=262_144, ge=1024, description="largest HTTP request body")
    max_context_items: int = Field(default=20, ge=0, description="context turns POST /v1/analyze accepts")
    # Store ops held in memory while the database refuses writes; written when it is back (writer.py).
    store_buffer_max: int = Field(default=200_000, ge=100)
    store_retry_s: float = Field(default=1.0, gt=0, description="wait between writes to a failing store")

    # Call guidance: the policy files (validated at start-up) and how incident records name customers
    call_stages_file: Path = PROJECT_ROOT / "knowledge_base" / "policies" / "call-stages.yaml"
    abuse_protocol_file: Path = PROJECT_ROOT / "knowledge_base" / "policies" / "abuse-protocol.yaml"
    incident_customer_name: Literal["initials", "full", "withheld"] = "initials"

    # Serving speed
    embed_batching: bool = True  # batch the advisor's per-chunk query encoding across calls (MicroBatcher)

    # Overload (issue 14, docs/protocol.md "Overload"): red flags are never skipped; suggestions and step
    # tracking are, by priority, and counted in assistant_shed_total.
    suggestion_max_age_ms: float = Field(
        default=1000.0,
        gt=0,
        description="a customer turn's suggestion not started this long after arrival is skipped",
    )
    redflag_workers: int = Field(
        default=2, ge=1, description="red-flag model threads; 2 lets red flags use both cores under overload"
    )
    # 4: a burst of red flags gets the second core at once (emulated AVX2, 500 calls: red flags p95 ~250 -> ~100-150
    # ms; docs/benchmarks.md, session 12); a light load rarely queues four, so it keeps its larger batches.
    redflag_helper_backlog: int = Field(
        default=4,
        ge=1,
        description="red-flag items waiting behind a pass before the second thread runs one too",
    )
    advice_queue_max: int = Field(
        default=8, ge=1, description="turns of one call waiting for advice, at most"
    )
    query_queue_max: int = Field(
        default=512, ge=1, description="query-encoder items queued across calls, at most (more are skipped)"
    )
    query_yield_backlog: int | None = Field(
        default=None,
        ge=1,
        description="the query encoder runs no pass while this many red-flag items wait (red flags first); "
        "unset: a full red-flag batch (batch_max_size)",
    )
    flags_late_ms: float = Field(
        default=1000.0, gt=0, description="a red-flag result later than this counts red flags as behind"
    )
    degraded_recover_s: float = Field(
        default=5.0, gt=0, description="a feature counts as recovered after this long without falling behind"
    )

    @field_validator("auth_secret")
    @classmethod
    def _check_secret(cls, v: str) -> str:
        from assistant.auth import MIN_SECRET_BYTES

        if v and len(v.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(
                f"must be empty (no authentication) or at least {MIN_SECRET_BYTES} bytes; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return v

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str) -> str:
        if v and "://" not in v:
            raise ValueError("expected a SQLAlchemy URL such as postgresql+asyncpg://user:pw@host/db")
        return v

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / 'assistant.db').as_posix()}"

    def resolved_index_dir(self) -> Path:
        return self.index_dir if self.index_dir is not None else self.var_dir / "index"

    def resolved_kb_packs_dir(self) -> Path:
        return self.kb_packs_dir if self.kb_packs_dir is not None else self.var_dir / "kb_packs"

    def redflag_model_path(self) -> Path:
        """The red-flag model folder the service loads (``redflag_model``, with ``auto`` resolved)."""
        name = self.redflag_model
        if name == "auto":
            name = FULL_REDFLAG_MODEL if self._full_model_affordable() else FAST_REDFLAG_MODEL
            if not (self.models_dir / name).exists() and (self.models_dir / FULL_REDFLAG_MODEL).exists():
                logging.getLogger(__name__).warning(
                    "the fast red-flag model is missing; loading the full one",
                    extra={"missing": str(self.models_dir / name)},
                )
                name = FULL_REDFLAG_MODEL
        p = Path(name)
        return p if p.is_absolute() else self.models_dir / p

    def retrieval_int8_calibration_path(self) -> Path:
        """The retrieval encoder's int8 calibration (``assistant calibrate retrieval`` writes it)."""
        return self.models_dir / RETRIEVAL_MODEL_DIR / INT8_CALIBRATION_FILE

    def retrieval_encoder_layers(self) -> int:
        """The retrieval encoder's layers (``query_encoder_layers``, with 0 = auto resolved)."""
        if self.query_encoder_layers:
            return self.query_encoder_layers
        return BASE_ENCODER_LAYERS if self._full_model_affordable() else FAST_QUERY_ENCODER_LAYERS

    def _full_model_affordable(self) -> bool:
        """A GPU, or a CPU with bf16 units: the full model's cost fits there (README, "Capacity per CPU class")."""
        from assistant import precision  # torch: only where a model is about to load

        if self.device in ("cuda", "auto"):
            import torch

            if torch.cuda.is_available():
                return True
        return precision.cpu_has_native_bf16()


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise ConfigurationError naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        problems = "; ".join(
            f"ASSISTANT_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in e.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from e


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
