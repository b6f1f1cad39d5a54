"""Evaluation of a finished stage-3 run: the mixture and each expert ranked in one pass over the catalogue
(`core.engine.evaluate_views`, what the engine does at the end of stage 3) against one view at a time in
slices (how it ranked before; `eval.item_chunk` set below the catalogue's size forces the sliced path).

    python bench/eval_views.py RUN [--split valid] [--repeats 1]

RUN is a run folder whose stage 3 finished (a mixture). The run is not written to: its config and checkpoints
are copied into a temporary run. Prints seconds per row, the ratio against the sliced baseline of the same run,
and each view's metric by both paths (they may differ in the last digits: the sliced path
scores the target apart from the catalogue, so a float tie at the target's score can fall either way).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import load_saved_config  # noqa: E402
from core.data import load_data  # noqa: E402
from core.engine import eval_loader, evaluate, evaluate_views, load_weights  # noqa: E402
from core.pipeline import RunContext, StopSignal, create_run, make_accelerator  # noqa: E402
from core.run_writer import RunWriter  # noqa: E402
from core.runs import RunFolder  # noqa: E402
from core.stages import build_disentangle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    source = RunFolder(args.run)
    best = source.checkpoints / "disentangle" / "best.safetensors"
    if not best.is_file():
        sys.exit(f"{args.run}: no finished stage 3 ({best} is missing); give a run whose stage 3 finished.")
    cfg = load_saved_config(source.config_path)
    tmp = Path(tempfile.mkdtemp(prefix="padtui-eval-views-"))
    try:
        run = create_run(cfg, tmp, ["pretrain", "align", "disentangle"], path=tmp / "run")
        shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
        shutil.copytree(source.checkpoints, run.path / "checkpoints")
        run = RunWriter(run.path)
        acc = make_accelerator(cfg)
        data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=lambda m: print(m, file=sys.stderr))
        ctx = RunContext(run, cfg, acc, data, StopSignal(run))
        model = build_disentangle(ctx).model.to(acc.device)
        load_weights(model, best)
        views = [None, *range(len(model.names))]
        loader = eval_loader(ctx, args.split)
        chunk = cfg.eval.item_chunk

        def one_pass():
            return evaluate_views(ctx, model, loader, views)

        def sliced():
            cfg.eval.item_chunk = model.n_items  # one item short of the catalogue: the sliced path
            try:
                out = [evaluate(ctx, model, loader, only=v) for v in views]
                return [m for m, _ in out], sum(s for _, s in out)
            finally:
                cfg.eval.item_chunk = chunk

        rows = {}
        for name, fn in (("one view at a time, sliced (before)", sliced), ("all views, one pass", one_pass)):
            results = [fn() for _ in range(args.repeats)]
            rows[name] = (statistics.median(s for _, s in results), results[0][0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows["one view at a time, sliced (before)"][0]
    print(f"{args.run} — {args.split}, {len(loader.dataset):,} users × {model.n_items:,} items, views: mixture + "
          f"{', '.join(model.names)}; median of {args.repeats}")
    print(f"{'path':<40}{'seconds':>10}{'× before':>10}")
    for name, (seconds, _) in rows.items():
        print(f"{name:<40}{seconds:>10.1f}{base / seconds:>10.2f}")
    metric = cfg.eval.select_metric
    print(f"\n{'view':<12}{metric + ' before':>18}{'one pass':>12}{'cold before':>14}{'one pass':>12}")
    for name, a, b in zip(["mixture", *model.names], rows["one view at a time, sliced (before)"][1],
                          rows["all views, one pass"][1]):
        print(f"{name:<12}{a['overall'][metric]:>18.5f}{b['overall'][metric]:>12.5f}"
              f"{a['cold'][metric]:>14.5f}{b['cold'][metric]:>12.5f}")


if __name__ == "__main__":
    main()
