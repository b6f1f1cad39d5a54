"""The 200,000-item scale run: seconds per epoch, evaluation users/s and peak RSS per stage.

    python bench/scale.py                                   # the scale-200k preset, all three stages
    python bench/scale.py --set dataset.synthetic.n_items=20000 --set dataset.synthetic.n_users=5000

The run is a real headless `padtui run PRESET --runs-dir TMP` in a child process. Its process tree's resident
memory is sampled every `--interval` seconds and each sample is put in the phase the run was in (data
preparation until `run_start`, each stage from its `stage_start` to its `stage_end`, the LLM embeddings inside
stage 2 from its first to its last `embed` event); the overall peak is the kernel's exact maximum for the child
(getrusage). Epoch and evaluation seconds are the run's own `epoch` / `eval` events (events.jsonl); evaluation
users/s = users ranked against the whole catalogue per second (validation evaluations of that stage).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

STAGES = ("pretrain", "align", "disentangle")


def tree_rss(proc) -> int:
    """Resident bytes of a process and all its children (0 once it is gone)."""
    import psutil

    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def run_and_sample(cmd: list[str], interval: float) -> tuple[subprocess.CompletedProcess, list[tuple[float, int]], float]:
    """Run `cmd`, sampling its tree's RSS; returns (finished process, [(time, bytes)], start time)."""
    import psutil

    started = time.time()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(child.pid)
    samples: list[tuple[float, int]] = []
    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def drain(stream, into):  # keep the pipes empty, or a chatty child blocks on a full pipe
        for line in stream:
            into.append(line)

    readers = [threading.Thread(target=drain, args=(child.stdout, out_chunks), daemon=True),
               threading.Thread(target=drain, args=(child.stderr, err_chunks), daemon=True)]
    for r in readers:
        r.start()
    while child.poll() is None:
        samples.append((time.time(), tree_rss(watched)))
        time.sleep(interval)
    for r in readers:
        r.join()
    done = subprocess.CompletedProcess(cmd, child.returncode, "".join(out_chunks), "".join(err_chunks))
    return done, samples, started


def phase_peaks(events: list[dict], samples: list[tuple[float, int]], started: float) -> dict[str, float]:
    """Peak sampled RSS (MiB) per phase: data, each stage, embed."""
    spans: dict[str, tuple[float, float]] = {}
    run_start = next((e["time"] for e in events if e["kind"] == "run_start"), None)
    if run_start is not None:
        spans["data"] = (started, run_start)
    for stage in STAGES:
        begin = next((e["time"] for e in events if e["kind"] == "stage_start" and e["stage"] == stage), None)
        end = next((e["time"] for e in events if e["kind"] == "stage_end" and e["stage"] == stage), None)
        if begin is not None:
            spans[stage] = (begin, end or float("inf"))
    embed = [e["time"] for e in events if e["stage"] == "embed"]
    if embed:
        spans["embed"] = (min(embed) - 1.0, max(embed))
    peaks = {}
    for name, (a, b) in spans.items():
        inside = [rss for t, rss in samples if a <= t <= b]
        peaks[name] = max(inside) / 2**20 if inside else float("nan")
    return peaks


def machine_line(device: str) -> str:
    import torch

    name = device
    if device.startswith("cuda") and torch.cuda.is_available():
        name += f" ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU)"
    return (f"machine: {os.cpu_count()} cores, {_memory_gib():.0f} GiB RAM, torch {torch.__version__}, device {name}, "
            f"python {platform.python_version()}")


def _memory_gib() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="scale-200k")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides for the run")
    ap.add_argument("--runs-dir", default="", help="keep the run folder here (default: a temporary folder)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples")
    args = ap.parse_args()

    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="padtui-scale-"))
    cmd = [sys.executable, "-m", "padtui", "run", args.preset, "--runs-dir", str(runs_dir)]
    for s in args.set:
        cmd += ["--set", s]
    print(f"running: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    proc, samples, started = run_and_sample(cmd, args.interval)
    wall = time.time() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    if proc.returncode or not first.startswith("run: "):
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        print(f"the run failed (exit {proc.returncode}); see above", file=sys.stderr)
        return proc.returncode or 1
    run = Path(first.split("run: ", 1)[1].strip())
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line.strip()]
    manifest = json.loads((run / "manifest.json").read_text())
    stats = manifest["dataset"]["stats"]
    peaks = phase_peaks(events, samples, started)
    device = next((e.get("device", "cpu") for e in events if e["kind"] == "run_start"), "cpu")
    run_start = next(e["time"] for e in events if e["kind"] == "run_start")

    print(machine_line(device))
    print(f"preset {args.preset} {' '.join(args.set)}".rstrip())
    print(f"data: {stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} interactions; "
          f"prepared in {run_start - started:.1f} s (incl. start-up), peak RSS {peaks.get('data', float('nan')):,.0f} MB")
    embed = [e for e in events if e["stage"] == "embed"]
    if embed:
        last = embed[-1]
        print(f"LLM embeddings: {last['items_total']:,} items at {last['items_per_s']:.0f} items/s "
              f"({last['items_total'] / max(last['items_per_s'], 1e-9):.0f} s), peak RSS {peaks['embed']:,.0f} MB")
    else:
        print("LLM embeddings: from the cache")
    header = (f"{'stage':<12} {'loss':<16} {'steps/ep':>8} {'s/epoch':>8} {'epochs':>6} {'eval s':>7} "
              f"{'eval users/s':>12} {'peak RSS MB':>11} {'test NDCG@10':>12}")
    print(header)
    print("-" * len(header))
    cfg = tomllib.loads((run / "config.toml").read_text())
    results = json.loads((run / "results.json").read_text())["stages"]
    for stage in STAGES:
        if stage not in results:
            continue
        epochs = [e["seconds"] for e in events if e["kind"] == "epoch" and e["stage"] == stage]
        evals = [e["seconds"] for e in events if e["kind"] == "eval" and e["stage"] == stage]
        start = next(e for e in events if e["kind"] == "stage_start" and e["stage"] == stage)
        users_s = stats["users"] / statistics.mean(evals) if evals else float("nan")
        print(f"{stage:<12} {cfg['stages'][stage]['loss']:<16} {start['steps_per_epoch']:>8} "
              f"{statistics.mean(epochs):>8.1f} {len(epochs):>6} {statistics.mean(evals):>7.1f} {users_s:>12,.0f} "
              f"{peaks.get(stage, float('nan')):>11,.0f} {results[stage]['test']['overall']['NDCG@10']:>12.4f}")
    print(f"{'total':<12} {wall:,.0f} s wall; peak RSS of the whole run {peak_mb:,.0f} MB (getrusage)")
    print(f"run folder: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
