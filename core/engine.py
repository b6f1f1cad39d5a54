"""The one training loop every PAD stage runs through.

build → prepare with the Accelerator → for epoch: train, evaluate, checkpoint, early-stop → test with the
best-validation weights. Stages differ only in the `Stage` they hand in (model, trainable parameters, extra
loss). Checkpoints: `checkpoints/<stage>/best.safetensors` (weights of the best validation epoch) and
`checkpoints/<stage>/last/` (Accelerate `save_state`: model, optimizer, RNG; plus trainer.json with the
epoch / step / early-stopping state), written to a temp folder and swapped in, so a kill at any moment leaves
a checkpoint that resume can use. Each step seeds its own randomness from (seed, epoch, step), and the data
order of an epoch is fixed by (seed, epoch): a resumed run continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.config import StageConfig
from core.data import SeqData
from core.errors import Interrupted, RunFailure, first_line
from core.losses import fused_catalogue_ce, info_nce, mk_mmd, rec_loss, sample_negatives
from core.metrics import grouped_metrics, target_ranks
from core.models.scorer import SeqRecommender
from core.atomic import atomic_write_file, atomic_write_json

STAGE_INDEX = {"pretrain": 1, "align": 2, "disentangle": 3}


# ───────────────────────────── data ─────────────────────────────


def left_pad(seqs: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for row, s in enumerate(seqs):
        s = s[-length:]
        if len(s):
            out[row, length - len(s):] = s
    return out


def training_windows(data: SeqData, max_len: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Windows of max_len + 1 items from each user's training part: input = w[:-1], targets = w[1:].
    `last`: one window per user (the most recent items); `sliding`: the whole training part, cut from the
    end into windows that overlap by one item, so every training position is a target once."""
    windows, users = [], []
    for u in range(data.n_users):
        train = data.train_part(u)
        if len(train) < 2:
            continue
        if mode == "last":
            windows.append(train[-(max_len + 1):])
            users.append(u)
            continue
        end = len(train)
        while end > 1:
            start = max(0, end - max_len - 1)
            windows.append(train[start:end])
            users.append(u)
            end = start + 1
    return left_pad(windows, max_len + 1), np.asarray(users, dtype=np.int64)


class WindowDataset(Dataset):
    """Windows in an order fixed by (seed, stage, epoch): the data order is reproducible after resume.

    The method is deliberately not called `set_epoch`: Accelerate's loaders call `dataset.set_epoch(n)` with
    their own count of iterations, which starts again at 0 in a resumed process (and in `skip_first_batches`'
    copy of the loader), so they would replay epoch 1's order."""

    def __init__(self, windows: np.ndarray, users: np.ndarray, seed: int):
        self.windows = torch.from_numpy(windows)
        self.users = torch.from_numpy(users)
        self.seed = seed
        self.order = torch.arange(len(windows))

    def order_for_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        self.order = torch.randperm(len(self.windows), generator=g)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int):
        j = self.order[i]
        return self.windows[j], self.users[j]


def fit_users(n_users: int, share: float) -> np.ndarray:
    """Boolean [n_users]: the users whose validation item forms the fit split. A fixed draw over user ids (not
    the run's seed), so every run and every stage of a dataset carves the same users."""
    chosen = np.zeros(n_users, dtype=bool)
    chosen[np.random.default_rng(20250713).permutation(n_users)[: int(round(share * n_users))]] = True
    return chosen


def eval_inputs(data: SeqData, max_len: int, split: str, fit_share: float = 0.0) -> dict[str, torch.Tensor]:
    """valid: history = training part, target = second-last item, for the users outside the fit split (they
    select models); fit: the same for the fit split's users (held-out fitting only); test: every user,
    history += the validation item."""
    drop = 0 if split == "test" else 1
    users = np.arange(data.n_users)
    if split != "test":
        carved = fit_users(data.n_users, fit_share)
        users = users[carved] if split == "fit" else users[~carved]
    hist = [data.items[data.offsets[u]: data.offsets[u + 1] - 1 - drop] for u in users]
    targets = (data.test_targets if split == "test" else data.valid_targets)[users]
    return {
        "history": torch.from_numpy(left_pad(hist, max_len)),
        "mask": torch.from_numpy(left_pad(hist, max(len(h) for h in hist))),
        "target": torch.from_numpy(targets.astype(np.int64)),
        "users": torch.from_numpy(users),
    }


class EvalDataset(Dataset):
    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.t = tensors

    def __len__(self) -> int:
        return len(self.t["target"])

    def __getitem__(self, i: int):
        return self.t["history"][i], self.t["mask"][i], self.t["target"][i]


# ───────────────────────────── stage ─────────────────────────────


@dataclass
class Stage:
    """What a stage hands the loop: the model, its trainable parameter groups, an optional alignment loss."""

    name: str
    model: SeqRecommender
    param_groups: list[dict]
    cfg: StageConfig
    align: nn.Module | None = None
    extras: Callable[[SeqRecommender], dict] | None = None  # extra numbers for eval events (gate weights)
    expert_loss: float = 0.0  # weight of a mixture's experts' own L_rec (stage 3)
    rec_anchor: bool = True  # false: L_rec is logged but does not train (stage 2 with the alignment term alone)
    # after training, with the best weights loaded: adjusts them (the gate re-fit) and returns numbers to keep
    finish: Callable[[Any, SeqRecommender], dict] | None = None


class AlignmentLoss(nn.Module):
    """λ · MK-MMD (or InfoNCE) between P1(x_i) and E_al[i] over the batch's non-padding item tokens."""

    def __init__(self, weight: float, objective: str, kernel: str, max_rows: int, temperature: float):
        super().__init__()
        self.weight, self.objective, self.kernel = weight, objective, kernel
        self.max_rows, self.temperature = max_rows, temperature

    def forward(self, model: SeqRecommender, seq: torch.Tensor) -> torch.Tensor:
        items = seq[seq > 0]
        if self.objective == "infonce":
            items = torch.unique(items)
        if len(items) > self.max_rows:
            items = items[torch.randperm(len(items), device=items.device)[: self.max_rows]]
        enc = model.experts[0].items
        source, target = enc.text_vectors(items), enc.ids(items)
        if self.objective == "infonce":
            return self.weight * info_nce(source, target, self.temperature)
        return self.weight * mk_mmd(source, target, self.kernel)


class _OneExpert:
    """One expert of a mixture, scored on its own (for the per-expert loss)."""

    def __init__(self, model: SeqRecommender, k: int):
        self.model, self.k = model, k

    def score(self, state, items=None, tables=None):
        return self.model.score(state, items, tables=tables, only=self.k)


class StageModule(nn.Module):
    """Wraps the recommender so that the whole loss is computed in `forward` (what DDP synchronises)."""

    def __init__(self, model: SeqRecommender, loss: str, align: nn.Module | None, expert_loss: float = 0.0,
                 rec_anchor: bool = True):
        super().__init__()
        self.model = model
        self.loss = loss
        self.align = align
        self.expert_loss = expert_loss
        self.rec_anchor = rec_anchor

    def forward(self, seq, targets, masked, negatives):
        masked = masked if masked.numel() else None
        pos = targets > 0
        negs = negatives[pos] if negatives.dim() == 2 else negatives
        # ce scores the whole catalogue: each expert's item table is built once a step (an LLM-side table costs
        # an adapter pass over every item), and the loss is computed fused (core.losses.fused_catalogue_ce)
        tables = self.model.tables() if self.loss == "ce" else None
        own_too = self.expert_loss > 0 and self.model.gate is not None
        fused = None
        if self.loss == "ce" and self.model.calibration is None and self.rec_anchor:
            states, scales = self.model.encode_factored(seq, masked)
            selected = tuple(s[pos] for s in states)
            gated = self.model.gate is not None and len(tables) > 1
            weights = self.model.gate.for_items(self.model.item_bin) if gated else None
            fused, rec, own = fused_catalogue_ce(selected, tables, targets[pos], weights,
                                                 self.model.normalise and gated,
                                                 self.expert_loss if own_too else 0.0, scales=scales)
            losses = {"rec": rec} | ({"experts": self.expert_loss * own} if own_too else {})
        else:
            selected = tuple(s[pos] for s in self.model.encode(seq, masked))
            losses = {"rec": rec_loss(self.model, selected, targets[pos], self.loss, negs, tables)}
            own = [rec_loss(_OneExpert(self.model, k), selected, targets[pos], self.loss, negs, tables)
                   for k in range(len(self.model.names))] if own_too else []
            if own:
                losses["experts"] = self.expert_loss * sum(own) / len(own)
        if self.align is not None and self.align.weight > 0:
            losses["mmd" if self.align.objective == "mmd" else "infonce"] = self.align(self.model, seq)
        # without the anchor (ablation) L_rec is still logged, but only the alignment term trains
        if fused is not None:  # rec and experts are in it (they are only logged)
            losses["total"] = fused + sum(v for k, v in losses.items() if k not in ("rec", "experts"))
        else:
            losses["total"] = sum(v for k, v in losses.items() if k != "rec" or self.rec_anchor)
        return losses


def make_batch(windows: torch.Tensor, users: torch.Tensor, model: SeqRecommender, cfg: StageConfig,
               data: SeqData, user_items: list[np.ndarray], rng: np.random.Generator, mask_prob: float):
    """Inputs, targets (0 = no target), cloze mask (BERT4Rec) and negatives for one batch."""
    if model.causal:
        seq, targets = windows[:, :-1], windows[:, 1:].clone()
        targets[seq == 0] = 0
        masked = torch.zeros(0, dtype=torch.bool)
    else:
        items = windows[:, 1:]
        real = items > 0
        masked = torch.from_numpy(rng.random(items.shape) < mask_prob) & real
        none = ~masked.any(dim=1)
        masked[none, -1] = real[none, -1]
        targets = torch.where(masked, items, torch.zeros_like(items))
        seq = items.masked_fill(masked, 0)
    if cfg.loss == "bce":
        negatives = torch.from_numpy(sample_negatives(rng, data.n_items, users.numpy(), tuple(targets.shape), user_items))
    elif cfg.loss == "sampled_softmax":
        negatives = torch.from_numpy(rng.integers(1, data.n_items + 1, size=min(cfg.n_negatives, data.n_items)))
    else:
        negatives = torch.zeros(0, dtype=torch.long)
    return seq, targets, masked, negatives


# ───────────────────────────── evaluation ─────────────────────────────


def eval_loader(ctx, split: str) -> DataLoader:
    return ctx.accelerator.prepare_data_loader(DataLoader(EvalDataset(ctx.eval_data(split)), ctx.cfg.eval.batch_size))


@torch.no_grad()
def evaluate(ctx, model: SeqRecommender, loader: DataLoader, only: int | None = None) -> tuple[dict, float]:
    """Full-ranking metrics of the (unwrapped) model on a prepared eval loader; `only=k`: expert k on its own."""
    metrics, seconds = evaluate_views(ctx, model, loader, [only])
    return metrics[0], seconds


@torch.no_grad()
def evaluate_views(ctx, model: SeqRecommender, loader: DataLoader, views: list[int | None]
                   ) -> tuple[list[dict], float]:
    """Full-ranking metrics of several views of one model in one pass over the loader: None = the model's final
    score, k = expert k on its own. When the catalogue fits in one `eval.item_chunk`, each batch's experts score
    the whole catalogue once (`SeqRecommender.whole_scores`) and every view ranks from those products; otherwise
    each view scores the catalogue in slices."""
    t0 = time.perf_counter()
    model.eval()
    acc, chunk, n = ctx.accelerator, ctx.cfg.eval.item_chunk, model.n_items
    whole = n + 1 <= chunk
    ranks_by_view = [[] for _ in views]
    all_bins = []
    with acc.autocast():
        tables = model.tables()
        for history, mask, target in loader:
            state = model.user_states(history)
            history_mask = mask if ctx.cfg.eval.mask_history else None
            if whole:
                final, parts = model.whole_scores(state, tables, final=None in views)
            for v, only in enumerate(views):
                if whole:
                    scores = final if only is None else parts[only]
                    target_scores = scores.gather(1, target[:, None])[:, 0]
                    score_fn = lambda a, b, scores=scores: scores[:, a:b]  # noqa: E731
                else:
                    norms = model.norms(state, tables) if only is None else None  # once per batch, not per slice
                    target_scores = model.score(state, target[:, None], tables=tables, only=only, norms=norms)[:, 0]
                    score_fn = lambda a, b, only=only, norms=norms: model.score(  # noqa: E731
                        state, tables=tables, start=a, stop=b, only=only, norms=norms)
                ranks = target_ranks(score_fn, target_scores, target, history_mask, n, chunk)
                ranks_by_view[v].append(acc.gather_for_metrics(ranks).cpu())
            all_bins.append(acc.gather_for_metrics(ctx.item_bin_dev[target]).cpu())
    bins = torch.cat(all_bins)
    metrics = [grouped_metrics(torch.cat(ranks), bins, ctx.data.n_bins, ctx.cfg.eval.ks) for ranks in ranks_by_view]
    return metrics, time.perf_counter() - t0


# ───────────────────────────── checkpoints ─────────────────────────────


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def save_last(ctx, folder: Path, state: dict) -> None:
    """Model, optimizer and RNG (Accelerate `save_state`) plus trainer.json, into a temp folder swapped in at
    the end: a crash or a full disk mid-save leaves the previous checkpoint as it was."""
    acc = ctx.accelerator
    tmp = folder.with_name(folder.name + ".tmp")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    try:
        acc.save_state(str(tmp))
        acc.wait_for_everyone()  # each process writes its own RNG state into tmp: all of them before the swap
        if acc.is_main_process:
            atomic_write_json(tmp / "trainer.json", state)
            _swap_in(tmp, folder)
    except BaseException:  # a full disk (torch and safetensors wrap the OSError), a second Ctrl-C
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    acc.wait_for_everyone()


def load_last(ctx, folder: Path, state: dict) -> Path | None:
    """Load the stage's last checkpoint into the prepared objects and `state`; a damaged one (truncated file,
    bad JSON) falls back to the previous one (`last.old`, kept by a crash mid-swap) with a warning, or else is a
    RunFailure that names the file and what to delete."""
    candidates = [c for c in (folder, folder.with_name(folder.name + ".old")) if (c / "trainer.json").is_file()]
    problems = []
    for cand in candidates:
        try:
            trainer = json.loads((cand / "trainer.json").read_text())
            ctx.accelerator.load_state(str(cand))
        except Exception as exc:  # noqa: BLE001 — SafetensorError, pickle / zip errors, JSON, OSError
            problems.append(f"{cand}: {type(exc).__name__}: {first_line(exc, 160)}")
            ctx.log(f"warning: checkpoint {cand} is unreadable ({problems[-1]})")
            continue
        if problems:
            ctx.log(f"warning: resuming from the previous checkpoint {cand} instead")
        state.update(trainer)
        return cand
    if problems:
        raise RunFailure(f"the last checkpoint of this stage is damaged ({'; '.join(problems)}). Delete "
                         f"{folder} (and {folder.name}.old if present) and `padtui resume` again: the stage starts "
                         f"over, the earlier stages are kept.", log=str(ctx.run.log_path))
    return None


def save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_file(path, lambda tmp: save_file(state, str(tmp)))


def load_weights(model: nn.Module, path: Path) -> None:
    try:
        saved = load_file(str(path))
    except FileNotFoundError:
        raise RunFailure(f"{path}: checkpoint missing; run the earlier stage first (`padtui resume` does).") from None
    except Exception as exc:  # noqa: BLE001 — a truncated or overwritten file (SafetensorError, OSError)
        stage = path.parent.name
        raise RunFailure(
            f"{path}: the checkpoint is damaged ({type(exc).__name__}: {first_line(exc, 160)}). Delete the folder "
            f"{path.parent} and `padtui resume` the run: stage '{stage}' (and the stages after it) train again, "
            f"the stages before it are kept.") from None
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in saved] + [f"unexpected {k}" for k in saved if k not in own]
    problems += [f"{k} has shape {tuple(v.shape)}, the model {tuple(own[k].shape)}"
                 for k, v in saved.items() if k in own and v.shape != own[k].shape]
    if problems:  # another padtui version or another config wrote it
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise RunFailure(
            f"{path}: checkpoint does not fit the model built from this run's config.toml ({'; '.join(problems[:3])}"
            f"{more}). It was probably written by another padtui version; start a new run."
        )
    model.load_state_dict(saved)


# ───────────────────────────── the loop ─────────────────────────────


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or an allocator's RuntimeError that says so (CPU, MPS)."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and any(s in str(exc) for s in ("out of memory", "can't allocate memory"))
    )


@dataclass
class Progress:
    losses: dict = field(default_factory=dict)
    count: int = 0

    def add(self, losses: dict) -> None:
        for k, v in losses.items():
            self.losses[k] = self.losses.get(k, 0.0) + float(v)
        self.count += 1

    def mean(self) -> dict:
        return {k: v / max(1, self.count) for k, v in self.losses.items()}


def train_stage(ctx, stage: Stage) -> dict:
    cfg, acc, data, run = stage.cfg, ctx.accelerator, ctx.data, ctx.run
    folder = run.checkpoints / stage.name
    folder.mkdir(parents=True, exist_ok=True)
    seed = ctx.cfg.seed * 10 + STAGE_INDEX[stage.name]
    windows, users = training_windows(data, ctx.cfg.backbone.max_len, cfg.windows)
    dataset = WindowDataset(windows, users, seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, drop_last=False)
    optimizer = torch.optim.AdamW(stage.param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    module = StageModule(stage.model, cfg.loss, stage.align, stage.expert_loss, stage.rec_anchor)
    module, optimizer, loader = acc.prepare(module, optimizer, loader)
    model: SeqRecommender = acc.unwrap_model(module).model
    valid_loader = eval_loader(ctx, "valid")

    state = {"epoch": 0, "step": 0, "batch_size": cfg.batch_size, "best": None, "best_epoch": 0, "bad_epochs": 0,
             "train_seconds": 0.0, "eval_seconds": 0.0, "history": []}
    last = load_last(ctx, folder / "last", state)
    if last is not None:
        if state["batch_size"] != cfg.batch_size:  # auto_batch halved it: same samples seen, more steps
            state.update(step=state["step"] * state["batch_size"] // cfg.batch_size, batch_size=cfg.batch_size)
        ctx.emit("resumed", stage.name, epoch=state["epoch"] + 1, step=state["step"])
        ctx.log(f"{stage.name}: resumed at epoch {state['epoch'] + 1}, step {state['step']}")

    steps_per_epoch = len(loader)
    ctx.emit("stage_start", stage.name, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
             start_epoch=state["epoch"] + 1, trainable=sum(p.numel() for g in stage.param_groups for p in g["params"]))
    metric = ctx.cfg.eval.select_metric
    stage_t0 = time.perf_counter() - state["train_seconds"] - state["eval_seconds"]
    mask_prob = ctx.cfg.backbone.mask_prob
    stopped_early = False

    for epoch in range(state["epoch"], cfg.epochs):
        if state["bad_epochs"] >= cfg.patience:
            stopped_early = True
            break
        module.train()
        dataset.order_for_epoch(epoch)
        skip = state["step"]
        epoch_loader = acc.skip_first_batches(loader, skip) if skip else loader
        progress = Progress()
        t0 = time.perf_counter()
        for step, (win, usr) in enumerate(epoch_loader, start=skip + 1):
            # all of a step's randomness (negatives, cloze masks, dropout, MMD rows) comes from (seed, epoch,
            # step): a run resumed from any checkpoint draws exactly what the uninterrupted run drew
            rng = np.random.default_rng([seed, epoch, step, acc.process_index])
            torch.manual_seed(int(rng.integers(2**63)))
            batch = make_batch(win.cpu(), usr.cpu(), model, cfg, data, ctx.user_items, rng, mask_prob)
            batch = [t.to(acc.device) for t in batch]
            with acc.autocast():
                losses = module(*batch)
            total = losses["total"]
            if not torch.isfinite(total):
                bad = next(k for k, v in losses.items() if not torch.isfinite(v))
                raise RunFailure(
                    f"stage '{stage.name}', epoch {epoch + 1}, step {step}: loss component '{bad}' is "
                    f"{float(losses[bad].detach())}. The checkpoints written before it stay in {folder} (best "
                    f"epoch so far: {state['best_epoch'] or 'none'}). Lower stages.{stage.name}.lr (now {cfg.lr:g}) "
                    f"or check the data."
                )
            acc.backward(total / cfg.grad_accum)
            boundary = step % cfg.grad_accum == 0 or step == steps_per_epoch  # no gradients pending
            if boundary:
                if cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            progress.add({k: v.detach() for k, v in losses.items()})
            state["step"] = step
            if step % ctx.cfg.train.log_every_steps == 0 or step == steps_per_epoch:
                elapsed = time.perf_counter() - stage_t0
                done = (epoch - 0) * steps_per_epoch + step
                rate = (time.perf_counter() - t0) / max(1, step - skip)
                ctx.emit("step", stage.name, epoch=epoch + 1, step=step, steps_per_epoch=steps_per_epoch,
                         global_step=done, losses=progress.mean(), lr=cfg.lr, seconds=elapsed,
                         eta=rate * ((cfg.epochs - epoch) * steps_per_epoch - step), **ctx.resources())
            every = ctx.cfg.train.checkpoint_every_steps
            if boundary and (ctx.stop_requested or (every and step % every == 0 and step < steps_per_epoch)):
                state["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                save_last(ctx, folder / "last", state)
                ctx.emit("checkpoint", stage.name, epoch=epoch + 1, step=step, path=str(folder / "last"), best=False)
                if ctx.stop_requested:
                    raise Interrupted(f"stopped in stage '{stage.name}', epoch {epoch + 1}, step {step}")
        train_seconds = time.perf_counter() - t0
        state["train_seconds"] += train_seconds
        ctx.emit("epoch", stage.name, epoch=epoch + 1, losses=progress.mean(), seconds=train_seconds)

        metrics, eval_seconds = evaluate(ctx, model, valid_loader)
        state["eval_seconds"] += eval_seconds
        value = metrics["overall"][metric]
        improved = state["best"] is None or value > state["best"]
        extras = stage.extras(model) if stage.extras else {}
        ctx.emit("eval", stage.name, epoch=epoch + 1, split="valid", metrics=metrics, seconds=eval_seconds,
                 best=improved, **extras)
        ctx.log(f"{stage.name} epoch {epoch + 1}: loss {progress.mean().get('total', 0):.4f}  valid {metric} "
                f"{value:.4f} (cold {metrics['cold'][metric]:.4f})  {train_seconds:.1f}s + eval {eval_seconds:.2f}s")
        if improved:
            state.update(best=value, best_epoch=epoch + 1, bad_epochs=0, best_valid=metrics)
            if acc.is_main_process:
                save_weights(model, folder / "best.safetensors")
        else:
            state["bad_epochs"] += 1
        state["history"].append({"epoch": epoch + 1, metric: value})
        state.update(epoch=epoch + 1, step=0)
        save_last(ctx, folder / "last", state)
        ctx.emit("checkpoint", stage.name, epoch=epoch + 1, path=str(folder / "last"), best=improved)
        if ctx.stop_requested:
            raise Interrupted(f"stopped in stage '{stage.name}' after epoch {epoch + 1}")

    # test with the best-validation weights
    acc.wait_for_everyone()
    load_weights(model, folder / "best.safetensors")
    if stage.finish is not None and "finished" not in state:
        # the adjusted weights replace best.safetensors before the state says so: a crash in between re-runs
        # the adjustment from the adjusted weights, which a re-fit on the same data leaves where it is
        state["finished"] = stage.finish(ctx, model)
        state.pop("best_valid", None)  # the adjusted weights are ranked below, with the experts, in one pass
        if acc.is_main_process:
            save_weights(model, folder / "best.safetensors")
        save_last(ctx, folder / "last", state)
    # the best epoch's validation metrics are those of these weights (evaluation is deterministic): reuse them
    # rather than ranking the whole catalogue again (a checkpoint from an older version may lack them). A
    # mixture's experts are also ranked each on its own, on both splits, in the same pass as the mixture: how
    # much of the tail each one keeps (valid is what a choice may look at)
    names = model.names if len(model.names) > 1 else []  # a mixture's experts, each also ranked on its own
    views = [None, *range(len(names))]
    test_loader = eval_loader(ctx, "test")
    if names or not state.get("best_valid"):
        (valid, *experts_valid), _ = evaluate_views(ctx, model, valid_loader, views)
    else:
        valid, experts_valid = state["best_valid"], []
    (test, *experts_test), test_seconds = evaluate_views(ctx, model, test_loader, views)
    experts = {"valid": dict(zip(names, experts_valid)), "test": dict(zip(names, experts_test))} if names else {}
    result = {
        "valid": valid, "test": test, "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "seconds": time.perf_counter() - stage_t0, "train_seconds": state["train_seconds"],
        "eval_seconds": state["eval_seconds"] + test_seconds, "stopped_early": stopped_early or state["bad_epochs"] >= cfg.patience,
    }
    for split, ranked in experts.items():
        result[f"experts_{split}"] = ranked
    if stage.extras:
        result.update(stage.extras(model))
    result.update(state.get("finished") or {})
    ctx.emit("stage_end", stage.name, best_epoch=state["best_epoch"], valid=valid, test=test,
             seconds=result["seconds"], status="done", **({"gate": result["gate"]} if "gate" in result else {}))
    acc.free_memory()
    return result
