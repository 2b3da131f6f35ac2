"""Inference precision: which weights run a batch, for both encoders (red flags and query embedding).

Modes (``ASSISTANT_INFERENCE_MODE``):

- ``fp32``: the weights as trained; the reference every other mode is measured against.
- ``int8``: dynamic int8 quantisation of the Linear layers (CPU only). Fastest for one or two inputs. Its
  activation scale is computed over the whole batch, so a row's scores would depend on the other rows in the
  batch (up to 0.34 in probability on the shipped classifier): ``rows_per_pass`` makes int8 run rows one at a
  time.
- ``bf16``: bfloat16 weights. On CPUs with native bf16 matrix units (AMX / AVX512-BF16) it is the fastest for
  batches (measured on this project's 2-core Xeon, one thread: 1.9 vs 3.3 ms per utterance for the
  classifier at batch 64); on other CPUs it is emulated and slow.
- ``auto`` (default): bf16 on a CPU with native bf16 units, else fp32; fp32 on a GPU. A process whose
  kernels are capped below bf16 units (``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``) counts as a
  CPU without them.
  Never int8: it cost the written test split up to 0.11 F1 (frustration 0.547 -> 0.436) while bf16 stayed
  within 0.006 of fp32 on every split, for one input it is only ~1.4 ms faster (classifier 6.8 vs 8.2 ms, one
  thread), and its scores depend on the batch (above), which a micro-batching service must not allow.

Each mode's accuracy is measured, not assumed: ``assistant eval redflags --mode`` and
``assistant eval retrieval --mode`` (figures in the README and the model card).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import List, Literal, Optional, TypeVar, Union, cast  # noqa: UP035 (TorchScript reads these)

import torch

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
    """The precision a mode runs at on a device; raises ValueError for a mode the device cannot run."""
    if mode not in MODES:
        raise ValueError(f"unknown inference mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "auto":
        if device.type != "cpu":
            return "fp32"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if mode == "int8" and device.type != "cpu":
        raise ValueError("inference mode int8 runs on the CPU only; use fp32 or bf16 on cuda")
    return mode  # type: ignore[return-value]


def rows_per_pass(precision: str, preferred: int) -> int:
    """How many rows may share one forward pass in ``precision``: 1 for int8, ``preferred`` otherwise.

    Dynamic int8 quantises activations with one scale per pass, so rows batched together would change each
    other's scores; a micro-batching service must give a row the same scores whatever else is in its batch.
    """
    return 1 if precision == "int8" else preferred


def convert(module: M, precision: Precision) -> M:
    """``module`` in ``precision``: fp32 returns it as it is, the others a converted copy of the same class."""
    if precision == "fp32":
        return module
    if precision == "int8":
        # Swaps the Linear submodules of a copy; the top-level class is unchanged.
        return cast(M, torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8))
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


def trace(module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule | None:
    """A frozen TorchScript trace of ``module`` for inference, or None when tracing fails.

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
            return torch.jit.freeze(traced)
    except Exception as e:  # tracing is an optimisation: eager mode stays correct
        log.warning(
            "TorchScript tracing failed; running eager", extra={"error": f"{type(e).__name__}: {e}"[:300]}
        )
        return None
