"""Inference precision: how ``auto`` resolves, and that bf16/int8 score like fp32 on the shipped models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assistant import precision
from assistant.errors import ModelLoadError
from assistant.redflags.classifier import load_classifier
from assistant.settings import load_settings
from assistant.types import Utterance

CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("native_bf16", "device", "expected"),
    [(True, CPU, "bf16"), (False, CPU, "fp32"), (True, GPU, "fp32"), (False, GPU, "fp32")],
)
def test_auto_picks_by_hardware(
    monkeypatch: pytest.MonkeyPatch, native_bf16: bool, device: torch.device, expected: str
) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    assert precision.resolve("auto", device) == expected


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        ({}, True),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}, False),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
        ({"ONEDNN_MAX_CPU_ISA": "ALL"}, True),
        ({"ATEN_CPU_CAPABILITY": "avx2"}, False),
        ({"ATEN_CPU_CAPABILITY": "avx512"}, True),
    ],
)
def test_a_process_capped_below_bf16_units_counts_as_a_cpu_without_them(
    env: dict[str, str], allowed: bool
) -> None:
    assert precision.isa_allows_bf16(env) is allowed


def test_explicit_modes_and_their_errors() -> None:
    assert [precision.resolve(m, CPU) for m in ("fp32", "int8", "bf16")] == ["fp32", "int8", "bf16"]
    assert precision.resolve("bf16", GPU) == "bf16"
    with pytest.raises(ValueError, match="CPU only"):
        precision.resolve("int8", GPU)
    with pytest.raises(ValueError, match="unknown inference mode 'fp16'"):
        precision.resolve("fp16", CPU)


def test_convert_copies_and_keeps_the_class() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    for p in ("int8", "bf16"):
        other = precision.convert(net, p)  # type: ignore[arg-type]
        assert other is not net and isinstance(other, torch.nn.Sequential)
    assert precision.convert(net, "fp32") is net
    assert net[0].weight.dtype == torch.float32  # the original is untouched


UTTERANCES = [
    Utterance("you are a useless idiot get me your manager"),
    Utterance("i want to cancel my account today", ("how can i help",)),
    Utterance("thanks that's all i needed"),
    Utterance("this is the third time i've called and it's still broken", ("hello", "what's the problem")),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "tolerance"),
    # int8 moves some probabilities far more (0.30 on the frustration example, measured), which is why
    # ``auto`` prefers bf16 where the CPU has it; the decisions on these clear cases still agree.
    [("bf16", 0.02), ("int8", 0.5)],
)
def test_reduced_precision_classifier_scores_like_fp32(mode: str, tolerance: float) -> None:
    settings = load_settings()
    ref = load_classifier(settings, mode="fp32")
    other = load_classifier(settings, mode=mode)
    assert other.precision == mode and other.config.thresholds == ref.config.thresholds
    p_ref = ref.probabilities(UTTERANCES).numpy()
    p_other = other.probabilities(UTTERANCES).numpy()
    assert np.abs(p_ref - p_other).max() < tolerance
    assert [r.flagged for r in ref.predict(UTTERANCES)] == [r.flagged for r in other.predict(UTTERANCES)]


@pytest.mark.slow
def test_bf16_query_vectors_match_fp32() -> None:
    from assistant.knowledge.embedder import SentenceEmbedder

    texts = ["i was charged twice on my bill", "get me your manager", "ok"]
    emb = SentenceEmbedder()
    ref = emb.encode(texts)
    emb.set_query_precision("bf16")
    assert emb.query_precision == "bf16"
    vecs = emb.encode(texts)
    assert vecs.dtype == np.float32 and vecs.shape == ref.shape
    assert (np.sum(ref * vecs, axis=1) > 0.99).all()
    with pytest.raises(ModelLoadError, match="unknown inference mode"):
        emb.set_query_precision("fp16")


@pytest.mark.slow
def test_traced_classifier_equals_eager_on_every_shape() -> None:
    """The trace is taken on one small batch; other batch sizes, lengths and contexts must score the same."""
    settings = load_settings(torchscript=True)
    traced = load_classifier(settings)
    eager = load_classifier(settings.model_copy(update={"torchscript": False}))
    assert traced.torchscript and not eager.torchscript
    many = [Utterance(u.text + " now" * k, u.context) for k in range(9) for u in UTTERANCES]
    for batch in (UTTERANCES[:1], UTTERANCES[2:3], UTTERANCES, many, [Utterance("a " * 300)]):
        assert torch.allclose(traced.probabilities(batch), eager.probabilities(batch), atol=1e-6)
    assert [r.flagged for r in traced.predict(many)] == [r.flagged for r in eager.predict(many)]


@pytest.mark.slow
def test_traced_query_encoder_matches_the_sentence_model() -> None:
    from assistant.knowledge.embedder import SentenceEmbedder

    texts = [
        "i was charged twice on my bill",
        "ok",
        "get me your manager " * 40,
        "my internet keeps dropping",
    ]
    ref = SentenceEmbedder().encode(texts)
    emb = SentenceEmbedder()
    emb.set_query_precision("fp32", torchscript=True)
    assert emb._traced is not None
    assert np.allclose(emb.encode(texts), ref, atol=1e-4)
    assert np.allclose(emb.encode(texts[:1]), ref[:1], atol=1e-4)


needs_onednn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available() or not precision.cpu_has_native_bf16(),
    # Without bf16 units oneDNN refuses to pack (it asks for avx_ne_convert or avx512bw/vl/dq) and
    # pack_linears keeps the plain layers, which is its documented fallback.
    reason="prepacked bf16 linears need oneDNN on a CPU with bf16 units",
)


@needs_onednn
def test_packed_linears_compute_what_the_plain_ones_do_and_trace() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4, bias=False))
    packed = precision.convert(net.eval(), "bf16")  # a packed copy; net stays fp32
    plain = net.to(torch.bfloat16)
    assert not isinstance(packed[0], torch.nn.Linear) and not isinstance(packed[2], torch.nn.Linear)
    x = torch.randn(3, 5, 16, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert torch.allclose(packed(x).float(), plain(x).float(), atol=1e-2)
    traced = precision.trace(packed, (x,))
    assert traced is not None
    with torch.inference_mode():
        for shape in ((1, 1, 16), (7, 2, 16)):  # other shapes than the traced one
            y = torch.randn(*shape, dtype=torch.bfloat16)
            assert torch.allclose(traced(y).float(), plain(y).float(), atol=1e-2)


@needs_onednn
def test_pack_leaves_fp32_and_non_linear_modules_alone() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    assert precision.pack_linears(net) == 0 and isinstance(net[0], torch.nn.Linear)
    assert precision.pack_linears(net.to(torch.bfloat16)) == 1 and isinstance(net[1], torch.nn.LayerNorm)


@pytest.mark.slow
@needs_onednn
def test_packed_bf16_classifier_equals_unpacked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packing is an exact rewrite: the shipped classifier scores the same with and without it."""
    settings = load_settings(torchscript=True)
    packed = load_classifier(settings, mode="bf16")
    monkeypatch.setattr(precision, "pack_linears", lambda module: 0)
    plain = load_classifier(settings, mode="bf16")
    many = [Utterance(u.text + " now" * k, u.context) for k in range(5) for u in UTTERANCES]
    assert torch.allclose(packed.probabilities(many), plain.probabilities(many), atol=1e-3)


def test_int8_runs_rows_one_per_pass() -> None:
    # Dynamic int8 scales activations per pass: batching rows would let them change each other's scores.
    assert precision.rows_per_pass("int8", 32) == 1
    assert [precision.rows_per_pass(p, 32) for p in ("fp32", "bf16")] == [32, 32]
