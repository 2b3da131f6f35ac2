"""The red-flag head's pooling: attention (the shipped default) or log-sum-exp, which nothing can dilute."""

from __future__ import annotations

import pytest
import torch

from assistant.redflags.model import LabelAttentionHead


@pytest.mark.parametrize("seed", range(5))
def test_lse_pooling_never_lowers_a_label_when_more_tokens_are_read(seed: int) -> None:
    torch.manual_seed(seed)
    head = LabelAttentionHead(hidden=8, n_labels=4, pooling="lse").eval()
    hidden = torch.randn(1, 7, 8)
    short = torch.tensor([[1, 1, 1, 0, 0, 0, 0]])
    full = torch.ones(1, 7, dtype=torch.long)
    with torch.no_grad():
        a, b = head(hidden, short), head(hidden, full)
    assert torch.all(b.logits >= a.logits - 1e-6)  # other words in the line only add evidence
    assert torch.allclose(a.attention[0, :, 3:], torch.zeros(4, 4))  # masked tokens carry nothing
    assert torch.allclose(a.attention.sum(-1), torch.ones(1, 4))


def test_attention_pooling_can_be_diluted_by_other_tokens() -> None:
    # The weakness the lse head answers: with attention, a label's logit is a weighted mean of its token
    # scores, so reading more tokens lowers some label's logit for most inputs.
    lowered = 0
    for seed in range(5):
        torch.manual_seed(seed)
        head = LabelAttentionHead(hidden=8, n_labels=4).eval()
        hidden = torch.randn(1, 7, 8)
        with torch.no_grad():
            a = head(hidden, torch.tensor([[1, 1, 1, 0, 0, 0, 0]])).logits
            b = head(hidden, torch.ones(1, 7, dtype=torch.long)).logits
        lowered += int(torch.any(b < a - 1e-6))
    assert lowered >= 3


def test_the_gated_head_is_the_attention_head_or_the_lse_head_at_the_ends_of_its_gate() -> None:
    torch.manual_seed(0)
    gated = LabelAttentionHead(hidden=8, n_labels=3, pooling="gated").eval()
    hidden, mask = torch.randn(2, 6, 8), torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    for end, pooling in ((-30.0, "attention"), (30.0, "lse")):
        plain = LabelAttentionHead(hidden=8, n_labels=3, pooling=pooling).eval()
        plain.load_state_dict({k: v for k, v in gated.state_dict().items() if k in plain.state_dict()})
        with torch.no_grad():
            gated.gate.fill_(end)
            a, b = gated(hidden, mask), plain(hidden, mask)
        assert torch.allclose(a.logits, b.logits, atol=1e-5), pooling
        assert torch.allclose(a.attention, b.attention, atol=1e-5), pooling


def test_an_unknown_pooling_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'max' is not one of attention, lse, gated"):
        LabelAttentionHead(hidden=8, n_labels=2, pooling="max")


def test_every_pooling_has_a_card_description_and_a_cli_choice() -> None:
    # The card names the head per pooling, and the CLI spells the choices out (its help must not import torch).
    import argparse

    from assistant.cli import _train
    from assistant.redflags.card import _HEADS
    from assistant.redflags.model import POOLINGS

    parser = argparse.ArgumentParser()
    _train.register(parser.add_subparsers())
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    redflags = next(a for a in train._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "redflags"
    ]
    choices = next(a.choices for a in redflags._actions if a.dest == "head_pooling")
    assert set(_HEADS) == set(POOLINGS) == set(choices or ())
