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


def test_an_unknown_pooling_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'max' is not one of attention, lse"):
        LabelAttentionHead(hidden=8, n_labels=2, pooling="max")
