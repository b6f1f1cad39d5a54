"""The three PAD stages: which model, which parameters train, which extra loss (DESIGN §3)."""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from core.engine import AlignmentLoss, Stage
from core.metrics import per_user
from core.models import build_backbone
from core.models.items import AlignedItems, IDItems, LLMTable, TextItems
from core.models.text_knn import RecentMean, UnitLLMItems
from core.models.scorer import BinCalibration, Expert, FrequencyGate, SeqRecommender
from core.runs import refit_line


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
    gate = FrequencyGate(list(experts), ctx.data.n_bins, dcfg.frequency_aware, dcfg.gate_init_aligned,
                         dcfg.gate_init_knn)
    item_bin = torch.from_numpy(ctx.data.item_bin)
    model = SeqRecommender(experts, ctx.data.n_items, item_bin, gate, normalise=dcfg.mix == "logprob")
    others = [p for n, p in model.named_parameters() if not n.startswith("gate.")]
    return Stage("disentangle", model, _groups(others, [gate.logits], dcfg.gate_lr), dcfg,
                 extras=lambda m: {"gate": m.gate.table()}, expert_loss=dcfg.expert_loss,
                 finish=fit_gate_on_heldout if dcfg.gate_fit == "heldout" else None)


FIT_CANDIDATES = 200  # per expert: the held-out fit ranks each user's target against every expert's top 200


def heldout_scores(ctx, model: SeqRecommender, rows: torch.Tensor) -> list[tuple]:
    """Every expert's scores of the given fit-split users on their *candidates*, computed once: the target, then
    each expert's top FIT_CANDIDATES items (history masked as evaluation masks it). NDCG@10 is decided among the
    items some expert ranks near the top, so the fit's softmax and ranking look there, not at the whole catalogue
    (which also makes a fit step cost users × candidates, not users × catalogue). Returns per batch
    (parts [B, C] per expert, target column [B] (always 0), drop [B, C] (repeats, padding), bins [B, C], items
    [B, C])."""
    ev, device, bs = ctx.eval_data("fit"), ctx.accelerator.device, ctx.cfg.eval.batch_size
    m = min(FIT_CANDIDATES, model.n_items)
    model.eval()
    batches = []
    with torch.no_grad():
        tables = [t.detach() for t in model.tables()]
        for i in range(0, len(rows), bs):
            take = rows[i:i + bs]
            target = ev["target"][take].to(device)
            states = model.user_states(ev["history"][take].to(device))
            full = model.log_probs([model.score(states, tables=tables, only=k).float()
                                    for k in range(len(model.names))])
            drop = torch.zeros(len(target), model.n_items + 1, dtype=torch.bool, device=device)
            if ctx.cfg.eval.mask_history:
                drop.scatter_(1, ev["mask"][take].to(device), True)
            drop[:, 0] = True
            drop[torch.arange(len(target), device=device), target] = False
            top = [p.masked_fill(drop, float("-inf")).topk(m, dim=1).indices for p in full]
            cand = torch.cat([target[:, None], *top], dim=1)
            order = cand.sort(dim=1, stable=True)
            repeat = torch.zeros_like(cand, dtype=torch.bool)  # a later copy of an item already listed
            repeat.scatter_(1, order.indices[:, 1:], order.values[:, 1:] == order.values[:, :-1])
            batches.append(([p.gather(1, cand) for p in full], torch.zeros_like(target),
                            drop.gather(1, cand) | repeat, model.item_bin[cand], cand))
    return batches


def _users(batches: list[tuple]) -> int:
    return sum(len(batch[1]) for batch in batches)


def _fit(model: SeqRecommender, params: list[torch.Tensor], batches: list[tuple], steps: int) -> list[float]:
    """Full-batch Adam on the cached scores' next-item loss (softmax over each user's candidates); only `params`
    move."""
    n = _users(batches)
    optimizer = torch.optim.Adam(params, lr=0.05)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for parts, target, drop, bins, _ in batches:
            scores = model.mix(parts, bins).masked_fill(drop, float("-inf"))
            loss = F.cross_entropy(scores, target, reduction="sum") / n
            loss.backward()
            total += float(loss.detach())
        losses.append(total)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return losses


@torch.no_grad()
def _ranks(model: SeqRecommender, batches: list[tuple]) -> torch.Tensor:
    """Each cached user's target rank under the mixed scores: among its candidates, history masked and ties
    against it, as evaluation ranks."""
    ranks = []
    for parts, target, drop, bins, _ in batches:
        scores = model.mix(parts, bins).masked_fill(drop, float("-inf"))
        ranks.append((scores >= scores.gather(1, target[:, None])).sum(1))  # 1 + others at or above: ties count against
    return torch.cat(ranks).cpu()


def fit_on_heldout(ctx, model: SeqRecommender, params: list[torch.Tensor],
                   floor: tuple[torch.Tensor, torch.Tensor] | None = None, cold_bin: int | None = None) -> dict:
    """Fit `params` alone (the experts fixed) on the fit split's next-item loss: softmax over each user's
    candidates (`heldout_scores`), history masked as in evaluation. Learned on data no expert was trained on and no model was selected on, as
    in stacking. The likelihood is not the ranking at the top, and a small fit split has little to learn from,
    so the re-fit is kept only as far as it earns its place: a 2-fold cross-validation on the fit split (fit on
    one half of its users, rank the other half, both ways) picks the step toward it (`checked_fit`,
    `gate_fit_tolerance`); step 0 leaves `params` as they came. Both folds and the final fit start from those
    values. `floor` (stage 1's metric for each user of the two halves, with `gate_fit_floor = "sr"`) changes
    the bar: a step must rank, out of fold, confidently at least as well as stage 1 (`confident_step`);
    `cold_bin` (`gate_fit_floor = "stage1"`: the last bin) adds the cold-bin bar and the answer "no step".

    The experts' scores of at most `gate_fit_users` fit users (a fixed draw) are computed once; each step only
    mixes them (`SeqRecommender.mix`), so a step costs an elementwise pass, not a forward pass. Full-batch Adam,
    deterministic; every process computes the same thing from the same data, so the parameters agree without
    communication. Returns the losses of the final fit (empty when it was not kept) and the check's numbers."""
    dcfg, ev = ctx.cfg.stages.disentangle, ctx.eval_data("fit")
    metric, ks = ctx.cfg.eval.select_metric, ctx.cfg.eval.ks
    rows = torch.arange(len(ev["target"]))
    cap = dcfg.gate_fit_users
    if cap and len(rows) > cap:
        rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(7))[:cap]]
    halves = heldout_scores(ctx, model, rows[0::2]), heldout_scores(ctx, model, rows[1::2])
    return checked_fit(model, params, halves, dcfg.gate_fit_steps, metric, ks, dcfg.gate_fit_check,
                       dcfg.gate_fit_tolerance, floor, cold_bin)


FIT_STEPS = tuple(i / 10 for i in range(11))  # how far the check may move from the trained values to the re-fit


def _move(params: list[torch.Tensor], start: list[torch.Tensor], fitted: list[torch.Tensor], step: float) -> None:
    with torch.no_grad():
        for p, a, b in zip(params, start, fitted):
            p.copy_(a + step * (b - a) if step else a)


def choose_step(out_of_fold: list[float], tolerance: float) -> float:
    """The largest step in FIT_STEPS whose out-of-fold metric beats (1 − tolerance) × step 0's (the trained
    values); 0 when none does."""
    bar = (1 - tolerance) * out_of_fold[0]
    return max((s for s, value in zip(FIT_STEPS, out_of_fold) if s and value > bar), default=0.0)


CONFIDENCE_Z = 1.645  # one-sided 95 %


def margin_over(values: torch.Tensor, floor: torch.Tensor) -> float:
    """The one-sided 95 % lower bound of the mean paired difference values − floor (one entry per user)."""
    d = (values - floor).double()
    spread = float(d.std()) / max(1, len(d)) ** 0.5 if len(d) > 1 else float("inf")
    return float(d.mean()) - CONFIDENCE_Z * spread


def confident_step(per_step: list[torch.Tensor], floor: torch.Tensor, tail: torch.Tensor | None = None,
                   fallback: bool = False) -> float | None:
    """The largest step in FIT_STEPS whose out-of-fold metric is, paired over the same users, at least stage 1's
    (`floor`) with one-sided 95 % confidence; 0 (the trained values) when none is. What stage 3 gained over
    stage 1 on the head may be spent on the tail, but only the part the fit split can vouch for: on a small
    fit split the spread is wide and the trained gate stays.

    `tail` (a mask of the users whose target is in the cold bin) adds a second bar: the step's mean over those
    users must be at least stage 1's. With `fallback` step 0 must pass both bars too, and None means that no
    step does (stage 3 gives way to stage 1)."""
    def passes(values: torch.Tensor) -> bool:
        if margin_over(values, floor) < 0:
            return False
        return tail is None or not bool(tail.any()) or float(values[tail].mean()) >= float(floor[tail].mean())

    steps = [s for s, values in zip(FIT_STEPS, per_step) if (s or fallback) and passes(values)]
    if fallback:
        return max(steps) if steps else None
    return max(steps, default=0.0)


def checked_fit(model: SeqRecommender, params: list[torch.Tensor], halves: tuple[list, list], steps: int,
                metric: str, ks: list[int], check: bool = True, tolerance: float = 0.0,
                floor: tuple[torch.Tensor, torch.Tensor] | None = None, cold_bin: int | None = None) -> dict:
    """`_fit` on both halves' cached scores, then decide how far to move `params` from their values as they came
    toward the re-fit: the largest step s in FIT_STEPS (0, 0.1, …, 1) whose out-of-fold selection metric (fit on
    one half, move by s, rank the other half; both ways) beats (1 − tolerance) × the metric as they came. With
    tolerance 0 a step must rank better than the trained values; with 0.01 it may cost up to 1 % of the metric,
    which buys the held-out fit's shift toward the tail (its likelihood is not the top-10 ranking, so the whole
    re-fit can cost more). With a `floor` (stage 1's metric for each user of halves 0 and 1) the step is
    `confident_step`'s instead; `cold_bin` (the cold bin's number) adds its cold-bin bar and lets it answer
    "no step": then `out["fallback"]` is set, `params` stay as they came and the caller gives way to stage 1.
    Step 0 leaves `params` bit-equal; without the check the whole re-fit is kept.
    `out["per user"]` holds the metric of each user of both halves as they came (for another fit's floor)."""
    every = halves[0] + halves[1]
    start = [p.detach().clone() for p in params]
    came = [per_user(_ranks(model, half), metric) for half in halves]
    as_came = float(torch.cat(came).mean()) if _users(every) else 0.0
    out = {"users": _users(every), f"{metric} as trained": round(as_came, 5), "per user": came}
    step = 1.0
    if check:
        per_step: list[list[torch.Tensor]] = [[] for _ in FIT_STEPS]
        for learn, judge in ((0, 1), (1, 0)):
            _fit(model, params, halves[learn], steps)
            fitted = [p.detach().clone() for p in params]
            for i, s in enumerate(FIT_STEPS):
                _move(params, start, fitted, s)
                per_step[i].append(per_user(_ranks(model, halves[judge]), metric))
            _move(params, start, fitted, 0.0)
        judged = [torch.cat(values) for values in per_step]  # users of half 1, then of half 0
        out_of_fold = [float(values.mean()) if len(values) else 0.0 for values in judged]
        if floor is None:
            step = choose_step(out_of_fold, tolerance)
        else:
            sr = torch.cat([floor[1], floor[0]])
            tail = None
            if cold_bin is not None:  # the users whose target is in the cold bin (judged order: half 1, then 0)
                tail = torch.cat([bins.gather(1, target[:, None])[:, 0] for half in (halves[1], halves[0])
                                  for _, target, _, bins, _ in half]).cpu() == cold_bin
                out["cold fit users"] = int(tail.sum())
                out[f"{metric} cold, stage 1"] = round(float(sr[tail].mean()), 5) if tail.any() else None
                out[f"{metric} cold by step, out of fold"] = {f"{s:g}": round(float(v[tail].mean()), 5)
                                                              if tail.any() else None
                                                              for s, v in zip(FIT_STEPS, judged)}
            chosen = confident_step(judged, sr, tail, fallback=cold_bin is not None)
            out["fallback"] = chosen is None
            step = chosen or 0.0
            out[f"{metric} stage 1 (floor)"] = round(float(sr.mean()), 5)
            out["confident margin over stage 1 by step"] = {f"{s:g}": round(margin_over(v, sr), 5)
                                                           for s, v in zip(FIT_STEPS, judged)}
        out[f"{metric} re-fit, out of fold"] = round(out_of_fold[-1], 5)
        out[f"{metric} at the step, out of fold"] = round(out_of_fold[FIT_STEPS.index(step)], 5)
        out["out of fold by step"] = {f"{s:g}": round(value, 5) for s, value in zip(FIT_STEPS, out_of_fold)}
        if floor is None:
            out["tolerance"] = tolerance
    out["step"] = step
    out["kept"] = step > 0
    if out["kept"]:
        out["losses"] = _fit(model, params, every, steps)
        if step < 1:
            _move(params, start, [p.detach().clone() for p in params], step)
    else:
        out["losses"] = []
    return out


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
    fit = fit_on_heldout(ctx, model, list(model.calibration.parameters()))
    return {"valid": evaluate(ctx, model, eval_loader(ctx, "valid"))[0],
            "test": evaluate(ctx, model, eval_loader(ctx, "test"))[0],
            "calibration": model.calibration.table(), "fit": _summary(fit), "per user": fit["per user"]}


def _summary(fit: dict) -> dict:
    out = {k: v for k, v in fit.items() if k not in ("losses", "per user")}
    if fit["losses"]:
        out["loss"] = [round(fit["losses"][0], 5), round(fit["losses"][-1], 5)]
    return out


def fit_gate_on_heldout(ctx, model: SeqRecommender) -> dict:
    """After training, with the best weights loaded: re-fit the gate on the fit split, and fit the SR baseline's
    per-bin calibration on the same split for the comparison. With `gate_fit_floor = "stage1"`, when no step
    passes the check, stage 3 gives way to stage 1 (`give_way_to_stage1`)."""
    before = model.gate.table()
    calibrated = calibrated_baseline(ctx)
    ctx.log(refit_line("calibrated SR: per-bin scale and offset", calibrated["fit"]))
    sr_users = calibrated.pop("per user")  # stage 1 as trained, each fit user of the two halves
    rule = ctx.cfg.stages.disentangle.gate_fit_floor
    floor = sr_users if rule in ("sr", "stage1") else None
    cold_bin = ctx.data.n_bins if rule == "stage1" else None
    fit = _summary(fit_on_heldout(ctx, model, [model.gate.logits], floor, cold_bin))
    if fit.get("fallback"):
        give_way_to_stage1(ctx, model)
    ctx.log(refit_line("disentangle: gate", fit))
    return {"gate_trained": before, "gate_fit": fit, "calibrated_sr": calibrated}


SURE = 1e4  # a gate logit whose sigmoid is exactly 1 (or 0 when negated) in float32


def give_way_to_stage1(ctx, model: SeqRecommender) -> None:
    """Make the mixture rank as stage 1 does: the ID expert gets stage 1's weights back and the whole gate in
    every bin (the other experts' weights are exactly 0, so the mixed score is the ID expert's own score, or
    its log-probability with `mix = "logprob"`, a per-user shift that leaves the ranking as it was)."""
    stage1 = ctx.trained("pretrain", pretrain_model(ctx)).expert("id")
    model.expert("id").load_state_dict(stage1.state_dict())
    with torch.no_grad():
        model.gate.logits.fill_(-SURE)
        model.gate.logits[model.gate.experts.index("id")] = SURE


BUILDERS = {"pretrain": build_pretrain, "align": build_align, "disentangle": build_disentangle}

