"""The three PAD stages: which model, which parameters train, which extra loss (DESIGN §3)."""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from core.engine import AlignmentLoss, Stage
from core.models import build_backbone
from core.models.items import AlignedItems, IDItems, LLMTable, TextItems
from core.models.text_knn import RecentMean, UnitLLMItems
from core.models.scorer import BinCalibration, Expert, FrequencyGate, SeqRecommender


def _groups(params, no_decay=(), no_decay_lr: float | None = None) -> list[dict]:
    ids = {id(p) for p in no_decay}
    special = {"weight_decay": 0.0} | ({"lr": no_decay_lr} if no_decay_lr else {})
    groups = [
        {"params": [p for p in params if p.requires_grad and id(p) not in ids]},
        {"params": [p for p in no_decay if p.requires_grad], **special},
    ]
    return [g for g in groups if g["params"]]


def pretrain_model(ctx) -> SeqRecommender:
    d = ctx.cfg.backbone.hidden_size
    expert = Expert(IDItems(ctx.data.n_items, d), build_backbone(ctx.cfg.backbone))
    return SeqRecommender({"id": expert}, ctx.data.n_items)


def aligned_model(ctx) -> SeqRecommender:
    """E_al, f_al ← copies of stage 1's E_id, f_id; plus the adapter P1 and the fusion."""
    a = ctx.cfg.stages.align
    base = ctx.trained("pretrain", pretrain_model(ctx)).expert("id")
    base = copy.deepcopy(base)
    items = AlignedItems(base.items, LLMTable(ctx.llm_table()), ctx.cfg.backbone.hidden_size, a.adapter_layers,
                         a.adapter_dropout, a.fusion_init)
    return SeqRecommender({"aligned": Expert(items, base.backbone)}, ctx.data.n_items)


def build_pretrain(ctx) -> Stage:
    model = pretrain_model(ctx)
    return Stage("pretrain", model, _groups(list(model.parameters())), ctx.cfg.stages.pretrain)


def build_align(ctx) -> Stage:
    a = ctx.cfg.stages.align
    model = aligned_model(ctx)
    enc: AlignedItems = model.experts[0].items
    if a.freeze_id_copy:  # the paper-literal reading: only P1 and the fusion learn
        for p in model.parameters():
            p.requires_grad_(False)
        for p in list(enc.adapter.parameters()) + list(enc.fusion.parameters()):
            p.requires_grad_(True)
    align = AlignmentLoss(a.mmd_weight, a.objective, a.kernel, a.mmd_max_rows, a.infonce_temperature)
    return Stage("align", model, _groups(list(model.parameters())), a, align=align, rec_anchor=a.rec_anchor)


def build_disentangle(ctx) -> Stage:
    dcfg, bb = ctx.cfg.stages.disentangle, ctx.cfg.backbone
    experts = {}
    for name in dcfg.experts:
        if name == "id":
            experts["id"] = ctx.trained("pretrain", pretrain_model(ctx)).expert("id")
        elif name == "aligned":
            experts["aligned"] = ctx.trained("align", aligned_model(ctx)).expert("aligned")
        elif name == "text":
            llm = LLMTable(ctx.llm_table())
            experts["text"] = Expert(TextItems(llm, bb.hidden_size, dcfg.adapter_layers, dcfg.adapter_dropout),
                                     build_backbone(bb))
        else:
            experts["knn"] = Expert(UnitLLMItems(LLMTable(ctx.llm_table())), RecentMean(dcfg.knn_window))
    for name in dcfg.freeze:  # kept as the earlier stages trained them
        for p in experts[name].parameters():
            p.requires_grad_(False)
    gate = FrequencyGate(list(experts), ctx.data.n_bins, dcfg.frequency_aware, dcfg.gate_init_aligned)
    item_bin = torch.from_numpy(ctx.data.item_bin)
    model = SeqRecommender(experts, ctx.data.n_items, item_bin, gate)
    others = [p for n, p in model.named_parameters() if not n.startswith("gate.")]
    return Stage("disentangle", model, _groups(others, [gate.logits], dcfg.gate_lr), dcfg,
                 extras=lambda m: {"gate": m.gate.table()}, expert_loss=dcfg.expert_loss,
                 finish=fit_gate_on_heldout if dcfg.gate_fit == "heldout" else None)


FIT_CACHE_BYTES = 2 * 2**30  # the held-out fit caches every expert's float32 scores of its users


def fit_users_cap(wanted: int, n_experts: int, n_items: int) -> int:
    """How many fit users the held-out fit takes: `gate_fit_users` (0 = all), fewer when their cached scores
    would pass FIT_CACHE_BYTES (a 200,000-item catalogue), never fewer than 64."""
    by_memory = max(64, FIT_CACHE_BYTES // (4 * n_experts * (n_items + 1)))
    return min(wanted or by_memory, by_memory)


def fit_on_heldout(ctx, model: SeqRecommender, params: list[torch.Tensor]) -> list[float]:
    """Fit `params` alone (the experts fixed) on the fit split's next-item loss: softmax over the catalogue,
    history masked as in evaluation. Learned on data no expert was trained on and no model was selected on, as
    in stacking. The experts' scores of at most `gate_fit_users` fit users (a fixed draw) are computed once;
    each step only mixes them (`SeqRecommender.mix`), so a step costs an elementwise pass, not a forward pass.
    Full-batch Adam, deterministic; every process computes the same thing from the same data, so the
    parameters agree without communication. Returns the loss per step."""
    dcfg, ev = ctx.cfg.stages.disentangle, ctx.eval_data("fit")
    device, bs = ctx.accelerator.device, ctx.cfg.eval.batch_size
    rows = torch.arange(len(ev["target"]))
    cap = fit_users_cap(dcfg.gate_fit_users, len(model.names), model.n_items)
    if cap < dcfg.gate_fit_users and len(rows) > cap:
        ctx.log(f"held-out fit: {cap} of the fit split's users, so that the experts' cached scores stay under "
                f"{FIT_CACHE_BYTES / 2**30:.0f} GiB ({model.n_items:,} items × {len(model.names)} experts)")
    if len(rows) > cap:
        rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(7))[:cap]]
    bins = model.item_bin
    model.eval()
    with torch.no_grad():
        tables = [t.detach() for t in model.tables()]
        batches = []
        for i in range(0, len(rows), bs):
            take = rows[i:i + bs]
            target = ev["target"][take].to(device)
            states = model.user_states(ev["history"][take].to(device))
            parts = [model.score(states, tables=tables, only=k).float() for k in range(len(model.names))]
            drop = torch.zeros(len(target), model.n_items + 1, dtype=torch.bool, device=device)
            if ctx.cfg.eval.mask_history:  # items that must not compete: the history as evaluation masks it
                drop.scatter_(1, ev["mask"][take].to(device), True)
            drop[:, 0] = True
            drop[torch.arange(len(target), device=device), target] = False
            batches.append((parts, target, drop))
    n = len(rows)

    def loss_and_grad() -> float:
        total = 0.0
        for parts, target, drop in batches:
            scores = model.mix(parts, bins).masked_fill(drop, float("-inf"))
            loss = F.cross_entropy(scores, target, reduction="sum") / n
            loss.backward()
            total += float(loss.detach())
        return total

    optimizer = torch.optim.Adam(params, lr=0.05)
    losses = []
    for _ in range(dcfg.gate_fit_steps):
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss_and_grad())
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return losses


def calibrated_baseline(ctx) -> dict:
    """Stage 1's model with a per-bin scale and offset fitted on the fit split, evaluated like every stage: the
    "calibrated SR" row that PAD's held-out gate is compared with."""
    from core.engine import evaluate, eval_loader

    model = ctx.trained("pretrain", pretrain_model(ctx)).to(ctx.accelerator.device)
    for p in model.parameters():
        p.requires_grad_(False)
    model.calibration = BinCalibration(ctx.data.n_bins).to(ctx.accelerator.device)
    model.register_buffer("item_bin", torch.from_numpy(ctx.data.item_bin).long().to(ctx.accelerator.device),
                          persistent=False)
    losses = fit_on_heldout(ctx, model, list(model.calibration.parameters()))
    return {"valid": evaluate(ctx, model, eval_loader(ctx, "valid"))[0],
            "test": evaluate(ctx, model, eval_loader(ctx, "test"))[0],
            "calibration": model.calibration.table(), "fit_loss": [round(losses[0], 5), round(losses[-1], 5)]}


def fit_gate_on_heldout(ctx, model: SeqRecommender) -> dict:
    """After training, with the best weights loaded: re-fit the gate on the fit split, and fit the SR baseline's
    per-bin calibration on the same split for the comparison."""
    before = model.gate.table()
    losses = fit_on_heldout(ctx, model, [model.gate.logits])
    ctx.log(f"disentangle: gate re-fitted on the fit split ({len(losses)} steps): "
            f"loss {losses[0]:.4f} → {losses[-1]:.4f}")
    calibrated = calibrated_baseline(ctx)
    ctx.log(f"calibrated SR: per-bin scale and offset fitted on the fit split: loss {calibrated['fit_loss'][0]:.4f} "
            f"→ {calibrated['fit_loss'][1]:.4f}")
    return {"gate_trained": before, "gate_fit_loss": [round(losses[0], 5), round(losses[-1], 5)],
            "calibrated_sr": calibrated}


BUILDERS = {"pretrain": build_pretrain, "align": build_align, "disentangle": build_disentangle}

