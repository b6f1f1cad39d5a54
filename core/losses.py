"""Recommendation losses (bce / ce / sampled softmax) and the alignment objectives (MK-MMD, InfoNCE)."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from core.models.scorer import SeqRecommender, State


def sample_negatives(rng: np.random.Generator, n_items: int, users: np.ndarray, shape: tuple[int, int],
                     user_items: list[np.ndarray], tries: int = 5) -> np.ndarray:
    """Uniform negatives in 1..n_items, resampled where they hit the user's training items."""
    neg = rng.integers(1, n_items + 1, size=shape)
    for row, user in enumerate(users):
        seen = user_items[user]
        for _ in range(tries):
            bad = np.isin(neg[row], seen, assume_unique=False)
            if not bad.any():
                break
            neg[row, bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
    return neg


def catalogue_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of scores over the whole catalogue [P, n_items + 1] (column 0, padding, excluded)."""
    return F.cross_entropy(logits[:, 1:].float(), targets - 1)  # a view: the caller's scores stay untouched


def rec_loss(model: SeqRecommender, state: State, targets: torch.Tensor, kind: str,
             negatives: torch.Tensor | None = None, tables: list[torch.Tensor] | None = None) -> torch.Tensor:
    """state rows [P] with their next items `targets` [P].

    ce: softmax over all items (`tables`: the experts' item tables when the caller already has them);
    bce: one negative per row (`negatives` [P]); sampled_softmax: the target against k shared negatives
    (`negatives` [k]), hits on the target removed."""
    if kind == "ce":
        return catalogue_ce(model.score(state, tables=tables), targets)
    if kind == "bce":
        pos = model.score(state, targets[:, None])[:, 0].float()
        neg = model.score(state, negatives[:, None])[:, 0].float()
        return F.softplus(-pos).mean() + F.softplus(neg).mean()
    if kind == "sampled_softmax":
        pos = model.score(state, targets[:, None]).float()  # [P, 1]
        neg = model.score(state, negatives).float()  # [P, k]
        neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([pos, neg], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=logits.device))
    raise ValueError(f"unknown loss {kind!r}")


def _offdiag_mean(k: torch.Tensor) -> torch.Tensor:
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / max(1, n * (n - 1))


def kernel_matrix(z: torch.Tensor, kernel: str = "gaussian", n_kernels: int = 5) -> torch.Tensor:
    """K over all pairs of rows of z, as the authors' code computes it (PAD_OFFICIAL §5.2, §5.4).

    gaussian: Σ_u exp(−D/(2σ_u²)), D the squared L2 distances, σ_u² = 2^u · mean(D), u = −3..1;
    laplacian: the same with D the L1 distances; mean(D) over distinct pairs, detached (DESIGN §3).
    linear: z zᵀ. cosine: 1 − cos(z_a, z_b) — a distance, which is what the authors' `CosKernel` returns."""
    if kernel in ("gaussian", "laplacian"):
        d = torch.cdist(z, z).pow(2) if kernel == "gaussian" else torch.cdist(z, z, p=1)
        base = _offdiag_mean(d).detach().clamp_min(1e-12)
        us = range(-(n_kernels // 2) - 1, n_kernels - n_kernels // 2 - 1)  # −3..1 for 5 kernels
        return sum(torch.exp(-d / (2 * (2.0**u) * base)) for u in us)
    if kernel == "linear":
        return z @ z.T
    if kernel == "cosine":
        zn = F.normalize(z, dim=1)
        return 1.0 - zn @ zn.T
    raise ValueError(f"unknown kernel {kernel!r}")


def mk_mmd(source: torch.Tensor, target: torch.Tensor, kernel: str = "gaussian") -> torch.Tensor:
    """Quadratic (unbiased within-sample) MK-MMD² between two samples of row vectors."""
    n = source.shape[0]
    k = kernel_matrix(torch.cat([source, target]).float(), kernel)
    return _offdiag_mean(k[:n, :n]) + _offdiag_mean(k[n:, n:]) - 2 * k[:n, n:].mean()


def info_nce(source: torch.Tensor, target: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE where row i of source and row i of target are the positive pair."""
    s = F.normalize(source.float(), dim=1)
    t = F.normalize(target.float(), dim=1)
    logits = s @ t.T / temperature
    labels = torch.arange(len(s), device=s.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
