"""The kNN expert: the training-free text kNN (core.knn) as a fourth stage-3 expert — padtui's own variant.

Items are the LLM vectors, standardised per column and L2-normalised (no parameter); the "backbone" is the
direction of the mean of the last `window` items' vectors, times one learnable scale. So
s(u, i) = scale · cos(mean of the last items, x_i): the kNN's ranking, at a scale the gate can weigh against
the trained experts. It has no item-specific parameter, so the tail is ranked exactly as well as the LLM's
vectors allow; the frequency gate decides per bin how much of it to take.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from core.models.items import LLMTable, kept


class UnitLLMItems(nn.Module):
    """x̃_i / ‖x̃_i‖ with x̃ the standardised LLM table (LLMTable); row 0 (padding) stays zero."""

    def __init__(self, llm: LLMTable):
        super().__init__()
        self.llm = llm

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.llm(ids), dim=-1)

    def table(self) -> torch.Tensor:
        return kept(self, "_unit", lambda: F.normalize(self.llm.whole(), dim=-1))


class RecentMean(nn.Module):
    """State at position t = scale · unit(sum of the item vectors at positions t-window+1 .. t); pads are zero
    vectors, so they do not count."""

    causal = True

    def __init__(self, window: int = 3, scale: float = 10.0):
        super().__init__()
        self.window = window
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def unit(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The state's direction: unit(sum of the last `window` item vectors), no parameter."""
        x = x * real.unsqueeze(-1).to(x.dtype)
        summed = x.cumsum(dim=1)
        shifted = torch.zeros_like(summed)
        if x.shape[1] > self.window:
            shifted[:, self.window:] = summed[:, : -self.window]
        return F.normalize(summed - shifted, dim=-1)

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.unit(x, real) * self.scale()
