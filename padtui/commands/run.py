"""`padtui run`, `padtui resume` and the detached `worker`: starting and continuing runs."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

from core.config import STAGES, load_run_config, load_saved_config, parse_stages
from core.errors import InputError, Interrupted, RunFailure
from core.atomic import atomic_write_json
from core.runs import RunFolder, iter_runs, new_run_path, seed_folders
from padtui import output
from padtui.commands.common import find_run
from padtui.commands.results import show_group, show_run
from padtui.commands.assets import fetch_assets


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
            output.err.print(f"fetching asset '{name}': {assets.source_line(name)}", markup=False)
        fetch_assets(names, output.err)

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
        output.console.print(f"worker pid {pid} (detached). Watch: padtui attach {target}   Stop: kill {pid}")
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
        output.err.print(f"warning: {run.name} is training on this machine (pid {run.worker_pid()}); two trainings at "
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
        output.console.print(note + (", ".join(reused) if reused else "nothing") + f" from {src}" + (f" ({why})" if why else ""),
                      markup=False, highlight=False)
        out[seed] = src
    return out


def cmd_worker(args) -> int:
    """The detached worker: one run, or every unfinished seed of a group, in order."""
    path = Path(args.run)
    targets = [RunFolder(p) for p in seed_folders(path)] \
        if (path / "group.json").is_file() else [RunFolder(path)]
    from core.pipeline import execute

    for run in targets:
        if run.status() == "done":
            continue
        try:
            execute(run, resume=args.resume or bool(run.events()), allow_changed_data=args.allow_changed_data)
        except (InputError, RunFailure, Interrupted) as exc:
            output.say_error("error: ", str(exc))
            return 1 if not isinstance(exc, InputError) else 2
    return 0


def cmd_resume(args) -> int:
    path = find_run(args.run, Path(args.runs_dir))
    if (path / "group.json").is_file():
        runs = [RunFolder(p) for p in seed_folders(path)]
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
        output.console.print(f"worker pid {pid} (detached). Watch: padtui attach {path}")
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
    progress = EventProgress(run, output.console, quiet=not output.console.is_terminal)
    follower = threading.Thread(target=progress.follow, args=(stop,), daemon=True)
    follower.start()
    try:
        execute(run, resume=resume, allow_changed_data=allow_changed_data)
        return 0
    except Interrupted as exc:
        output.say_error("stopped: ", f"{exc}. Resume with: padtui resume {run.path}", style="yellow")
        return 1
    except RunFailure as exc:
        output.say_error("run failed: ", f"{exc}\nlog: {run.log_path}")
        return 1
    finally:
        stop.set()
        follower.join(timeout=2)
