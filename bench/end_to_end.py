"""End-to-end wall time and peak RSS of a headless run (default: the ml100k-sasrec-smollm2 preset, all stages).

    python bench/end_to_end.py [--preset NAME] [--set KEY=VALUE ...]

The run is a real `padtui run` in a child process; peak RSS is the child's max resident set size.
Stage times come from the run's results.json; per-stage peak RSS and GPU memory (torch's max allocated) from
the resources its step events carry (sampled at the logged steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="ml100k-sasrec-smollm2")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    import torch

    from core.runs import peak_resources

    runs_dir = Path(tempfile.mkdtemp(prefix="padtui-e2e-"))
    cmd = [sys.executable, "-m", "padtui", "run", args.preset, "--runs-dir", str(runs_dir)]
    for s in args.set:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode:
        print(proc.stderr[-2000:])
        return proc.returncode
    run = Path(proc.stdout.splitlines()[0].split("run: ", 1)[1])
    results = json.loads((run / "results.json").read_text())
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}, python {platform.python_version()}")
    print(f"preset {args.preset} {' '.join(args.set)}  (run folder {run})")
    peaks = peak_resources(json.loads(line) for line in (run / "events.jsonl").read_text().splitlines())
    print(f"{'stage':<12} {'seconds':>8} {'train s':>8} {'eval s':>7} {'epochs':>7} {'test NDCG@10':>13} {'cold':>7} "
          f"{'RSS MB':>7} {'GPU MB':>7}")
    if "embed" in peaks:
        p = peaks["embed"]
        print(f"{'(embed)':<12} {'':>8} {'':>8} {'':>7} {'':>7} {'':>13} {'':>7} {p.get('rss_mb', 0):>7.0f} "
              f"{p.get('gpu_mem_mb', 0):>7.0f}")
    for stage, r in results["stages"].items():
        p = peaks.get(stage, {})
        print(f"{stage:<12} {r['seconds']:>8.1f} {r['train_seconds']:>8.1f} {r['eval_seconds']:>7.1f} "
              f"{r['epochs_run']:>7} {r['test']['overall']['NDCG@10']:>13.4f} {r['test']['cold']['NDCG@10']:>7.4f} "
              f"{p.get('rss_mb', 0):>7.0f} {p.get('gpu_mem_mb', 0):>7.0f}")
    print(f"{'total':<12} {wall:>8.1f} s wall (incl. start-up, data, LLM embeddings)   peak RSS {peak_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
