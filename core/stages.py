"""The three PAD stages: which model, which parameters train, which extra loss (DESIGN §3)."""

from __future__ import annotations

import copy

import torch

from core.engine import AlignmentLoss, Stage
from core.models import build_backbone
from core.models.items import AlignedItems, IDItems, LLMTable, TextItems
from core.models.scorer import Expert, FrequencyGate, SeqRecommender


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
    items = AlignedItems(base.items, LLMTable(ctx.llm_table()), ctx.cfg.backbone.hidden_size, a.adapter_layers, a.adapter_dropout)
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
    return Stage("align", model, _groups(list(model.parameters())), a, align=align)


def build_disentangle(ctx) -> Stage:
    dcfg, bb = ctx.cfg.stages.disentangle, ctx.cfg.backbone
    experts = {}
    for name in dcfg.experts:
        if name == "id":
            experts["id"] = ctx.trained("pretrain", pretrain_model(ctx)).expert("id")
        elif name == "aligned":
            experts["aligned"] = ctx.trained("align", aligned_model(ctx)).expert("aligned")
        else:
            llm = LLMTable(ctx.llm_table())
            experts["text"] = Expert(TextItems(llm, bb.hidden_size, dcfg.adapter_layers, dcfg.adapter_dropout),
                                     build_backbone(bb))
    gate = FrequencyGate(list(experts), ctx.data.n_bins, dcfg.frequency_aware, dcfg.gate_init_aligned)
    item_bin = torch.from_numpy(ctx.data.item_bin)
    model = SeqRecommender(experts, ctx.data.n_items, item_bin, gate)
    others = [p for n, p in model.named_parameters() if not n.startswith("gate.")]
    return Stage("disentangle", model, _groups(others, [gate.logits], dcfg.gate_lr), dcfg,
                 extras=lambda m: {"gate": m.gate.table()})


BUILDERS = {"pretrain": build_pretrain, "align": build_align, "disentangle": build_disentangle}

