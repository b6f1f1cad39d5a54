"""Backbones × losses: a short CPU training on tiny synthetic data lowers the loss (RecBole's one-short-run per
model habit), plus the structural promises: left padding is NaN-free with zero pad states, causal backbones do
not look ahead, BERT4Rec reads the appended [MASK]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data import load_data
from core.engine import StageModule, make_batch, training_windows
from core.models import build_backbone
from core.models.items import IDItems
from core.models.scorer import Expert, SeqRecommender

STEPS = 60  # ~8 passes over the 200 windows: every backbone × loss ends ≥ 10% lower (margin: 5%)
LOSSES = ("bce", "ce", "sampled_softmax")
BACKBONES = ("sasrec", "gru4rec", "bert4rec")


@pytest.fixture(scope="module")
def tiny_data():
    from conftest import tiny_config

    cfg = tiny_config()
    return load_data(cfg.dataset, cfg.stages.disentangle.n_bins, use_cache=False, log=lambda m: None)  # no cache


def recommender(cfg, n_items: int, seed: int = 0) -> SeqRecommender:
    torch.manual_seed(seed)
    expert = Expert(IDItems(n_items, cfg.backbone.hidden_size), build_backbone(cfg.backbone))
    return SeqRecommender({"id": expert}, n_items)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("kind", BACKBONES)
def test_training_loss_falls(tiny_cfg, tiny_data, kind, loss):
    cfg = tiny_cfg(f"backbone.kind={kind}", f"stages.pretrain.loss={loss}", "stages.pretrain.n_negatives=32",
                   "stages.pretrain.windows=last", "backbone.dropout=0.1", "backbone.n_layers=1")
    stage_cfg, data = cfg.stages.pretrain, tiny_data
    windows, users = training_windows(data, cfg.backbone.max_len, stage_cfg.windows)
    windows, users = torch.from_numpy(windows), torch.from_numpy(users)
    model = recommender(cfg, data.n_items)
    module = StageModule(model, stage_cfg.loss, None)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    user_items = [np.unique(data.train_part(u)) for u in range(data.n_users)]
    rng = np.random.default_rng(0)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(0))
    batch_size = 64
    history = []
    module.train()
    for step in range(STEPS):
        start = (step * batch_size) % len(order)
        idx = order[start:start + batch_size]
        batch = make_batch(windows[idx], users[idx], model, stage_cfg, data, user_items, rng, cfg.backbone.mask_prob)
        losses = module(*batch)
        assert set(losses) == {"rec", "total"}
        assert torch.isfinite(losses["total"])
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append(float(losses["total"].detach()))
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < first * 0.95, f"{kind}/{loss}: loss {first:.4f} → {last:.4f} ({history})"


def test_training_windows_cover_the_training_part(tiny_data):
    data = tiny_data
    last, last_users = training_windows(data, 20, "last")
    sliding, sliding_users = training_windows(data, 20, "sliding")
    assert last.shape == (data.n_users, 21)  # every synthetic user has ≥ 3 training items
    for u in (0, 1, 2):
        train = data.train_part(u)
        row = last[u]
        assert row[row > 0].tolist() == train[-21:].tolist()
        # sliding: every training position after the first is a target exactly once
        rows = sliding[sliding_users == u]
        targets = sorted(int(t) for r in rows for s, t in zip(r[:-1], r[1:]) if s > 0)
        assert targets == sorted(train[1:].tolist())


def test_make_batch_targets(tiny_cfg, tiny_data):
    data = tiny_data
    windows, users = training_windows(data, 20, "last")
    w, u = torch.from_numpy(windows[:8]), torch.from_numpy(users[:8])
    rng = np.random.default_rng(0)
    user_items = [np.unique(data.train_part(i)) for i in range(data.n_users)]
    causal = tiny_cfg("stages.pretrain.loss=bce")
    model = recommender(causal, data.n_items)
    seq, targets, masked, negatives = make_batch(w, u, model, causal.stages.pretrain, data, user_items, rng, 0.2)
    assert torch.equal(seq, w[:, :-1])
    assert torch.equal(targets[seq > 0], w[:, 1:][seq > 0]) and (targets[seq == 0] == 0).all()
    assert negatives.shape == targets.shape and (negatives >= 1).all() and (negatives <= data.n_items).all()
    for row, user in enumerate(u.tolist()):
        assert not np.isin(negatives[row].numpy(), user_items[user]).any()  # resampled away
    bert = tiny_cfg("backbone.kind=bert4rec", "stages.pretrain.loss=sampled_softmax", "stages.pretrain.n_negatives=16")
    model = recommender(bert, data.n_items)
    seq, targets, masked, negatives = make_batch(w, u, model, bert.stages.pretrain, data, user_items, rng, 0.2)
    assert masked.any(dim=1).all()  # every row has at least one cloze position
    assert (seq[masked] == 0).all() and torch.equal(targets[masked], w[:, 1:][masked])
    assert (targets[~masked] == 0).all()
    assert negatives.shape == (16,)


# ───────────────────────────── structure ─────────────────────────────


def backbone(tiny_cfg, kind: str, **over):
    cfg = tiny_cfg(f"backbone.kind={kind}", *(f"backbone.{k}={v}" for k, v in over.items()))
    torch.manual_seed(0)
    return build_backbone(cfg.backbone), cfg.backbone.hidden_size


def left_padded(lengths: list[int], length: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    real = torch.zeros(len(lengths), length, dtype=torch.bool)
    for row, n in enumerate(lengths):
        if n:
            real[row, -n:] = True
    x = torch.randn(len(lengths), length, d, generator=g) * real.unsqueeze(-1)
    return x, real


@pytest.mark.parametrize("kind", BACKBONES)
@pytest.mark.parametrize("train", [False, True])
def test_left_padding_no_nan_and_zero_pad_states(tiny_cfg, kind, train):
    net, d = backbone(tiny_cfg, kind)
    net.train(train)
    x, real = left_padded([20, 7, 1, 0], 20, d)  # full, partly padded, one item, all padding
    states = net(x, real)
    assert states.shape == x.shape
    assert torch.isfinite(states).all()
    assert (states[~real] == 0).all()
    assert states[real].abs().sum(dim=-1).gt(0).all()


def test_sasrec_gradients_are_finite_on_padding(tiny_cfg):
    net, d = backbone(tiny_cfg, "sasrec")
    x, real = left_padded([20, 3, 0], 20, d)
    x.requires_grad_(True)
    net(x, real).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec"])
def test_causal_state_ignores_later_items(tiny_cfg, kind):
    net, d = backbone(tiny_cfg, kind)
    net.eval()
    x, real = left_padded([20, 12], 20, d)
    base = net(x, real)
    for t in (8, 12, 18):
        changed = x.clone()
        changed[:, t + 1:] = torch.randn_like(changed[:, t + 1:]) * real[:, t + 1:].unsqueeze(-1)
        out = net(changed, real)
        assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5), f"{kind} looks ahead at t={t}"
        assert not torch.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-5)


def test_causal_state_ignores_padding_length(tiny_cfg):
    """GRU4Rec: left padding feeds zero vectors into a zero state, so the amount of padding in front of a
    history does not change its final state."""
    net, d = backbone(tiny_cfg, "gru4rec")
    net.eval()
    x, real = left_padded([5], 20, d)
    short, short_real = x[:, -8:], real[:, -8:]
    assert torch.allclose(net(x, real)[:, -1], net(short, short_real)[:, -1], atol=1e-5)


def test_bert4rec_is_bidirectional(tiny_cfg):
    net, d = backbone(tiny_cfg, "bert4rec")
    net.eval()
    x, real = left_padded([20], 20, d)
    base = net(x, real)
    changed = x.clone()
    changed[:, -1] = torch.randn(d)
    assert not torch.allclose(net(changed, real)[:, 5], base[:, 5], atol=1e-5)


@pytest.mark.parametrize("kind", BACKBONES)
def test_user_states_from_histories(tiny_cfg, kind):
    cfg = tiny_cfg(f"backbone.kind={kind}")
    model = recommender(cfg, 30)
    model.eval()
    history = torch.tensor([[0] * 15 + [3, 4, 5, 6, 7], [0] * 19 + [9], [0] * 20])
    (state,) = model.user_states(history)
    assert state.shape == (3, cfg.backbone.hidden_size) and torch.isfinite(state).all()
    scores = model.score((state,))
    assert scores.shape == (3, 31) and torch.isfinite(scores).all()
    if kind != "bert4rec":
        (full,) = model.encode(history)
        assert torch.equal(state, full[:, -1])


@pytest.mark.parametrize("normalise", [False, True])
def test_mixture_with_expert_loss_matches_the_per_expert_computation(tiny_cfg, tiny_data, normalise):
    """Stage 3's ce with expert_loss (fused, core.losses.fused_catalogue_ce) must give the losses and gradients of
    scoring the mixture and every expert separately (the straightforward computation), for both mixes."""
    from core.engine import _OneExpert
    from core.losses import rec_loss
    from core.models.scorer import FrequencyGate

    cfg = tiny_cfg("stages.disentangle.windows=last")
    data = tiny_data
    torch.manual_seed(0)
    experts = {name: Expert(IDItems(data.n_items, cfg.backbone.hidden_size), build_backbone(cfg.backbone))
               for name in ("id", "text")}
    gate = FrequencyGate(["id", "text"], cfg.stages.disentangle.n_bins)
    with torch.no_grad():
        gate.logits.add_(torch.randn_like(gate.logits))
    model = SeqRecommender(experts, data.n_items, torch.from_numpy(data.item_bin), gate, normalise=normalise)
    windows, users = training_windows(data, cfg.backbone.max_len, "last")
    batch = make_batch(torch.from_numpy(windows[:32]), torch.from_numpy(users[:32]), model, cfg.stages.disentangle,
                       data, [], np.random.default_rng(0), cfg.backbone.mask_prob)
    model.eval()  # one dropout draw for both computations
    module = StageModule(model, "ce", None, expert_loss=0.7)
    losses = module(*batch)
    fast = torch.autograd.grad(losses["total"], list(model.parameters()))

    seq, targets, _, _ = batch
    pos = targets > 0
    selected = tuple(s[pos] for s in model.encode(seq))
    rec = rec_loss(model, selected, targets[pos], "ce")
    own = [rec_loss(_OneExpert(model, k), selected, targets[pos], "ce") for k in range(2)]
    total = rec + 0.7 * sum(own) / 2
    slow = torch.autograd.grad(total, list(model.parameters()))
    assert torch.allclose(losses["rec"], rec) and torch.allclose(losses["experts"], 0.7 * sum(own) / 2)
    assert own[0].item() != pytest.approx(own[1].item())  # the experts differ, so a mix-up would show
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_the_heldout_fit_caches_each_users_target_and_every_experts_top_items(tiny_cfg, tiny_data, monkeypatch):
    """The held-out fit ranks the target among every expert's top FIT_CANDIDATES items (history masked), each
    item once, with the experts' own scores at those items."""
    from types import SimpleNamespace

    from core import stages
    from core.engine import eval_inputs
    from core.models.scorer import FrequencyGate

    monkeypatch.setattr(stages, "FIT_CANDIDATES", 12)
    cfg, data = tiny_cfg(), tiny_data
    torch.manual_seed(0)
    experts = {name: Expert(IDItems(data.n_items, cfg.backbone.hidden_size), build_backbone(cfg.backbone))
               for name in ("id", "text")}
    model = SeqRecommender(experts, data.n_items, torch.from_numpy(data.item_bin),
                           FrequencyGate(["id", "text"], cfg.stages.disentangle.n_bins))
    fit = eval_inputs(data, cfg.backbone.max_len, "fit", 0.5)
    ctx = SimpleNamespace(cfg=cfg, accelerator=SimpleNamespace(device=torch.device("cpu")), eval_data=lambda s: fit)
    batches = stages.heldout_scores(ctx, model, torch.arange(len(fit["target"])))
    parts = [torch.cat([b[0][k] for b in batches]) for k in range(2)]
    target_col, drop, bins, items = (torch.cat([b[i] for b in batches]) for i in range(1, 5))
    model.eval()
    with torch.no_grad():
        full = [model.score(model.user_states(fit["history"]), only=k) for k in range(2)]
    assert items.shape == (len(fit["target"]), 1 + 2 * 12) and (target_col == 0).all()
    assert torch.equal(items[:, 0], fit["target"]) and not drop[:, 0].any()
    assert torch.equal(bins, model.item_bin[items])
    for u in range(len(items)):
        listed = items[u][~drop[u]].tolist()
        assert len(listed) == len(set(listed)) == len(set(items[u].tolist()))  # every item once
        history = set(fit["mask"][u].tolist()) - {0, int(fit["target"][u])}
        assert not history & set(listed)  # masked as evaluation masks it
        for k in range(2):
            assert torch.allclose(parts[k][u], full[k][u, items[u]])
            ranked = full[k][u].clone()
            ranked[0] = float("-inf")
            ranked[list(history)] = float("-inf")
            top = set(ranked.topk(12).indices.tolist())
            assert top <= set(listed)  # each expert's top items are all there


def test_logprob_mixing_ignores_an_experts_per_user_offset_and_slices_agree(tiny_cfg, tiny_data):
    """mix = "logprob": each expert's scores become log-probabilities before the gate mixes them, so adding a
    per-user constant to one expert's scores changes nothing (with raw scores and per-bin weights it changes
    the ranking across bins); scoring the catalogue in slices with `norms` gives the whole-catalogue scores."""
    from core.models.scorer import FrequencyGate

    cfg, data = tiny_cfg(), tiny_data
    torch.manual_seed(0)
    experts = {name: Expert(IDItems(data.n_items, cfg.backbone.hidden_size), build_backbone(cfg.backbone))
               for name in ("id", "text")}
    gate = FrequencyGate(["id", "text"], cfg.stages.disentangle.n_bins)
    with torch.no_grad():
        gate.logits.add_(3 * torch.randn_like(gate.logits))
    bins = torch.from_numpy(data.item_bin)
    model = SeqRecommender(experts, data.n_items, bins, gate, normalise=True).eval()
    raw = SeqRecommender(experts, data.n_items, bins, gate).eval()
    history = torch.from_numpy(training_windows(data, cfg.backbone.max_len, "last")[0][:8, 1:])
    with torch.no_grad():
        state = model.user_states(history)
        parts = [model.score(state, only=k) for k in range(2)]
        shifted = [parts[0] + 5 * torch.randn(len(parts[0]), 1), parts[1]]
        a = model.mix(model.log_probs(parts), model.item_bin)[:, 1:]
        b = model.mix(model.log_probs(shifted), model.item_bin)[:, 1:]
        assert torch.allclose(a, b, atol=1e-4)
        assert not torch.allclose(raw.mix(parts, raw.item_bin).argsort(1), raw.mix(shifted, raw.item_bin).argsort(1))
        whole = model.score(state)
        assert torch.allclose(whole[:, 1:], a, atol=1e-5)
        norms = model.norms(state)
        cut = data.n_items // 2
        sliced = torch.cat([model.score(state, start=0, stop=cut, norms=norms),
                            model.score(state, start=cut, norms=norms)], dim=1)
        assert torch.allclose(sliced, whole, atol=1e-5)
        some = torch.tensor([1, 3, cut])
        assert torch.allclose(model.score(state, some), whole[:, some], atol=1e-5)
        assert not torch.allclose(raw.score(state), whole)
