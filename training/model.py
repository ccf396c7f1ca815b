"""The triage network: one shared encoder, one head per label, and a similarity embedding.

The encoder is split into a frozen lower part and a trained upper part so that
training on a CPU can compute the lower part once per ticket and reuse it every
epoch (see ``training.train``). The exported graph runs both parts in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from transformers import BertModel

from training.lexical import LexicalHeads

__all__ = ["TriageModel", "extended_attention_mask", "mean_pool"]


def extended_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B, 1, 1, T) additive mask for BERT's self-attention."""
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding. (B, T, H) -> (B, H)."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class TriageModel(nn.Module):
    """Encoder with classification heads; ``forward`` returns each head's logits, then the
    L2-normalised mean-pooled embedding.

    When lexical heads are attached, each head's output is a weighted sum of the
    encoder's and the lexical model's log-probabilities, with the weight per head
    chosen on validation data (0 means the encoder alone).
    """

    def __init__(
        self,
        encoder: BertModel,
        label_counts: Mapping[str, int],
        dropout: float = 0.1,
        frozen_layers: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head_names = list(label_counts)
        self.label_counts = dict(label_counts)
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        # A list, not a dict: head names such as "type" clash with nn.Module attributes.
        self.heads = nn.ModuleList([nn.Linear(hidden, n) for n in label_counts.values()])
        self.frozen_layers = frozen_layers
        self.lexical: LexicalHeads | None = None
        self.lexical_weight: torch.Tensor
        self.register_buffer("lexical_weight", torch.zeros(len(self.head_names)))

    @property
    def layers(self) -> nn.ModuleList:
        layers = self.encoder.encoder.layer
        assert isinstance(layers, nn.ModuleList)
        return layers

    def attach_lexical(self, lexical: LexicalHeads, weights: Mapping[str, float]) -> None:
        """Blend a fitted lexical model into the heads with these per-head weights."""
        self.lexical = lexical
        blend = [weights[name] for name in self.head_names]
        self.lexical_weight = torch.tensor(blend, device=self.lexical_weight.device)

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embeddings and the frozen layers. (B, T) -> (B, T, H)."""
        hidden = self.encoder.embeddings(
            input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
        )
        mask = extended_attention_mask(attention_mask, hidden.dtype)
        for layer in self.layers[: self.frozen_layers]:
            hidden = layer(hidden, attention_mask=mask)[0]
        return hidden

    def upper(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The trained layers and the heads: per-head encoder logits and the pooled vector."""
        mask = extended_attention_mask(attention_mask, hidden.dtype)
        for layer in self.layers[self.frozen_layers :]:
            hidden = layer(hidden, attention_mask=mask)[0]
        pooled = mean_pool(hidden, attention_mask)  # (B, H)
        features = self.dropout(pooled)
        return [head(features) for head in self.heads], pooled

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        logits, pooled = self.upper(self.lower(input_ids, attention_mask), attention_mask)
        if self.lexical is not None:
            lexical = self.lexical(input_ids, attention_mask)
            blended, offset = [], 0
            for index, (name, encoder_logits) in enumerate(
                zip(self.head_names, logits, strict=True)
            ):
                width = self.label_counts[name]
                weight = self.lexical_weight[index]
                blended.append(
                    (1 - weight) * torch.log_softmax(encoder_logits, dim=-1)
                    + weight * torch.log_softmax(lexical[:, offset : offset + width], dim=-1)
                )
                offset += width
            logits = blended
        embedding = nn.functional.normalize(pooled, p=2.0, dim=-1)
        return (*logits, embedding)
