"""What each PAD stage buys: mean over seeds of NDCG@10, overall and cold, per run preset, in two modes.

    python bench/quality.py select                      # validation numbers only, seeds 1-5: choose here
    python bench/quality.py report --seeds 6,7,8,9,10   # fresh seeds, test numbers: report these, once
    python bench/quality.py select --presets ml100k-sasrec-smollm2 --seeds 1,2
    python bench/quality.py select --dataset ../shared/data/amazon-games --presets ml100k-sasrec-smollm2

*select* prints validation metrics only (the users outside the fit split, DESIGN §3): every default and preset
value is chosen there. *report* prints test metrics of seeds that chose nothing (6-10 by default) and the
quality bar. Rows: SR baseline, calibrated SR (stage 1 with a per-bin scale and offset fitted on the fit split,
present when stage 3 re-fits its gate there), text kNN (training-free LLM-vector similarity), aligned, PAD.

Every (preset, seed) is a real run in --runs-dir (finished seeds of earlier bench runs are kept with --reuse),
so the numbers can be inspected with `padtui show`. The first preset is the reference: every later preset
reuses the stages whose inputs are identical to the reference's of the same seed (`padtui run --reuse`), so an
ablation of stage 3 trains only stage 3. `--dataset` runs the presets on another catalogue: a dataset preset
name, or a folder in the amazon-games layout (interactions.csv `user,item,position`, items.csv `item,title`),
read with the authors' history length (backbone.max_len = 20). Expect hours on 2 CPU cores; minutes on a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_PRESETS = [
    "ml100k-sasrec-smollm2", "ml100k-gru4rec-smollm2", "ml100k-bert4rec-smollm2",
    "ml100k-ablate-no-align", "ml100k-ablate-infonce", "ml100k-ablate-no-freq",
    "ml100k-ablate-no-id", "ml100k-ablate-no-aligned", "ml100k-ablate-no-text",
]


def dataset_sets(spec: str) -> list[str]:
    """`--set`s that point a run preset at another catalogue: a dataset preset name, or an amazon-games folder."""
    folder = Path(spec)
    if not folder.is_dir():
        return [f'dataset="{spec}"']
    missing = [f for f in ("interactions.csv", "items.csv") if not (folder / f).is_file()]
    if missing:
        sys.exit(f"--dataset {spec}: a folder needs interactions.csv (user,item,position) and items.csv "
                 f"(item,title); missing {', '.join(missing)}.")
    root = folder.resolve()
    table = (f'{{source = "local", path = "{root / "interactions.csv"}", description = "{root.name}", '
             f'columns = {{user = "user", item = "item", time = "position", rating = ""}}, '
             f'items = {{path = "{root / "items.csv"}", key = "item", text = "{{title}}"}}}}')
    return [f"dataset={table}", "backbone.max_len=20"]


def run_group(preset: str, seeds: list[int], runs_dir: Path, reuse: bool, reference: Path | None,
              extra: list[str], tag: str) -> Path:
    from core.config import load_run_config
    from core.pipeline import create_run, execute
    from core.atomic import atomic_write_json
    from core.runs import RunFolder

    group = runs_dir / f"quality-{tag}{preset}"
    if reuse and group.is_dir():
        pending = [s for s in seeds if RunFolder(group / f"seed-{s}").status() != "done"]
    else:
        pending = seeds
    group.mkdir(parents=True, exist_ok=True)
    known = sorted({int(p.name.split("-")[1]) for p in group.glob("seed-*")} | set(seeds))
    atomic_write_json(group / "group.json", {"preset": preset, "seeds": known, "sets": extra})
    for seed in pending:
        path = group / f"seed-{seed}"
        if path.exists():
            import shutil

            shutil.rmtree(path)
        cfg = load_run_config(preset, [*extra, f"seed={seed}"])
        source = reference / f"seed-{seed}" if reference is not None and reference.resolve() != group.resolve() else None
        run = create_run(cfg, runs_dir, ["pretrain", "align", "disentangle"], path=path, reuse=source)
        t0 = time.time()
        execute(run)
        print(f"  {preset} seed {seed}: {time.time() - t0:.0f}s", flush=True)
    return group


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["select", "report"],
                    help="select: validation numbers (seeds 1-5) to choose with; report: test numbers of fresh seeds")
    ap.add_argument("--presets", default=",".join(DEFAULT_PRESETS))
    ap.add_argument("--seeds", default=None, help="select: a subset of 1-5 (default 1,2,3,4,5); report: 6,7,8,9,10")
    ap.add_argument("--dataset", default="", metavar="PRESET|FOLDER", help="run the presets on this catalogue")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more override for every run")
    ap.add_argument("--runs-dir", default="runs/bench")
    ap.add_argument("--reuse", action="store_true", help="keep finished seeds of earlier bench runs")
    ap.add_argument("--reuse-from", type=Path, default=None, metavar="GROUP",
                    help="a finished group (seed-N folders) whose identical stages every preset reuses, e.g. after "
                         "a change to stage 3 only")
    args = ap.parse_args()
    seeds = [int(s) for s in (args.seeds or ("1,2,3,4,5" if args.mode == "select" else "6,7,8,9,10")).split(",")]
    if args.mode == "select" and not set(seeds) <= {1, 2, 3, 4, 5}:
        sys.exit("select mode uses seeds 1-5; seeds 6-10 are kept fresh for report mode.")
    if args.mode == "report" and set(seeds) & {1, 2, 3, 4, 5}:
        sys.exit("report mode uses fresh seeds (6 and up): seeds 1-5 chose the settings.")
    import torch

    from padtui.commands.results import group_summary

    extra = (dataset_sets(args.dataset) if args.dataset else []) + args.set
    tag = f"{Path(args.dataset).name}-" if args.dataset else ""
    split = "valid" if args.mode == "select" else "test"
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}, python {platform.python_version()}")
    rows, refits = [], []
    reference = args.reuse_from
    for preset in args.presets.split(","):
        group = run_group(preset, seeds, Path(args.runs_dir), args.reuse, reference, extra, tag)
        reference = reference or group
        _, summary = group_summary(group, seeds, split)  # only the seeds asked for: every row compares the same seeds
        rows.append((preset, summary))
        refits.append((preset, refit_counts(group, seeds)))
    print_table(rows, split, seeds, args.mode, args.dataset)
    lines = [f"  {preset}: PAD's gate {gate}; the SR calibration {sr}" for preset, (gate, sr) in refits if gate or sr]
    if lines:
        print("\nheld-out re-fits: the step each seed's 2-fold check on the fit split took toward its re-fit "
              "(0 = not kept; stage 1 = stage 3 gave way to stage 1):", *lines, sep="\n")
    return 0


def refit_counts(group: Path, seeds: list[int]) -> tuple[str, str]:
    """Per seed, the step its held-out re-fit (PAD's gate, the SR calibration) took ('seed 1: 0.5, …'), '' when
    none was tried."""
    from core.runs import RunFolder

    gate, sr = [], []
    for seed in seeds:
        stage3 = RunFolder(group / f"seed-{seed}").results().get("stages", {}).get("disentangle", {})
        for found, fit in ((gate, stage3.get("gate_fit")), (sr, stage3.get("calibrated_sr", {}).get("fit"))):
            if fit:
                step = "stage 1" if fit.get("fallback") else f"{fit.get('step', 1.0 if fit.get('kept') else 0.0):g}"
                found.append(f"seed {seed}: {step}")
    return ", ".join(gate), ", ".join(sr)


def print_table(rows: list[tuple[str, dict]], split: str, seeds: list[int], mode: str, dataset: str) -> None:
    what = "validation (users outside the fit split)" if split == "valid" else "test"
    head = f"{'preset':<28} {'row':<14} {'overall NDCG@10':>20} {'cold NDCG@10':>20} {'× s1 overall':>13} {'× s1 cold':>10}"
    print(f"\n{mode} mode — {what} NDCG@10, mean ± std over seeds {','.join(map(str, seeds))}"
          f"{' on ' + dataset if dataset else ''} (history masked, full ranking)\n{head}\n{'-' * len(head)}")
    verdicts = []
    for preset, summary in rows:
        base = summary.get("SR baseline")
        for label, row in summary.items():
            o, c = row["overall"]["NDCG@10"], row["cold"]["NDCG@10"]
            ro = o[0] / base["overall"]["NDCG@10"][0] if base and base["overall"]["NDCG@10"][0] else float("nan")
            rc = c[0] / base["cold"]["NDCG@10"][0] if base and base["cold"]["NDCG@10"][0] else float("nan")
            print(f"{preset:<28} {label:<14} {o[0]:>11.4f} ± {o[1]:.4f} {c[0]:>11.4f} ± {c[1]:.4f} {ro:>13.3f} {rc:>10.3f}")
            if label == "PAD":
                knn = summary.get("text kNN", {}).get("cold", {}).get("NDCG@10", (float("nan"),))[0]
                ok = ro >= 0.99 and rc >= 1.10
                # the goal lies beyond the bar: it is met only on top of a passed bar
                verdicts.append((preset, ok, ro, rc, ok and c[0] >= knn and ro >= 1.0, c[0], knn))
    if mode == "report":
        print("\nquality bar (PAD cold ≥ 1.10 × stage 1, overall ≥ 0.99 × stage 1); goal beyond it: "
              "cold ≥ text kNN and overall ≥ 1.00 × stage 1:")
        for preset, ok, ro, rc, goal, cold, knn in verdicts:
            print(f"  {'PASS' if ok else 'MISS'}  {preset}: overall ×{ro:.3f}, cold ×{rc:.3f}; "
                  f"goal {'met' if goal else 'not met'} (PAD cold {cold:.4f}, text kNN {knn:.4f}"
                  f"{'' if ok else '; the bar comes first'})")


if __name__ == "__main__":
    from core.errors import InputError

    try:
        sys.exit(main())
    except InputError as e:  # a missing asset, a bad preset or --set: the message says how to fix it
        sys.exit(f"error: {e}")
