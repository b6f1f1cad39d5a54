"""Experts and the score function every stage trains and evaluates.

An `Expert` is (item encoder, backbone): s_k(u, i) = ⟨f_k(seq), e^k_i⟩. A `SeqRecommender` holds one expert
(stages 1 and 2) or several mixed by a `FrequencyGate` (stage 3):
    s(u, i) = Σ_k w_k(bin(i)) · s_k(u, i),   w_k(b) = σ(a_k[b]) / Σ_j σ(a_j[b]).
With `normalise` (padtui's `mix = "logprob"`, not DESIGN's) each expert's scores are first made log-probabilities
over the catalogue, s_k − logsumexp_j s_k(u, j): a dot-product score carries a per-user offset that the softmax
ignores and no loss pins down, and bin-dependent weights would turn that offset into a per-user, per-bin shift.
States are always a tuple with one tensor per expert, so losses and metrics need no special case.
"""

from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


class Expert(nn.Module):
    def __init__(self, items: nn.Module, backbone: nn.Module):
        super().__init__()
        self.items = items
        self.backbone = backbone

    @property
    def causal(self) -> bool:
        return self.backbone.causal

    def states(self, seq: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        real = seq > 0
        x = self.items(seq)
        if self.causal:
            return self.backbone(x, real)
        return self.backbone(x, real, masked)

    def factored_states(self, seq: torch.Tensor, masked: torch.Tensor | None = None) -> tuple:
        """(state, scale): for a backbone whose state is a parameter-free direction times a learned scale (the
        kNN expert's `unit` and `scale`), the two apart, so a loss can differentiate the scale alone;
        otherwise (states, None)."""
        if not hasattr(self.backbone, "unit"):
            return self.states(seq, masked), None
        return self.backbone.unit(self.items(seq), seq > 0), self.backbone.scale()


class FrequencyGate(nn.Module):
    """One learnable logit per expert per frequency bin (bin 0 = padding), DESIGN §3 initialisation."""

    def __init__(self, experts: list[str], n_bins: int, frequency_aware: bool = True, gamma: float = -4.0,
                 knn: float = -4.0):
        super().__init__()
        self.experts = list(experts)
        self.frequency_aware = frequency_aware
        width = n_bins + 1 if frequency_aware else 1
        init = {
            "id": torch.linspace(1.0, 0.0, n_bins + 1),
            "aligned": torch.linspace(gamma, gamma - 1.0, n_bins + 1),
            "text": torch.linspace(0.0, 1.0, n_bins + 1),
            "knn": torch.full((n_bins + 1,), float(knn)),  # padtui's kNN expert: off until a held-out fit turns it on
        }
        rows = [init[e] if frequency_aware else init[e].mean().reshape(1) for e in self.experts]
        assert all(len(r) == width for r in rows)
        self.logits = nn.Parameter(torch.stack(rows))  # [K, n_bins + 1] (or [K, 1])

    def weights(self) -> torch.Tensor:
        """[K, n_bins + 1] mixture weights (columns sum to 1)."""
        s = torch.sigmoid(self.logits.float())
        return s / s.sum(dim=0, keepdim=True)

    def for_items(self, item_bin: torch.Tensor) -> torch.Tensor:
        """Weights for items with the given bins: [K, *item_bin.shape]."""
        w = self.weights()
        if not self.frequency_aware:
            return w[:, :1].reshape(-1, *([1] * item_bin.dim())).expand(-1, *item_bin.shape)
        # index_select (backward: index_add) rather than w[:, item_bin], whose backward sorts the indices:
        # 2.7x faster on the held-out fit's [users, candidates] bins
        return w.index_select(1, item_bin.reshape(-1)).view(w.shape[0], *item_bin.shape)

    def table(self) -> dict[str, dict[str, float]]:
        w = self.weights().detach().cpu()
        cols = range(1, w.shape[1]) if self.frequency_aware else [0]
        return {
            str(b if self.frequency_aware else "all"): {e: round(float(w[k, b]), 4) for k, e in enumerate(self.experts)}
            for b in cols
        }


class BinCalibration(nn.Module):
    """s'(u, i) = exp(a[bin(i)]) · s(u, i) + c[bin(i)]: a per-bin scale and offset of a model's scores, fitted on
    held-out interactions. It gives a single model the kind of per-bin adjustment a re-fitted gate gives PAD (the
    "calibrated SR" row), so a comparison of the two is like with like."""

    def __init__(self, n_bins: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(n_bins + 1))
        self.offset = nn.Parameter(torch.zeros(n_bins + 1))

    def forward(self, scores: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        return scores * self.log_scale[bins].exp().to(scores.dtype) + self.offset[bins].to(scores.dtype)

    def table(self) -> dict[str, dict[str, float]]:
        return {str(b): {"scale": round(float(self.log_scale[b].detach().exp()), 4),
                         "offset": round(float(self.offset[b].detach()), 4)}
                for b in range(1, len(self.offset))}


def log_norm(scores: torch.Tensor) -> torch.Tensor:
    """logsumexp over the real items (column 0 is padding) of whole-catalogue scores [P, n_items + 1] → [P]."""
    return torch.logsumexp(scores[:, 1:].float(), dim=1).to(scores.dtype)


class SeqRecommender(nn.Module):
    def __init__(self, experts: dict[str, Expert], n_items: int, item_bin: torch.Tensor | None = None,
                 gate: FrequencyGate | None = None, calibration: BinCalibration | None = None,
                 normalise: bool = False):
        super().__init__()
        self.normalise = normalise and gate is not None
        self.names = list(experts)
        self.experts = nn.ModuleList(experts.values())
        self.n_items = n_items
        self.gate = gate
        self.calibration = calibration
        if gate is not None:
            assert gate.experts == self.names
        if gate is not None or calibration is not None:
            assert item_bin is not None
            self.register_buffer("item_bin", item_bin.long(), persistent=False)

    @property
    def causal(self) -> bool:
        return self.experts[0].causal

    def expert(self, name: str) -> Expert:
        return self.experts[self.names.index(name)]

    # ── states ──
    def encode(self, seq: torch.Tensor, masked: torch.Tensor | None = None) -> State:
        return tuple(e.states(seq, masked) for e in self.experts)

    def encode_factored(self, seq: torch.Tensor, masked: torch.Tensor | None = None) -> tuple[State, list]:
        """`encode`, with each expert's state split as (direction, scale) where it is (Expert.factored_states):
        state k = states[k] · scales[k] (scales[k] None: 1)."""
        pairs = [e.factored_states(seq, masked) for e in self.experts]
        return tuple(s for s, _ in pairs), [c for _, c in pairs]

    def user_states(self, history: torch.Tensor) -> State:
        """User state after a left-padded history [B, L] (the next-item query)."""
        if self.causal:
            return tuple(s[:, -1] for s in self.encode(history))
        # BERT4Rec: drop the oldest item, append [MASK], read its state
        seq = torch.cat([history[:, 1:], torch.zeros_like(history[:, :1])], dim=1)
        masked = torch.zeros_like(seq, dtype=torch.bool)
        masked[:, -1] = True
        return tuple(s[:, -1] for s in self.encode(seq, masked))

    # ── scores ──
    def tables(self) -> list[torch.Tensor]:
        return [e.items.table() for e in self.experts]

    def score(self, state: State, items: torch.Tensor | None = None, tables: list[torch.Tensor] | None = None,
              start: int = 0, stop: int | None = None, only: int | None = None,
              norms: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Scores of users (state rows [P]) against:
        items=None → the catalogue slice [start, stop) (all items by default) → [P, stop-start];
        items [M] → items shared by all rows → [P, M];  items [P, M] → per-row items → [P, M].
        only=k: expert k's own scores, no gate and no calibration. `norms`: `self.norms(state)`, computed once
        by a caller that scores the catalogue in slices (only read when `normalise`)."""
        parts = []
        for k, h in enumerate(state):
            if only is not None and k != only:
                continue
            if items is None:
                table = tables[k] if tables is not None else self.experts[k].items.table()
                parts.append(h @ table[start:stop].T)
                continue
            # only the scored items are encoded (sampled softmax, bce): never the whole catalogue
            vectors = tables[k][items] if tables is not None else self.experts[k].items(items)
            if items.dim() == 1:
                parts.append(h @ vectors.T)
            else:
                parts.append(torch.einsum("pd,pmd->pm", h, vectors))
        if only is not None or (self.gate is None and self.calibration is None):
            return parts[0]  # `only`: the expert's own raw scores, no gate, no calibration
        whole = items is None and start == 0 and stop is None
        if self.normalise:
            if norms is None:
                norms = [log_norm(p) for p in parts] if whole else self.norms(state, tables)
            parts = [p - n[:, None] for p, n in zip(parts, norms)]
        if items is None:
            stop = self.n_items + 1 if stop is None else stop
            bins = self.item_bin[start:stop]
        else:
            bins = self.item_bin[items]
        return self.mix(parts, bins)

    def whole_scores(self, state: State, tables: list[torch.Tensor], final: bool = True
                     ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """The whole catalogue scored once [P, n_items + 1]: the final score (what `score(state, tables=tables)`
        returns; None without `final`) and each expert's own raw score (what `only=k` returns), from the same
        matrix products, so an evaluation of the mixture and of every expert costs one product per expert."""
        parts = [h @ t.T for h, t in zip(state, tables)]
        if not final:
            return None, parts
        if self.gate is None and self.calibration is None:
            return parts[0], parts
        return self.mix(self.log_probs(parts), self.item_bin[: self.n_items + 1]), parts

    def norms(self, state: State, tables: list[torch.Tensor] | None = None) -> list[torch.Tensor] | None:
        """Per expert, logsumexp over the catalogue (padding excluded) of each user's scores [P]; None when the
        model does not normalise."""
        if not self.normalise:
            return None
        return [log_norm(self.score(state, tables=tables, only=k)) for k in range(len(self.names))]

    def log_probs(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Whole-catalogue expert scores [P, n_items + 1] as the mixture sees them (log-probabilities when
        `normalise`)."""
        return [p - log_norm(p)[:, None] for p in parts] if self.normalise else parts

    def mix(self, parts: list[torch.Tensor], bins: torch.Tensor) -> torch.Tensor:
        """The experts' scores [P, M] (one per expert) → the final score: gated by the scored items' bins [M] or
        [P, M], then calibrated per bin when a calibration is set. A single part is not gated."""
        if self.gate is None or len(parts) == 1:
            out = parts[0]
        else:
            w = self.gate.for_items(bins).to(parts[0].dtype)  # [K, M] or [K, P, M]
            if w.dim() == 2:
                w = w[:, None, :]
            ws = w.unbind(0)  # one backward for all experts (indexing w[k] zero-fills a [K, ...] gradient per k)
            out = sum(ws[k] * parts[k] for k in range(len(parts)))
        return out if self.calibration is None else self.calibration(out, bins)
