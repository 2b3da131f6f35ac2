"""Inference precision: which weights run a batch, for both encoders (red flags and query embedding).

Modes (``ASSISTANT_INFERENCE_MODE``):

- ``fp32``: the weights as trained; the reference every other mode is measured against.
- ``int8``: smoothed int8 (CPU only): each Linear of the encoder layers computes ``(x / s) @ (W * s)`` with
  int8 weights (one scale per output channel) and int8 activations with one scale per token
  (``_TokenInt8Linear``), ``s`` from the largest input seen per channel on calibration rows
  (``Int8Calibration``, written by ``assistant calibrate`` beside the model). Why smoothing: MiniLM's
  activations have a few channels far larger than the rest, so plain dynamic int8 (one scale per tensor)
  crushed the others and cost the fast red-flag model 0.064 of validation mean F1. Why a scale per token:
  a scale per pass made a row's scores depend on its batch, so rows ran one at a time, and it crushed quiet
  tokens beside loud ones, so the FFN down-projection had to stay fp32; per token, rows batch, the
  down-projection is int8 too, and the fast model loses 0.004 of validation mean F1 to fp32 (0.873 vs 0.877; the per-pass
  scheme 0.872) at a quarter to a third less time per utterance than the per-pass scheme (AVX2;
  docs/benchmarks.md, sessions 16, 17 and 20).
- ``bf16``: bfloat16 weights. On CPUs with native bf16 matrix units (AMX / AVX512-BF16) it is the fastest for
  batches (measured on this project's 2-core Xeon, one thread: 1.9 vs 3.3 ms per utterance for the
  classifier at batch 64); on other CPUs it is emulated and slow.
- ``auto`` (default): bf16 on a CPU with native bf16 units; int8 on other CPUs (fp32, with a warning, for an
  encoder that has no int8 calibration); fp32 on a GPU. A process whose kernels are capped below bf16 units
  (``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``) counts as a CPU without them.
  ``ASSISTANT_QUERY_INFERENCE_MODE`` sets the query encoder's mode apart.

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
from typing import List, Literal, Optional, TypeVar, Union  # noqa: UP035 (TorchScript reads these)

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


def resolve(mode: str, device: torch.device) -> Precision:
    """The precision a mode runs at on a device; raises ValueError for a mode the device cannot run.

    ``auto``: bf16 on a CPU with bf16 units, int8 on other CPUs (a loader whose model has no int8 calibration
    runs fp32 instead, and warns), fp32 on a GPU. Until session 20 live retrieval queries stayed fp32 under
    ``auto``, because int8 ran rows one at a time; with a scale per token they batch, and run in ~0.65x fp32's
    time at the same dev MRR (docs/benchmarks.md, session 20).
    """
    if mode not in MODES:
        raise ValueError(f"unknown inference mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "auto":
        if device.type != "cpu":
            return "fp32"
        return "bf16" if cpu_has_native_bf16() else "int8"
    if mode == "int8" and device.type != "cpu":
        raise ValueError("inference mode int8 runs on the CPU only; use fp32 or bf16 on cuda")
    return mode  # type: ignore[return-value]


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
# The Linears that run in int8: every Linear of the encoder layers (attention projections, FFN up- and
# down-projection); heads stay fp32.
_INT8_LINEAR = re.compile(
    r"(^|\.)layer\.\d+\.(attention\.self\.(query|key|value)|(attention\.)?output\.dense|intermediate\.dense)$"
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


class _TokenInt8Linear(torch.nn.Module):
    """A smoothed Linear in int8 whose activations get one scale per token, so rows can share a pass.

    Computes ``x @ W.T + b`` as ``s_t * ((x_t / (c * s_t)) @ (W * c).T) + b``: ``c`` the smoothing scales, ``s_t``
    each token's largest |input| after smoothing, the bracket in int8 (fbgemm's dynamic kernel, int8 weights per
    output channel). fbgemm picks one activation scale per call from the input's range; every token scaled to
    [-1, 1] plus a fixed ``pin`` row holding the range's two ends make that range, and so every token's
    quantisation, the same whatever else is in the pass: this layer gives a row the same output alone or in a
    batch, bit for bit (in a whole model, fp32 noise upstream can still tip a rounding: tests/test_precision.py).
    The pin's ends, 1 and -64/63, make the zero point an exact integer (64 of fbgemm's 0..127), so 0 stays exact.
    Why: one scale per pass made a row's scores depend on its batch, so int8 ran rows one at a time and re-read
    every weight per row; batched, the int8 kernel does 1.5-1.8x the work per second (AVX2, docs/benchmarks.md).
    """

    inv: torch.Tensor
    bias: torch.Tensor | None
    pin: torch.Tensor

    def __init__(self, linear: torch.nn.Linear, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("inv", (1.0 / scale).float())
        smoothed = torch.nn.Linear(linear.in_features, linear.out_features, bias=False)
        with torch.no_grad():
            smoothed.weight.copy_(linear.weight.float() * scale[None, :])
        smoothed.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # type: ignore[assignment]
        self.linear = torch.ao.nn.quantized.dynamic.Linear.from_float(smoothed)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        pin = torch.zeros(1, linear.in_features)
        pin[0, 0], pin[0, 1] = 1.0, -64.0 / 63.0
        self.register_buffer("pin", pin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = (x * self.inv).reshape(-1, x.shape[-1])
        s = rows.abs().amax(1, keepdim=True).clamp_min(1e-12)
        y = self.linear(torch.cat([rows / s, self.pin]))[:-1] * s
        if self.bias is not None:
            y = y + self.bias
        return y.reshape((*x.shape[:-1], y.shape[-1]))


def check_coverage(module: torch.nn.Module, calibration: Int8Calibration) -> list[str]:
    """``module``'s int8 Linears; raises CalibrationError when ``calibration`` lacks one of them.

    A superset is fine: the first layers of a deeper encoder see the same inputs (the 4-layer query encoder).
    A calibration written before session 20 lacks the FFN down-projections, which int8 quantises since.
    """
    names = int8_linear_names(module)
    missing = sorted(set(names) - set(calibration.maxima))
    if missing:
        raise CalibrationError(
            f"the int8 calibration lacks {len(missing)} of the model's {len(names)} int8 Linears, e.g. "
            f"{missing[0]} (another architecture, or written by an older version); write it again with "
            "`assistant calibrate`"
        )
    return names


def smoothed_int8(module: M, calibration: Int8Calibration) -> M:
    """A copy of ``module`` whose calibrated Linears are smoothed and quantised (``_TokenInt8Linear``).

    ``s_j = max|x_j| ** alpha / max|W[:, j]| ** (1 - alpha)`` (SmoothQuant), kept as an explicit multiply:
    BERT is post-LN, so a LayerNorm's output is also the residual and the scales cannot be folded into it.
    Raises CalibrationError when the calibration lacks one of the module's int8 Linears.
    """
    names = check_coverage(module, calibration)
    out = copy.deepcopy(module)
    with warnings.catch_warnings():
        # torch 2.13 deprecates quantized tensor types for a future release; torch is pinned (pyproject), and
        # tests/test_precision.py fails loudly the day the API goes.
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
        for name in names:
            parent_name, _, attr = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            linear = getattr(parent, attr)
            w = linear.weight.detach().float().abs().amax(0).clamp(min=1e-5)
            x = calibration.maxima[name].clamp(min=1e-5)
            scale = (x**calibration.alpha / w ** (1 - calibration.alpha)).clamp(min=1e-2, max=1e2)
            setattr(parent, attr, _TokenInt8Linear(linear, scale))
    return out
