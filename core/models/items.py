"""Item encoders: everything item-side, so that any backbone plugs into every PAD stage.

Each encoder maps item ids to d-dimensional vectors (`forward(ids)`) and gives the whole catalogue
(`table()`, row 0 = padding) for full-ranking scores. The LLM table x [N+1, D] is a frozen buffer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


KEEP_BYTES = 2**29  # a constant table up to this size is computed once, not every step


def kept(owner: nn.Module, name: str, make) -> torch.Tensor:
    """`make()` — a table that depends on frozen buffers only — kept on `owner` while its buffers stay where they
    are (a move to another device makes it again); above KEEP_BYTES it is made on each call, to spare memory."""
    key = tuple((b.device, b.data_ptr()) for b in owner.buffers())
    cached = owner.__dict__.get(name)
    if cached is not None and cached[0] == key:
        return cached[1]
    with torch.no_grad():
        table = make()
    if table.numel() * table.element_size() <= KEEP_BYTES:
        owner.__dict__[name] = (key, table)
    return table


class IDItems(nn.Module):
    """E_id: a plain item-id table (stage 1; the collaborative expert)."""

    def __init__(self, n_items: int, d: int):
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=0.02)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)

    def table(self) -> torch.Tensor:
        return self.embedding.weight


class LLMAdapter(nn.Module):
    """P: Linear(D→d)+GELU, then `layers` × [Dropout, Linear(d→d), GELU] (DESIGN §3)."""

    def __init__(self, llm_dim: int, d: int, layers: int, dropout: float):
        super().__init__()
        parts: list[nn.Module] = [nn.Linear(llm_dim, d), nn.GELU()]
        for _ in range(layers):
            parts += [nn.Dropout(dropout), nn.Linear(d, d), nn.GELU()]
        self.net = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LLMTable(nn.Module):
    """Holds the frozen LLM item table as a non-persistent buffer (it lives in the embedding cache).

    Columns are standardised over the real items (row 0 stays zero): small decoder LLMs give vectors that all
    point the same way (cosines 0.96–0.99 for SmolLM2), which leaves the adapter's first layer a nearly
    constant input. Standardising keeps the neighbourhoods and gives the adapter the variation."""

    def __init__(self, llm_table: torch.Tensor):
        super().__init__()
        x = llm_table.float()  # float32 already: the memory-mapped cache itself, not a copy
        body = x[1:]
        self.register_buffer("x", x, persistent=False)
        self.register_buffer("mean", body.mean(0), persistent=False)
        self.register_buffer("std", body.std(0).clamp_min(1e-6), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Standardised on lookup (the same arithmetic as standardising the table, without a copy of it)."""
        out = (self.x[ids] - self.mean) / self.std
        return out.masked_fill((ids == 0).unsqueeze(-1), 0.0)

    def whole(self) -> torch.Tensor:
        """The standardised table [N+1, D]: what every whole-catalogue score starts from, every step."""
        return kept(self, "_whole", lambda: self.forward(torch.arange(self.x.shape[0], device=self.x.device)))


class AlignedItems(nn.Module):
    """Stage 2: ê_i = GELU(W·Dropout([E_al[i]; P1(x_i)])), E_al a copy of the stage-1 table."""

    def __init__(self, id_items: IDItems, llm: LLMTable, d: int, adapter_layers: int, dropout: float,
                 fusion_init: str = "identity"):
        super().__init__()
        self.ids = id_items
        self.llm = llm
        self.adapter = LLMAdapter(llm.x.shape[1], d, adapter_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.fusion = nn.Linear(2 * d, d)
        with torch.no_grad():
            self.fusion.bias.zero_()
            if fusion_init == "xavier":  # the authors' code: the aligned expert starts away from the ID expert
                nn.init.xavier_normal_(self.fusion.weight)
            else:
                # near "pass the ID vector through" (W = [I, ε]): stage 2 begins where stage 1 ended instead of
                # re-learning the item space from scratch
                self.fusion.weight.normal_(std=0.01)
                self.fusion.weight[:, :d] += torch.eye(d)

    def text_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.llm(ids))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([self.ids(ids), self.text_vectors(ids)], dim=-1)
        return F.gelu(self.fusion(self.dropout(joint)))

    def table(self) -> torch.Tensor:
        joint = torch.cat([self.ids.table(), self.adapter(self.llm.whole())], dim=-1)
        return F.gelu(self.fusion(self.dropout(joint)))


class TextItems(nn.Module):
    """Stage 3's text expert: a fresh adapter P3 over the LLM table."""

    def __init__(self, llm: LLMTable, d: int, adapter_layers: int, dropout: float):
        super().__init__()
        self.llm = llm
        self.adapter = LLMAdapter(llm.x.shape[1], d, adapter_layers, dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.llm(ids))

    def table(self) -> torch.Tensor:
        return self.adapter(self.llm.whole())
