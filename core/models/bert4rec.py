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
from core.models.sasrec import AttentionBlock, additive_mask


class BERT4Rec(nn.Module):
    causal = False

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        d = cfg.hidden_size
        self.mask_prob = cfg.mask_prob
        self.mask_vector = nn.Parameter(torch.randn(d) * 0.02)
        self.position = nn.Embedding(cfg.max_len, d)
        nn.init.normal_(self.position.weight, std=0.02)  # the item table's scale: positions must not drown items
        self.input_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(AttentionBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, real: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """masked: [B, L] True where the input is the [MASK] token (cloze positions / the appended query)."""
        if masked is not None:
            x = torch.where(masked.unsqueeze(-1), self.mask_vector.to(x.dtype), x)
            real = real | masked
        keep = real.unsqueeze(-1).to(x.dtype)
        pos = self.position(torch.arange(x.shape[1], device=x.device))
        h = self.dropout(self.input_norm(x + pos)) * keep
        n = x.shape[1]
        mask = additive_mask(real[:, None, :] | torch.eye(n, dtype=torch.bool, device=x.device))
        for block in self.blocks:
            h = block(h, mask) * keep
        return self.norm(h) * keep
