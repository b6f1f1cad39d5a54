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


# ── whole-catalogue cross-entropy, fused ──
# ce scores every position against every item: [P, N] tensors of hundreds of MB on a large catalogue, and in
# stage 3 a dozen elementwise passes over them per expert (each expert's log-softmax, the gate's weighting, the
# mixture's log-softmax, and the backward of each). `fused_catalogue_ce` computes the same loss and, when
# gradients are wanted, its gradients in one sweep over row chunks small enough to stay in the CPU's cache,
# keeping only the gradients for backward. Same arithmetic as the autograd graph (tests/test_fused_ce.py checks
# one against the other), a fraction of the memory traffic, and no [P, N] tensor alive after the step.

CHUNK_BYTES = 2**26  # a chunk's working set: (experts + 1) float32 buffers of [rows, N] (measured: bench/stage3_step.py)


def chunk_rows(n_items: int, n_experts: int) -> int:
    return max(8, CHUNK_BYTES // (4 * n_items * (n_experts + 1)))


class _FusedCE(torch.autograd.Function):
    """inputs: targets [P] (1..N), gate weights [K, N] or None (one expert), normalise, expert_loss, chunk rows,
    then K states [P, d_k], K item tables [N, d_k] (padding row dropped) and K scalar score scales. Returns
    (total, rec, own)."""

    @staticmethod
    def forward(ctx, targets, weights, normalise, expert_loss, rows, *inputs):
        k = len(inputs) // 3
        states, tables, scales = inputs[:k], inputs[k:2 * k], inputs[2 * k:]
        needs = ctx.needs_input_grad[5:]
        need_state, need_table, need_scale = needs[:k], needs[k:2 * k], needs[2 * k:]
        want = any(needs) or (weights is not None and ctx.needs_input_grad[1])
        n_rows = targets.shape[0]
        a = 1.0 / max(1, n_rows)
        own_w = expert_loss * a / k  # ∂(expert_loss · mean_k CE_k)/∂(one row's CE_k)
        w = weights.float() if weights is not None else None
        d_states = [torch.zeros_like(h) if need else None for h, need in zip(states, need_state)]
        d_tables = [torch.zeros(e.shape, dtype=torch.float32, device=e.device) if need else None
                    for e, need in zip(tables, need_table)]
        d_scales = [torch.zeros((), dtype=torch.float64, device=c.device) if need else None
                    for c, need in zip(scales, need_scale)]
        d_weights = torch.zeros_like(w) if w is not None and want else None
        unscaled = [not need and float(c) == 1.0 for c, need in zip(scales, need_scale)]
        mix_sum = torch.zeros((), dtype=torch.float64, device=targets.device)
        own_sum = torch.zeros((), dtype=torch.float64, device=targets.device)
        for lo in range(0, n_rows, rows):
            hi = min(n_rows, lo + rows)
            t = targets[lo:hi] - 1
            at = torch.arange(hi - lo, device=t.device)
            logs, lses, raws = [], [], []
            for j, (h, e, c) in enumerate(zip(states, tables, scales)):
                raw = (h[lo:hi] @ e.T).float()
                if need_scale[j]:
                    p = raw * c.float()  # ∂p/∂scale = the unscaled scores, kept
                else:
                    p = raw if unscaled[j] else raw.mul_(c.float())
                raws.append(raw if need_scale[j] else None)
                lse = torch.logsumexp(p, dim=1)
                if expert_loss:
                    own_sum += (lse - p[at, t]).sum(dtype=torch.float64)
                if normalise:
                    p -= lse[:, None]
                logs.append(p)
                lses.append(lse)
            if w is None:
                m = logs[0]
            else:
                m = logs[0] * w[0]
                for j in range(1, k):
                    m.addcmul_(logs[j], w[j])
            lse_m = torch.logsumexp(m, dim=1)
            mix_sum += (lse_m - m[at, t]).sum(dtype=torch.float64)
            if not want:
                continue
            m -= lse_m[:, None]  # G = ∂L/∂m = a · (softmax(m) − onehot(t)), in m's buffer
            m.exp_()
            m[at, t] -= 1.0
            m *= a
            for j, (h, e) in enumerate(zip(states, tables)):
                if w is None:
                    dp = m
                else:
                    q = logs[j]
                    if d_weights is not None:
                        d_weights[j] += (m * q).sum(dim=0)
                    if normalise or expert_loss:
                        # the expert's own softmax, in q's buffer: ∂lse_j/∂p_j
                        s = q.exp_() if normalise else q.sub_(lses[j][:, None]).exp_()
                        coef = torch.full((hi - lo,), own_w, device=m.device)
                        if normalise:  # q_j = p_j − lse_j: the mixture's gradient flows back through lse_j too
                            coef -= m @ w[j]
                        dp = s.mul_(coef[:, None]).addcmul_(m, w[j])
                        if expert_loss:
                            dp[at, t] -= own_w
                    else:
                        dp = m * w[j]
                if d_scales[j] is not None:
                    d_scales[j] += (dp * raws[j]).sum(dtype=torch.float64)
                if (d_states[j] is not None or d_tables[j] is not None) and not unscaled[j]:
                    dp = dp * scales[j].float()  # p = scale · h·e
                if d_states[j] is not None:
                    d_states[j][lo:hi] = dp.to(h.dtype) @ e
                if d_tables[j] is not None:
                    d_tables[j] += (dp.T.to(h.dtype) @ h[lo:hi]).float()
        ctx.grads = (d_states, d_tables, d_scales, d_weights)
        rec = (mix_sum * a).float()
        own = (own_sum * a / k).float()
        total = rec + expert_loss * own
        ctx.mark_non_differentiable(rec, own)
        return total, rec, own

    @staticmethod
    def backward(ctx, g_total, _g_rec, _g_own):
        d_states, d_tables, d_scales, d_weights = ctx.grads
        del ctx.grads

        def times(d, like=None):
            return None if d is None else (g_total * d).to(d.dtype if like is None else like)

        return (None, times(d_weights), None, None, None, *[times(d) for d in d_states],
                *[times(d) for d in d_tables], *[times(d, g_total.dtype) for d in d_scales])


def fused_catalogue_ce(states: State, tables: list[torch.Tensor], targets: torch.Tensor,
                       weights: torch.Tensor | None = None, normalise: bool = False, expert_loss: float = 0.0,
                       rows: int | None = None, scales: list[torch.Tensor | None] | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax CE over the whole catalogue of the mixture Σ_k w_k[i]·s_k (or of one expert's scores), plus
    `expert_loss` · the mean of the experts' own CE — what `catalogue_ce` of `SeqRecommender.score` and of each
    expert's scores give, without materialising them. `tables` include the padding row 0 (excluded here);
    `weights` [K, N+1] are the gate's weights per item (None: one expert); `normalise` = mix log-probabilities;
    `scales[k]`: a scalar the expert's scores are multiplied by (an expert whose state is a constant direction
    times a learned scale, the kNN expert: its gradient needs no product with the table).
    Returns (total, rec, own): total carries the gradient; rec and own are the parts, for logging."""
    body = [e[1:] for e in tables]
    w = None if weights is None else weights[:, 1:]
    one = torch.ones((), device=body[0].device)
    scales = [one if c is None else c for c in (scales or [None] * len(body))]
    rows = rows or chunk_rows(body[0].shape[0], len(body))
    return _FusedCE.apply(targets, w, bool(normalise), float(expert_loss), int(rows), *states, *body, *scales)
