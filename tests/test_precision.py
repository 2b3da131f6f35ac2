"""Inference precision: how ``auto`` resolves, and that bf16/int8 score like fp32 on the shipped models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from assistant import precision
from assistant.errors import ModelLoadError
from assistant.labels import LABELS
from assistant.redflags.classifier import load_classifier
from assistant.settings import load_settings
from assistant.types import Utterance

CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("native_bf16", "device", "expected"),
    [(True, CPU, "bf16"), (False, CPU, "int8"), (True, GPU, "fp32"), (False, GPU, "fp32")],
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
    other = precision.convert(net, "bf16")
    assert other is not net and isinstance(other, torch.nn.Sequential)
    assert precision.convert(net, "fp32") is net
    assert net[0].weight.dtype == torch.float32  # the original is untouched
    with pytest.raises(ValueError, match="assistant calibrate"):
        precision.convert(net, "int8")  # int8 without a calibration


def _tiny_bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    return BertModel(cfg).eval()


def _calibrate(bert: torch.nn.Module, ids: torch.Tensor) -> precision.Int8Calibration:
    def run() -> int:
        with torch.inference_mode():
            bert(input_ids=ids)
        return len(ids)

    return precision.measure_int8_calibration(bert, run, weights="w")


def test_smoothed_int8_quantises_every_encoder_linear_and_scores_like_fp32() -> None:
    bert = _tiny_bert()
    ids = torch.randint(0, 50, (8, 12))
    calibration = _calibrate(bert, ids)
    assert calibration.rows == 8 and len(calibration.maxima) == 2 * 6  # q, k, v, attention out, FFN up, down
    assert all(v.shape in {(32,), (64,)} for v in calibration.maxima.values())
    int8 = precision.convert(bert, "int8", calibration)
    layer = int8.encoder.layer[0]
    for m in (layer.attention.self.query, layer.attention.output.dense, layer.output.dense):
        assert m.linear.__module__.startswith("torch.ao.nn.quantized")  # the int8 kernel
    assert type(int8.pooler.dense) is torch.nn.Linear  # outside the encoder layers: fp32
    with torch.inference_mode():
        ref, out = bert(input_ids=ids).last_hidden_state, int8(input_ids=ids).last_hidden_state
    cos = torch.nn.functional.cosine_similarity(ref, out, dim=-1)
    assert float(cos.min()) > 0.98, cos.min()
    assert type(bert.encoder.layer[0].attention.self.query) is torch.nn.Linear  # the original is untouched


def test_int8_calibrations_round_trip_and_refuse_other_weights(tmp_path: Path) -> None:
    bert = _tiny_bert()
    calibration = _calibrate(bert, torch.randint(0, 50, (4, 6)))
    file = tmp_path / precision.CALIBRATION_FILE
    calibration.save(file)
    again = precision.Int8Calibration.load(file, weights="w")
    assert (again.rows, again.alpha, again.weights) == (4, calibration.alpha, "w")
    assert all(torch.equal(again.maxima[k], v) for k, v in calibration.maxima.items())
    with pytest.raises(precision.CalibrationError, match="other weights"):
        precision.Int8Calibration.load(file, weights="retrained")
    with pytest.raises(precision.CalibrationError, match="no int8 calibration"):
        precision.Int8Calibration.load(tmp_path / "missing.safetensors", weights="w")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(precision.CalibrationError, match="not a readable"):
        precision.Int8Calibration.load(tmp_path / "bad.safetensors", weights="w")


def test_a_calibration_must_cover_every_int8_linear_but_may_cover_more() -> None:
    bert = _tiny_bert()
    calibration = _calibrate(bert, torch.randint(0, 50, (4, 6)))
    fewer = dict(list(calibration.maxima.items())[:-1])
    with pytest.raises(precision.CalibrationError, match="lacks 1"):
        precision.smoothed_int8(bert, precision.Int8Calibration(fewer, "w", 4))
    bert.encoder.layer = bert.encoder.layer[:1]  # a shallower encoder: the first layer's scales still apply
    assert precision.smoothed_int8(bert, calibration) is not bert


UTTERANCES = [
    Utterance("you are a useless idiot get me your manager"),
    Utterance("i want to cancel my account today", ("how can i help",)),
    Utterance("thanks that's all i needed"),
    Utterance("this is the third time i've called and it's still broken", ("hello", "what's the problem")),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "tolerance"),
    # Smoothed int8 moved these by at most 0.002 (full model) and 0.008 (fast), measured; plain dynamic int8
    # had moved the frustration example by 0.30.
    [("bf16", 0.02), ("int8", 0.05)],
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
    assert traced._groups is not None  # the group loop runs inside TorchScript (classifier._Groups)
    many = [Utterance(u.text + " now" * k, u.context) for k in range(9) for u in UTTERANCES]
    for batch in (UTTERANCES[:1], UTTERANCES[2:3], UTTERANCES, many, [Utterance("a " * 300)]):
        assert torch.allclose(traced.probabilities(batch), eager.probabilities(batch), atol=1e-6)
    assert [r.flagged for r in traced.predict(many)] == [r.flagged for r in eager.predict(many)]
    python_loop = load_classifier(settings)
    python_loop._groups = None  # what runs where scripting the loop fails
    assert torch.allclose(python_loop.probabilities(many), traced.probabilities(many), atol=1e-6)


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
    assert emb._traced is not None and emb._groups is not None  # the group loop runs in TorchScript
    assert np.allclose(emb.encode(texts), ref, atol=1e-4)
    assert np.allclose(emb.encode(texts[:1]), ref[:1], atol=1e-4)
    emb._groups = None  # the Python loop, where scripting it fails
    assert np.allclose(emb.encode(texts), ref, atol=1e-4)


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
@pytest.mark.slow
def test_bucketed_query_groups_build_few_kernels_for_many_batch_shapes(tmp_path: Path) -> None:
    """oneDNN builds and caches a kernel per product shape (4 ms and ~0.55 MB each); with row buckets 120 batch
    shapes reuse a few. Counted by oneDNN itself (ONEDNN_VERBOSE) in fresh processes, the real query encoder."""
    script = tmp_path / "shapes.py"
    script.write_text(
        "import random, sys\n"
        "from assistant.knowledge.embedder import SentenceEmbedder\n"
        "e = SentenceEmbedder(layers=4)\n"
        "e.warm_up()\n"
        "e.set_query_precision('bf16', torchscript=True, row_buckets=sys.argv[1] == 'on')\n"
        "print('BUCKETS', e.row_buckets, flush=True)\n"
        "rng = random.Random(0)\n"
        "for n in range(120):\n"
        "    e.encode([' '.join(['refund'] * rng.randint(1, 40)) for _ in range(rng.randint(1, 12))])\n"
    )
    env = {**os.environ, "ONEDNN_VERBOSE": "profile_create"}

    def built(setting: str) -> int:
        run = [sys.executable, str(script), setting]
        out = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
        assert f"BUCKETS {setting == 'on'}" in out
        return sum("create:cache_miss" in line and "inner_product" in line for line in out.splitlines())

    on, off = built("on"), built("off")
    assert 0 < on < off / 3, (on, off)


@pytest.mark.slow
@pytest.mark.parametrize("torchscript", [False, True])
def test_the_row_bucket_setting_reaches_the_classifier_and_scores_stay(torchscript: bool) -> None:
    plain = load_classifier(load_settings(torchscript=torchscript, bf16_row_buckets=False), mode="bf16")
    bucketed = load_classifier(load_settings(torchscript=torchscript, bf16_row_buckets=True), mode="bf16")
    assert bucketed.row_buckets and not plain.row_buckets and bucketed.torchscript == torchscript
    assert not load_classifier(load_settings(bf16_row_buckets=True), mode="fp32").row_buckets  # bf16 only
    many = [Utterance(u.text + " now" * k, u.context) for k in range(3) for u in UTTERANCES]
    probs, contrib, _, batch = bucketed._forward(many)
    assert torch.allclose(probs, plain.probabilities(many), atol=2e-2)
    assert contrib.shape == (len(many), len(LABELS), batch.input_ids.size(1))  # padded tokens cut off again
    for one in many[:3]:  # alone, a row runs with masked tokens added up to its bucket
        assert torch.allclose(bucketed.probabilities([one]), plain.probabilities([one]), atol=2e-2)


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
    monkeypatch.setattr(precision, "pack_linears", lambda module, **_: 0)
    plain = load_classifier(settings, mode="bf16")
    many = [Utterance(u.text + " now" * k, u.context) for k in range(5) for u in UTTERANCES]
    assert torch.allclose(packed.probabilities(many), plain.probabilities(many), atol=1e-3)


def test_int8_tokens_are_quantised_alone_so_a_row_scores_the_same_in_any_batch() -> None:
    # One int8 activation scale per pass would let a loud row change a quiet row's quantisation.
    bert = _tiny_bert()
    calibration = _calibrate(bert, torch.randint(0, 50, (8, 12)))
    linear = precision.smoothed_int8(bert, calibration).encoder.layer[0].intermediate.dense
    quiet = torch.randn(1, 5, 32) * 0.01
    loud = torch.randn(3, 5, 32) * 100.0
    with torch.inference_mode():
        alone = linear(quiet)
        batched = linear(torch.cat([loud, quiet, -loud]))[3:4]
        ref = torch.nn.functional.linear(
            quiet,
            bert.encoder.layer[0].intermediate.dense.weight,
            bert.encoder.layer[0].intermediate.dense.bias,
        )
    assert torch.equal(alone, batched)
    assert float((alone - ref).norm() / ref.norm()) < 0.05  # and the quiet row keeps its own precision


def test_int8_classifier_scores_a_row_alike_alone_and_in_a_batch() -> None:
    settings = load_settings(torchscript=True)
    int8 = load_classifier(settings, mode="int8")
    many = [Utterance(u.text + " now" * k, u.context) for k in range(5) for u in UTTERANCES]
    together = int8.probabilities(many)
    alone = torch.cat([int8.probabilities([u]) for u in many])
    # Not bit for bit: padded attention's fp32 noise (1e-7) can tip an int8 rounding, which the layers above
    # carry (measured on 41 call lines: at most 4.8e-4 for the fast model, 2.1e-3 for the full one; bf16's own
    # batch noise is 2.6e-3 / 7.2e-3). One activation scale per pass moved them by up to 0.23.
    assert torch.allclose(together, alone, atol=5e-3), (together - alone).abs().max()


@pytest.mark.slow
def test_int8_needs_the_models_calibration_and_auto_runs_fp32_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from assistant.digest import file_sha256
    from assistant.redflags.classifier import RedFlagClassifier

    model = tmp_path / "m"
    shutil.copytree(load_settings().models_dir / "redflags-fast", model)
    assert RedFlagClassifier.load(model, mode="int8").precision == "int8"  # the shipped calibration
    file = model / precision.CALIBRATION_FILE
    shipped = precision.Int8Calibration.load(file, weights=file_sha256(model / "weights.safetensors"))
    # One written before session 20 had no FFN down-projections: refused with the command to write it again.
    older = {k: v for k, v in shipped.maxima.items() if not k.endswith(".output.dense") or "attention" in k}
    precision.Int8Calibration(older, shipped.weights, shipped.rows).save(file)
    with pytest.raises(ModelLoadError, match=r"written by an older version.*assistant calibrate redflags"):
        RedFlagClassifier.load(model, mode="int8")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # auto would choose int8
    with caplog.at_level("WARNING"):
        assert RedFlagClassifier.load(model, mode="auto").precision == "fp32"
    assert "runs fp32" in caplog.text
    caplog.clear()
    file.unlink()
    with pytest.raises(ModelLoadError, match="assistant calibrate redflags --model"):
        RedFlagClassifier.load(model, mode="int8")
    with caplog.at_level("WARNING"):
        assert RedFlagClassifier.load(model, mode="auto").precision == "fp32"
    assert "runs fp32" in caplog.text
