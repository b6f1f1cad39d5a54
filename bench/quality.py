"""What each PAD stage buys on ML-100K: mean over seeds of test NDCG@10, overall and cold, per run preset.

    python bench/quality.py                                   # default preset + backbones + ablations, seeds 1-5
    python bench/quality.py --presets ml100k-sasrec-smollm2 --seeds 1,2

Every (preset, seed) is a real run in --runs-dir (existing finished groups are kept with --reuse), so the
numbers can be inspected with `padtui show`. The first preset is the reference: every later preset reuses the
stages whose inputs are identical to the reference's of the same seed (`padtui run --reuse`), so an ablation
of stage 3 trains only stage 3. The quality bar (issue 3): PAD cold ≥ 1.10 × stage 1 cold and
PAD overall ≥ 0.99 × stage 1 overall. Expect hours on 2 CPU cores for the full grid; minutes on a GPU.
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


def run_group(preset: str, seeds: list[int], runs_dir: Path, reuse: bool, reference: Path | None) -> Path:
    from core.config import load_run_config
    from core.pipeline import create_run, execute
    from core.runs import RunFolder, atomic_write_json

    group = runs_dir / f"quality-{preset}"
    if reuse and group.is_dir():
        pending = [s for s in seeds if RunFolder(group / f"seed-{s}").status() != "done"]
    else:
        pending = seeds
    group.mkdir(parents=True, exist_ok=True)
    known = sorted({int(p.name.split("-")[1]) for p in group.glob("seed-*")} | set(seeds))
    atomic_write_json(group / "group.json", {"preset": preset, "seeds": known})
    for seed in pending:
        path = group / f"seed-{seed}"
        if path.exists():
            import shutil

            shutil.rmtree(path)
        cfg = load_run_config(preset, [f"seed={seed}"])
        source = reference / f"seed-{seed}" if reference is not None and reference.resolve() != group.resolve() else None
        run = create_run(cfg, runs_dir, ["pretrain", "align", "disentangle"], path=path, reuse=source)
        t0 = time.time()
        execute(run)
        print(f"  {preset} seed {seed}: {time.time() - t0:.0f}s", flush=True)
    return group


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=",".join(DEFAULT_PRESETS))
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--runs-dir", default="runs/bench")
    ap.add_argument("--reuse", action="store_true", help="keep finished seeds of earlier bench runs")
    ap.add_argument("--reuse-from", type=Path, default=None, metavar="GROUP",
                    help="a finished group (seed-N folders) whose identical stages every preset reuses, e.g. after "
                         "a change to stage 3 only")
    args = ap.parse_args()
    import torch

    from padtui.cli import group_summary

    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}, python {platform.python_version()}")
    rows = []
    reference = args.reuse_from
    for preset in args.presets.split(","):
        group = run_group(preset, seeds, Path(args.runs_dir), args.reuse, reference)
        reference = reference or group
        _, summary = group_summary(group, seeds)  # only the seeds asked for: every row compares the same seeds
        rows.append((preset, summary))
    head = f"{'preset':<28} {'stage':<12} {'overall NDCG@10':>20} {'cold NDCG@10':>20} {'× s1 overall':>13} {'× s1 cold':>10}"
    print(f"\ntest NDCG@10, mean ± std over seeds {args.seeds} (history masked, full ranking)\n{head}\n{'-' * len(head)}")
    verdicts = []
    for preset, summary in rows:
        base = summary.get("pretrain")
        for stage in ("pretrain", "align", "disentangle"):
            if stage not in summary:
                continue
            o, c = summary[stage]["overall"]["NDCG@10"], summary[stage]["cold"]["NDCG@10"]
            ro = o[0] / base["overall"]["NDCG@10"][0] if base and base["overall"]["NDCG@10"][0] else float("nan")
            rc = c[0] / base["cold"]["NDCG@10"][0] if base and base["cold"]["NDCG@10"][0] else float("nan")
            print(f"{preset:<28} {stage:<12} {o[0]:>11.4f} ± {o[1]:.4f} {c[0]:>11.4f} ± {c[1]:.4f} {ro:>13.3f} {rc:>10.3f}")
            if stage == "disentangle":
                verdicts.append((preset, ro >= 0.99 and rc >= 1.10, ro, rc))
    print("\nquality bar (PAD cold ≥ 1.10 × stage 1, overall ≥ 0.99 × stage 1):")
    for preset, ok, ro, rc in verdicts:
        print(f"  {'PASS' if ok else 'MISS'}  {preset}: overall ×{ro:.3f}, cold ×{rc:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
