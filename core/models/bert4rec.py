"""BERT4Rec — Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations
from Transformer", CIKM 2019.

Bidirectional self-attention trained with the cloze task: random positions are replaced by a learned [MASK]
vector and predicted; at inference a [MASK] is appended after the history and its state is the user state.
Shares the attention block with SASRec; differs only in the mask and the training task.
"""

from __future__ import annotations

import torch
from torch import nn

from core.config import BackboneConfig
from core.models.sasrec import TransformerEncoder


class BERT4Rec(nn.Module):
    causal = False

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.mask_prob = cfg.mask_prob
        self.mask_vector = nn.Parameter(torch.randn(cfg.hidden_size) * 0.02)
        self.encoder = TransformerEncoder(cfg)

    def forward(self, x: torch.Tensor, real: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """masked: [B, L] True where the input is the [MASK] token (cloze positions / the appended query)."""
        if masked is not None:
            x = torch.where(masked.unsqueeze(-1), self.mask_vector.to(x.dtype), x)
            real = real | masked
        n = x.shape[1]
        allowed = real[:, None, :] | torch.eye(n, dtype=torch.bool, device=x.device)
        return self.encoder(x, real, allowed)
