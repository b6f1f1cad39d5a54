"""Stage-1 training speed per backbone × windows, and full-ranking evaluation throughput.

    python bench/speed.py                       # ML-100K, 1 warm-up + 2 timed epochs per row
    python bench/speed.py --epochs 3 --big-items 500000 --wait-quiet 600

Training runs through the engine itself (`core.engine.train_stage` with a `RunContext`, as core/pipeline.py
does) with loss `ce`, one row per backbone preset (sasrec / gru4rec / bert4rec) and windows `last` / `sliding`;
s/epoch is the train time of the timed epochs (mean and best) as the loop's own `epoch` events report it
(evaluation and checkpoints excluded). Evaluation is `core.engine.evaluate` on the 943 test users (history
masked), first on the ML-100K catalogue and then on a synthetic 200,000-item catalogue (a random item table of
that size behind the same backbone) scored in chunks of `eval.item_chunk` = 65,536. Ratios are against
SASRec-last of the same run. On a shared machine, rows during which another padtui / pytest / bench process was
seen (at the row's start or end) are starred; `--wait-quiet S` waits for them first. Nothing is written
outside a temporary folder; the dataset comes from the usual data cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from core.config import load_run_config  # noqa: E402
from core.data import load_data  # noqa: E402
from core.engine import EvalDataset, evaluate, train_stage  # noqa: E402
from core.models import build_backbone  # noqa: E402
from core.models.items import IDItems  # noqa: E402
from core.models.scorer import Expert, SeqRecommender  # noqa: E402
from core.pipeline import RunContext, make_accelerator  # noqa: E402
from core.run_writer import RunWriter  # noqa: E402
from core.stages import build_pretrain  # noqa: E402

BACKBONES = ("sasrec", "gru4rec", "bert4rec")
WINDOWS = ("last", "sliding")


def other_torch_jobs() -> list[str]:
    """Other padtui / pytest / bench processes: on a small machine they distort every number here."""
    try:
        out = subprocess.run(["pgrep", "-af", "padtui|pytest|bench/|accelerate"], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    me = {str(os.getpid()), str(os.getppid())}
    return [line for line in out.splitlines() if line.split(" ", 1)[0] not in me and "pgrep" not in line]


def wait_for_quiet(limit: float) -> list[str]:
    """Wait up to `limit` seconds for the other jobs to end; returns those still running."""
    deadline = time.monotonic() + limit
    busy = other_torch_jobs()
    while busy and time.monotonic() < deadline:
        time.sleep(5)
        busy = other_torch_jobs()
    return busy


def machine_line(device) -> str:
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return (f"machine: {os.cpu_count()} cores (torch threads {torch.get_num_threads()}), torch {torch.__version__}, "
            f"python {platform.python_version()}, device {name}")


def train_row(preset: str, kind: str, windows: str, warmup: int, epochs: int, extra: list[str], data,
              big_items: int | None) -> dict:
    """Run stage 1 through the engine for warmup + epochs epochs; time the last `epochs`. With `big_items`, also
    time the evaluation (trained model on the real catalogue, random one on `big_items` items)."""
    cfg = load_run_config(preset, [
        f"backbone={kind}", "stages.pretrain.loss=ce", f"stages.pretrain.windows={windows}",
        f"stages.pretrain.epochs={warmup + epochs}", f"stages.pretrain.patience={warmup + epochs + 1}", *extra,
    ])
    acc = make_accelerator(cfg)
    with tempfile.TemporaryDirectory(prefix="padtui-speed-") as tmp:
        run = RunWriter(Path(tmp) / "run")
        run.path.mkdir()
        ctx = RunContext(run, cfg, acc, data)
        stage = build_pretrain(ctx)
        result = train_stage(ctx, stage)
        events = run.events()
        start = next(e for e in events if e["kind"] == "stage_start")
        seconds = [e["seconds"] for e in events if e["kind"] == "epoch"][warmup:]
        eval_users_s = big = None
        if big_items:
            eval_users_s = eval_throughput(ctx, stage.model, repeats=5)
            big = big_catalogue_throughput(ctx, cfg, big_items, repeats=3)
    return {
        "backbone": kind, "windows": windows, "steps": start["steps_per_epoch"],
        "s_epoch": statistics.mean(seconds), "best": min(seconds), "s_epochs": seconds,
        "valid_ndcg": result["valid"]["overall"]["NDCG@10"], "eval": eval_users_s, "big": big,
    }


def _eval_loader(ctx):
    loader = DataLoader(EvalDataset(ctx.eval_data("test")), ctx.cfg.eval.batch_size)
    return ctx.accelerator.prepare_data_loader(loader)


def eval_throughput(ctx, model, repeats: int) -> float:
    """Users per second of `evaluate` (test split) after one warm-up call; median of `repeats`."""
    loader = _eval_loader(ctx)
    evaluate(ctx, model, loader)
    times = [evaluate(ctx, model, loader)[1] for _ in range(repeats)]
    return ctx.data.n_users / statistics.median(times)


def big_catalogue_throughput(ctx, cfg, n_items: int, repeats: int) -> dict:
    """The same evaluation against a random item table of `n_items` items (item_chunk = 65,536)."""
    torch.manual_seed(0)
    model = SeqRecommender({"id": Expert(IDItems(n_items, cfg.backbone.hidden_size), build_backbone(cfg.backbone))},
                           n_items).to(ctx.accelerator.device)
    bins = torch.randint(1, ctx.data.n_bins + 1, (n_items + 1,))
    bins[0] = 0
    eval_cfg = SimpleNamespace(**{**vars(cfg.eval), "item_chunk": 65536})
    big_ctx = SimpleNamespace(accelerator=ctx.accelerator, cfg=SimpleNamespace(eval=eval_cfg),
                              data=SimpleNamespace(n_bins=ctx.data.n_bins, n_users=ctx.data.n_users),
                              item_bin_dev=bins.to(ctx.accelerator.device), eval_data=ctx.eval_data)
    loader = _eval_loader(big_ctx)
    evaluate(big_ctx, model, loader)
    times = [evaluate(big_ctx, model, loader)[1] for _ in range(repeats)]
    return {"items": n_items, "chunk": 65536, "users_s": ctx.data.n_users / statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ml100k-sasrec-smollm2")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    parser.add_argument("--big-items", type=int, default=200_000)
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--windows", default=",".join(WINDOWS))
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each row, wait up to S seconds for other padtui / pytest / bench jobs to end")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    args = parser.parse_args()

    busy = other_torch_jobs()
    if busy:
        print("warning: other padtui / pytest / bench processes are running; numbers will be slower:", file=sys.stderr)
        for line in busy:
            print(f"  {line}", file=sys.stderr)

    base = load_run_config(args.preset, args.set)
    t0 = time.perf_counter()
    data = load_data(base.dataset, base.stages.disentangle.n_bins, log=lambda m: print(m, file=sys.stderr))
    load_s = time.perf_counter() - t0
    device = make_accelerator(base).device
    print(machine_line(device))
    print(f"data: {base.dataset.preset} — {data.n_users:,} users, {data.n_items:,} items, {len(data.items):,} "
          f"interactions (loaded in {load_s:.1f}s); stage 1, loss ce, batch {base.stages.pretrain.batch_size}, "
          f"max_len {base.backbone.max_len}; {args.warmup} warm-up + {args.epochs} timed epochs per row")

    rows = []
    for kind in args.backbones.split(","):
        for i, windows in enumerate(args.windows.split(",")):
            busy_before = wait_for_quiet(args.wait_quiet)
            t = time.perf_counter()
            big = args.big_items if i == 0 else None  # evaluation speed does not depend on the windows
            row = train_row(args.preset, kind, windows, args.warmup, args.epochs, args.set, data, big)
            row["busy"] = bool(busy_before or other_torch_jobs())
            rows.append(row)
            note = "  (machine busy)" if row["busy"] else ""
            print(f"  done {kind}/{windows} in {time.perf_counter() - t:.0f}s{note}", file=sys.stderr, flush=True)

    ref = next((r for r in rows if r["backbone"] == "sasrec" and r["windows"] == "last"), rows[0])
    timed = [r for r in rows if r["eval"] is not None]
    eref = next((r for r in timed if r["backbone"] == "sasrec"), timed[0])
    print()
    print("stage-1 training: s per epoch (mean and best of the timed epochs; × ref on the best)")
    header = (f"{'backbone':<9} {'windows':<8} {'steps/ep':>8} {'mean':>7} {'best':>7} {'× ref':>6}  {'epochs (s)':<16} "
              f"{'valid NDCG@10':>13}")
    print(header)
    print("-" * len(header))
    for r in rows:
        each = " ".join(f"{s:.2f}" for s in r["s_epochs"])
        print(f"{r['backbone']:<9} {r['windows']:<8} {r['steps']:>8} {r['s_epoch']:>7.2f} {r['best']:>7.2f} "
              f"{r['best'] / ref['best']:>6.2f}  {each:<16} {r['valid_ndcg']:>13.4f}" + (" *" if r["busy"] else ""))
    print()
    big_items = args.big_items
    print(f"full-ranking evaluation, {data.n_users} test users, history masked (users/s; × ref = vs SASRec)")
    header = (f"{'backbone':<9} {f'{data.n_items:,} items':>13} {'× ref':>6}   "
              f"{f'{big_items:,} items (chunk 65,536)':>28} {'× ref':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        if r["eval"] is None:
            continue
        print(f"{r['backbone']:<9} {r['eval']:>13,.0f} {r['eval'] / eref['eval']:>6.2f}   "
              f"{r['big']['users_s']:>28,.0f} {r['big']['users_s'] / eref['big']['users_s']:>6.2f}")
    if any(r["busy"] for r in rows):
        print("\n* another padtui / pytest / bench process ran during this row: its numbers are inflated")
    print(f"\nref = SASRec-last: {ref['best']:.2f} s/epoch (best), {eref['eval']:,.0f} users/s on {data.n_items:,} items, "
          f"{eref['big']['users_s']:,.0f} users/s on {big_items:,} items")


if __name__ == "__main__":
    main()
