"""GRU4Rec — Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016.

As in RecBole's sequential variant: embedding dropout → multi-layer GRU → linear projection back to the item
space; per-position states come from the recurrence, so it is causal by construction. Left padding feeds zero
vectors first, which leaves the start state near zero.
"""

from __future__ import annotations

import torch
from torch import nn

from core.config import BackboneConfig


class GRU4Rec(nn.Module):
    causal = True

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        d = cfg.hidden_size
        self.dropout = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(d, 2 * d, num_layers=cfg.n_layers, batch_first=True, bias=False)
        self.proj = nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        keep = real.unsqueeze(-1).to(x.dtype)
        h, _ = self.gru(self.dropout(x * keep))
        return self.proj(h) * keep
