"""SASRec — Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.

Causal self-attention over left-padded sequences. Deliberate difference from the paper's code: instead of a
key-padding mask (which leaves fully masked rows on left padding → NaN), every position may attend to itself,
pads are zeroed after each block, and the input of a pad position is zero.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from core.config import BackboneConfig


def additive_mask(allowed: torch.Tensor) -> torch.Tensor:
    """[B, L, L] boolean → [B, 1, L, L] additive float mask (SDPA's fast path on CPU takes float masks)."""
    mask = torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device)
    return mask.masked_fill_(~allowed, float("-inf"))[:, None]


class AttentionBlock(nn.Module):
    """Pre-LN transformer block (self-attention + position-wise FFN) with a boolean attention mask."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d, d))
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """attn_mask: [B, 1, L, L] additive (0 = may attend, -inf = may not)."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        drop = self.attn_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        x = x + self.dropout(self.out(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class TransformerEncoder(nn.Module):
    """Item vectors + learned positions → LayerNorm → dropout → blocks → LayerNorm; pads stay zero.
    Shared by SASRec (causal mask) and BERT4Rec (bidirectional mask)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        d = cfg.hidden_size
        self.position = nn.Embedding(cfg.max_len, d)
        nn.init.normal_(self.position.weight, std=0.02)  # the item table's scale: positions must not drown items
        self.input_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(AttentionBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, real: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """allowed: [B, L, L] boolean, query × key; the diagonal must be allowed (no fully masked row)."""
        keep = real.unsqueeze(-1).to(x.dtype)
        pos = self.position(torch.arange(x.shape[1], device=x.device))
        h = self.dropout(self.input_norm(x + pos)) * keep
        mask = additive_mask(allowed)
        for block in self.blocks:
            h = block(h, mask) * keep
        return self.norm(h) * keep


class SASRec(nn.Module):
    causal = True

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.encoder = TransformerEncoder(cfg)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x: [B, L, d] item vectors (left-padded), real: [B, L] True at real items → states [B, L, d]."""
        n = real.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=real.device).tril()
        allowed = (causal & real[:, None, :]) | torch.eye(n, dtype=torch.bool, device=real.device)
        return self.encoder(x, real, allowed)
