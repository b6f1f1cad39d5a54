"""The fused whole-catalogue cross-entropy (core.losses.fused_catalogue_ce) against the autograd graph it
replaces: the mixture's CE of `SeqRecommender.score` plus the experts' own CE, values and every gradient."""

from __future__ import annotations

import pytest
import torch

from core.engine import StageModule
from core.losses import catalogue_ce, fused_catalogue_ce
from core.models.scorer import FrequencyGate, log_norm

N_ITEMS, N_BINS = 23, 4


def leaves(k: int, d: int = 5, rows: int = 11, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    states = [torch.randn(rows, d, generator=g).requires_grad_() for _ in range(k)]
    tables = [torch.randn(N_ITEMS + 1, d, generator=g).requires_grad_() for _ in range(k)]
    targets = torch.randint(1, N_ITEMS + 1, (rows,), generator=g)
    bins = torch.randint(1, N_BINS + 1, (N_ITEMS + 1,), generator=g)
    gate = FrequencyGate(["id", "aligned", "text"][:k], N_BINS)
    with torch.no_grad():
        gate.logits.add_(torch.randn(gate.logits.shape, generator=g))
    return states, tables, targets, bins, gate


def reference(states, tables, targets, weights, normalise, expert_loss):
    parts = [h @ e.T for h, e in zip(states, tables)]
    if weights is None:
        return catalogue_ce(parts[0], targets)
    logs = [p - log_norm(p)[:, None] for p in parts] if normalise else parts
    mixed = sum(weights[k][None, :] * logs[k] for k in range(len(parts)))
    loss = catalogue_ce(mixed, targets)
    if expert_loss:
        loss = loss + expert_loss * sum(catalogue_ce(p, targets) for p in parts) / len(parts)
    return loss


@pytest.mark.parametrize("k,normalise,expert_loss,rows", [
    (1, False, 0.0, None), (1, False, 0.0, 4),
    (3, True, 1.0, None), (3, True, 1.0, 4), (3, True, 0.0, 5), (3, False, 0.0, 3), (3, False, 0.5, 4),
])
def test_fused_matches_autograd(k, normalise, expert_loss, rows):
    states, tables, targets, bins, gate = leaves(k)
    weights = gate.for_items(bins) if k > 1 else None
    ref = reference(states, tables, targets, weights, normalise, expert_loss)
    params = [*states, *tables] + ([gate.logits] if k > 1 else [])
    want = torch.autograd.grad(ref, params)

    weights = gate.for_items(bins) if k > 1 else None
    total, rec, own = fused_catalogue_ce(states, tables, targets, weights, normalise, expert_loss, rows)
    got = torch.autograd.grad(2.0 * total, params)  # the upstream gradient is honoured, not assumed to be 1
    assert torch.allclose(total, ref, atol=1e-5)
    assert torch.allclose(rec + expert_loss * own, total, atol=1e-6)
    for name, a, b in zip(["state"] * k + ["table"] * k + ["gate"], got, want):
        assert torch.allclose(a, 2.0 * b, atol=1e-5, rtol=1e-4), name
    # the padding row of a table is not scored, so it gets no gradient
    assert all(float(g[0].abs().max()) == 0.0 for g in got[k:2 * k])


def test_without_gradients_only_the_value():
    states, tables, targets, bins, gate = leaves(3)
    weights = gate.for_items(bins)
    with torch.no_grad():
        total, rec, own = fused_catalogue_ce(states, tables, targets, weights, True, 1.0)
        ref = reference(states, tables, targets, weights, True, 1.0)
    assert not total.requires_grad and torch.allclose(total, ref, atol=1e-5)



@pytest.mark.parametrize("normalise,expert_loss", [(True, 1.0), (False, 0.0)])
def test_a_factored_scale_gets_the_gradient_of_the_scaled_state(normalise, expert_loss):
    """The kNN expert's state is a constant direction times a learned scale: passed apart (`scales`), the scale
    gets the gradient it would get through the product, and the constant direction none."""
    states, tables, targets, bins, gate = leaves(3, seed=1)
    direction = states[2].detach()
    log_scale = torch.tensor(0.7, requires_grad=True)
    knn_table = tables[2].detach()
    weights = gate.for_items(bins)
    ref = reference([states[0], states[1], direction * log_scale.exp()], [tables[0], tables[1], knn_table], targets,
                    weights, normalise, expert_loss)
    params = [states[0], tables[0], log_scale, gate.logits]
    want = torch.autograd.grad(ref, params)
    weights = gate.for_items(bins)
    total, _, _ = fused_catalogue_ce([states[0], states[1], direction], [tables[0], tables[1], knn_table], targets,
                                     weights, normalise, expert_loss, rows=4, scales=[None, None, log_scale.exp()])
    got = torch.autograd.grad(total, params)
    assert torch.allclose(total, ref, atol=1e-5)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert float(want[2].abs()) > 1e-4  # the scale's gradient is not trivially zero
