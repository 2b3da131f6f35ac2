"""Inference precision: which weights run a batch, for both encoders (red flags and query embedding).

Modes (``ASSISTANT_INFERENCE_MODE``):

- ``fp32``: the weights as trained; the reference every other mode is measured against.
- ``int8``: smoothed int8 (CPU only): each Linear of the encoder layers but the feed-forward down-projection
  computes ``(x / s) @ (W * s)`` with int8 weights (one scale per output channel) and dynamic int8
  activations, ``s`` from the largest input seen per channel on calibration rows (``Int8Calibration``,
  written by ``assistant calibrate`` beside the model). Why smoothing: MiniLM's activations have a few channels
  far larger than the rest, so plain dynamic int8 (one scale per tensor) crushed the others and cost the fast
  red-flag model 0.064 of validation mean F1; smoothed, 0.006, at half fp32's time per utterance on AVX2
  (docs/benchmarks.md, sessions 16 and 17). The down-projection reads GELU outputs whose outliers no smoothing
  tames, so it stays fp32. The activation scale is computed over a pass, so a row's scores would depend on the
  other rows in its batch: ``rows_per_pass`` makes int8 run rows one at a time.
- ``bf16``: bfloat16 weights. On CPUs with native bf16 matrix units (AMX / AVX512-BF16) it is the fastest for
  batches (measured on this project's 2-core Xeon, one thread: 1.9 vs 3.3 ms per utterance for the
  classifier at batch 64); on other CPUs it is emulated and slow.
- ``auto`` (default): bf16 on a CPU with native bf16 units; on other CPUs int8 for the red-flag classifier
  (fp32, with a warning, for a model that has no int8 calibration) and fp32 for retrieval queries (``resolve``
  says why); fp32 on a GPU. A process whose kernels are capped below bf16 units (``ONEDNN_MAX_CPU_ISA=AVX2``,
  ``ATEN_CPU_CAPABILITY=avx2``) counts as a CPU without them. ``ASSISTANT_QUERY_INFERENCE_MODE`` sets the
  query encoder's mode apart.

Each mode's accuracy is measured, not assumed: ``assistant eval redflags --mode`` and
``assistant eval retrieval --mode`` (figures in the README and the model card).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import List, Literal, Optional, TypeVar, Union, cast  # noqa: UP035 (TorchScript reads these)

import torch

from assistant.settings import INT8_CALIBRATION_FILE

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8", "bf16"]
MODES: tuple[str, ...] = ("auto", "fp32", "int8", "bf16")

M = TypeVar("M", bound=torch.nn.Module)


# oneDNN's ISA names from the oldest to the newest; bf16 matrix instructions start at AVX512_CORE_BF16.
_ONEDNN_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX512_CORE_FP16",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
    "ALL",
)


def isa_allows_bf16(env: Mapping[str, str]) -> bool:
    """False when the process caps its kernels below bf16 units (``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``).

    Why: with ``ONEDNN_MAX_CPU_ISA=AVX2`` oneDNN runs bf16 as slow emulation even on a CPU that has the
    units (one query 7.7 -> 47 ms, measured), so ``auto`` must pick what it picks on an AVX2-only CPU. The
    same variables are how a bigger CPU emulates a smaller one for capacity measurements (README).
    """
    onednn = env.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if onednn in _ONEDNN_ISAS and _ONEDNN_ISAS.index(onednn) < _ONEDNN_ISAS.index("AVX512_CORE_BF16"):
        return False
    aten = env.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    return aten not in ("default", "avx2", "zvector", "vsx")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises bf16 matrix instructions (Linux ``/proc/cpuinfo`` flags) and the process
    may use them (``isa_allows_bf16``)."""
    if not isa_allows_bf16(os.environ):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"amx_bf16", "avx512_bf16"})
    return False


def resolve(mode: str, device: torch.device, *, queries: bool = False) -> Precision:
    """The precision a mode runs at on a device; raises ValueError for a mode the device cannot run.

    ``auto`` on a CPU without bf16 units: int8 for the red-flag classifier (a loader whose model has no int8
    calibration runs fp32 instead, and warns), fp32 for live retrieval ``queries``. Why not int8 for queries:
    int8 runs rows one at a time, and the query encoder forms the larger batches (it waits behind red flags),
    where fp32's batched passes are cheaper: AVX2, saturation 349-374 chunks/s with int8 queries against
    425-437 with fp32 ones, for a 500-call p95 no better (72-177 vs 105-156 ms). The classifier gains: 3.6
    instead of 4.9 ms of CPU per red-flag pass in the service (docs/benchmarks.md, session 17).
    """
    if mode not in MODES:
        raise ValueError(f"unknown inference mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "auto":
        if device.type != "cpu":
            return "fp32"
        if cpu_has_native_bf16():
            return "bf16"
        return "fp32" if queries else "int8"
    if mode == "int8" and device.type != "cpu":
        raise ValueError("inference mode int8 runs on the CPU only; use fp32 or bf16 on cuda")
    return mode  # type: ignore[return-value]


def rows_per_pass(precision: str, preferred: int) -> int:
    """How many rows may share one forward pass in ``precision``: 1 for int8, ``preferred`` otherwise.

    Dynamic int8 quantises activations with one scale per pass, so rows batched together would change each
    other's scores; a micro-batching service must give a row the same scores whatever else is in its batch.
    """
    return 1 if precision == "int8" else preferred


def convert(module: M, precision: Precision, calibration: Int8Calibration | None = None) -> M:
    """``module`` in ``precision``: fp32 returns it as it is, the others a converted copy of the same class.

    int8 needs the module's ``calibration`` (measured on the same weights, see ``measure_int8_calibration``).
    """
    if precision == "fp32":
        return module
    if precision == "int8":
        if calibration is None:
            raise ValueError("int8 needs the model's int8 calibration; write it with `assistant calibrate`")
        return smoothed_int8(module, calibration)
    converted = copy.deepcopy(module).to(torch.bfloat16)
    if all(p.device.type == "cpu" for p in converted.parameters()):
        pack_linears(converted)
    return converted


class _PackedLinear(torch.nn.Module):
    """``nn.Linear`` with its weight reordered once into oneDNN's blocked layout.

    Why: a plain bf16 ``addmm`` reorders the weight on every call, which for the few rows of a live batch
    costs more than the product itself (one 384x1536 layer, one 15-token input: 97 -> 45 us). Over the
    MiniLM encoder: one query 5.1 -> 3.6 ms, four 9.4 -> 6.7 ms, 32 52 -> 46 ms, identical outputs.
    Scripted (not traced) because the tracer cannot record the op's empty ``Scalar?[]`` argument; a traced
    parent graph inlines it all the same.
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = torch.jit.annotate(List[Optional[Union[int, float, complex]]], [])  # noqa: UP006, UP007, UP045
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", scalars, "")


def _packed(linear: torch.nn.Linear) -> torch.nn.Module | None:
    """The packed twin of a bf16 CPU ``linear`` when it computes the same outputs, else None."""
    try:
        twin = torch.jit.script(_PackedLinear(linear))
        x = torch.randn(2, 3, linear.in_features, dtype=torch.bfloat16)
        with torch.inference_mode():
            same = torch.allclose(twin(x).float(), linear(x).float(), atol=1e-2, rtol=1e-2)
        return twin if same else None
    except Exception as e:  # an older oneDNN, another CPU architecture: the plain layer stays
        log.debug("linear not packed", extra={"error": f"{type(e).__name__}: {e}"[:200]})
        return None


def pack_linears(module: torch.nn.Module) -> int:
    """Swap every bf16 ``nn.Linear`` of a CPU inference module for its prepacked twin; returns how many.

    Only for inference: the packed weight is opaque (no autograd, no ``state_dict`` round trip). A layer
    whose twin does not compute the same outputs keeps its plain form.
    """
    if not torch.backends.mkldnn.is_available():
        return 0
    swapped = 0
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear) and child.weight.dtype == torch.bfloat16:
            twin = _packed(child)
            if twin is not None:
                setattr(module, name, twin)
                swapped += 1
        else:
            swapped += pack_linears(child)
    return swapped


def trace(
    module: torch.nn.Module, example: tuple[torch.Tensor, ...], *, freeze: bool = True
) -> torch.jit.ScriptModule | None:
    """A frozen TorchScript trace of ``module`` for inference, or None when tracing fails.

    ``freeze=False`` keeps it unfrozen, so that a scripted module can hold it (and be frozen with it).

    Why: an eager forward runs ~1,000 small Python steps per batch, each holding the GIL, and the service's
    event loop waited on them (the loop thread was at 100% CPU, much of it GIL waits, while the machine was
    18% idle). A traced graph runs in C++ and releases the GIL; it also halves one input's latency
    (classifier, bf16, one thread: 5.7 -> 3.7 ms). ``module`` must return tensors or tuples of tensors, and
    have no shape-dependent Python branches that ``example`` would not cover (tests compare the two).
    """
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # TracerWarnings about constants we checked by hand
            traced = torch.jit.trace(module.eval(), example, check_trace=False)
            return torch.jit.freeze(traced) if freeze else traced
    except Exception as e:  # tracing is an optimisation: eager mode stays correct
        log.warning(
            "TorchScript tracing failed; running eager", extra={"error": f"{type(e).__name__}: {e}"[:300]}
        )
        return None


# ---- int8 --------------------------------------------------------------------------------------------------

CALIBRATION_FILE = INT8_CALIBRATION_FILE
# Smoothing strength: 0.4 was the best of 0.25 / 0.4 / 0.5 on the fast model's validation (docs/benchmarks.md).
SMOOTHING_ALPHA = 0.4
# The Linears that run in int8: attention projections and the FFN's up-projection of every encoder layer. The
# FFN's down-projection (``layer.N.output.dense``, after GELU) and every head stay fp32 (see the module doc).
_INT8_LINEAR = re.compile(
    r"(^|\.)layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense)$"
)


class CalibrationError(ValueError):
    """An int8 calibration file is missing, unreadable or measured on other weights."""


@dataclass(frozen=True)
class Int8Calibration:
    """Per int8 Linear (by module name), the largest |input| seen per input channel on calibration rows.

    Saved beside a model (``CALIBRATION_FILE``) so that serving needs no training data; ``weights`` is the
    digest of the weights it was measured on, so a retrained model cannot run with stale scales.
    """

    maxima: dict[str, torch.Tensor]
    weights: str
    rows: int
    alpha: float = SMOOTHING_ALPHA

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        meta = {"weights_sha256": self.weights, "rows": str(self.rows), "alpha": str(self.alpha)}
        save_file({k: v.float().contiguous() for k, v in self.maxima.items()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Path, *, weights: str) -> Int8Calibration:
        """Read ``path``; raises CalibrationError when it is missing, unreadable or of other ``weights``."""
        from safetensors import safe_open

        fix = 'write it with `assistant calibrate` (docs: README, "Inference precision")'
        if not path.exists():
            raise CalibrationError(f"no int8 calibration at {path}; {fix}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                maxima = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
            calibration = cls(maxima, meta["weights_sha256"], int(meta["rows"]), float(meta["alpha"]))
        except Exception as e:  # safetensors raises its own types; all mean the file is unusable
            raise CalibrationError(f"{path} is not a readable int8 calibration ({e}); {fix}") from e
        if calibration.weights != weights:
            raise CalibrationError(f"{path} was measured on other weights than the ones loaded; {fix}")
        return calibration


def int8_linear_names(module: torch.nn.Module) -> list[str]:
    """The Linears of ``module`` that int8 quantises (see ``_INT8_LINEAR``)."""
    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear) and _INT8_LINEAR.search(name)
    ]


def measure_int8_calibration(
    module: torch.nn.Module, run: Callable[[], int], *, weights: str
) -> Int8Calibration:
    """The input maxima of ``module``'s int8 Linears while ``run()`` passes calibration rows through it (fp32).

    ``run`` returns how many rows it passed. Raises ValueError when the module has no Linear to quantise.
    """
    names = int8_linear_names(module)
    if not names:
        raise ValueError(f"{type(module).__name__} has no encoder-layer Linear to quantise")
    maxima: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def record(_m: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inputs[0].detach().float().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x

        return record

    handles = [module.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        rows = run()
    finally:
        for h in handles:
            h.remove()
    missing = sorted(set(names) - set(maxima))
    if missing:
        raise ValueError(f"calibration rows never reached {missing[:3]}")
    return Int8Calibration(maxima, weights, rows)


class _Smoothed(torch.nn.Module):
    """``x / s`` into a Linear whose input columns were multiplied by ``s``: the same product, tamer inputs."""

    inv: torch.Tensor

    def __init__(self, linear: torch.nn.Linear, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("inv", (1.0 / scale).float())
        self.linear = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(linear.weight.float() * scale[None, :])
            if linear.bias is not None:
                self.linear.bias.copy_(linear.bias.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv)


def smoothed_int8(module: M, calibration: Int8Calibration) -> M:
    """A copy of ``module`` whose calibrated Linears are smoothed and quantised (int8 weights per channel).

    ``s_j = max|x_j| ** alpha / max|W[:, j]| ** (1 - alpha)`` (SmoothQuant), kept as an explicit multiply:
    BERT is post-LN, so a LayerNorm's output is also the residual and the scales cannot be folded into it.
    Raises CalibrationError when the calibration lacks one of the module's int8 Linears.
    """
    names = int8_linear_names(module)
    # A superset is fine: the first layers of a deeper encoder see the same inputs (the 4-layer query encoder).
    missing = sorted(set(names) - set(calibration.maxima))
    if missing:
        raise CalibrationError(
            f"the int8 calibration is of another architecture: it lacks {len(missing)} of the model's "
            f"{len(names)} int8 Linears, e.g. {missing[0]}"
        )
    out = copy.deepcopy(module)
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        linear = getattr(parent, attr)
        w = linear.weight.detach().float().abs().amax(0).clamp(min=1e-5)
        x = calibration.maxima[name].clamp(min=1e-5)
        scale = (x**calibration.alpha / w ** (1 - calibration.alpha)).clamp(min=1e-2, max=1e2)
        setattr(parent, attr, _Smoothed(linear, scale))
    spec = {f"{n}.linear": torch.ao.quantization.per_channel_dynamic_qconfig for n in names}
    with warnings.catch_warnings():
        # torch 2.13 deprecates quantized tensor types for a future release; torch is pinned (pyproject), and
        # tests/test_precision.py fails loudly the day the API goes.
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
        return cast(M, torch.ao.quantization.quantize_dynamic(out, spec, dtype=torch.qint8))
