"""`padtui show` and `padtui runs`: results tables of runs and seed groups, and the runs list."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from rich.table import Table
from core.config import STAGES
from core.errors import InputError
from core.runs import RunFolder, iter_runs, refit_line, refit_step, seed_folders
from padtui import output
from padtui.commands.common import find_run


def cmd_show(args) -> int:
    path = find_run(args.run, Path(args.runs_dir))
    if args.format:
        return show_export(path, args.format, args.split)
    if (path / "group.json").is_file():
        show_group(path, args.split)
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
            output.console.print(table)
        return 0
    show_run(run, bins=args.bins, split=args.split)
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


def show_run(run: RunFolder, bins: bool = False, split: str = "test") -> None:
    from padtui.results_table import cost_line, protocol_line, results_table, verdict

    results = run.results()
    status = run.status()
    report_bad_lines([run])
    if not results.get("stages"):
        output.console.print(f"{run.path}: no results yet (status: {status}).")
        return
    output.console.print(f"[bold]{run.path}[/]  ({status})")
    output.console.print(protocol_line(results))
    output.console.print(results_table(results, split))
    for line in verdict(results, split):
        output.console.print(line, markup=False)
    cost = cost_line(results, run.events())
    if cost:
        output.console.print(cost, markup=False, style="dim")
    if bins:
        output.console.print(bins_table(results, split))
        stage3 = results.get("stages", {}).get("disentangle", {})
        refit = stage3.get("gate_fit", {})
        if stage3.get("gate_trained") and (refit.get("kept", True) or refit.get("fallback")):
            output.console.print(gate_table(stage3["gate_trained"], "gate after training"))
        if stage3.get("gate"):
            title = "final gate weights per bin"
            if stage3.get("gate_trained"):
                step = refit_step(refit)
                title = ("stage 3 gave way to stage 1: the whole gate on its ID expert" if refit.get("fallback")
                         else "gate re-fitted on the fit split" if step >= 1
                         else f"gate moved {step:.0%} of the way to its re-fit on the fit split" if step > 0
                         else "gate after training (the re-fit on the fit split did not pass its check)")
            output.console.print(gate_table(stage3["gate"], title))
        for what, fit in (("PAD's gate", refit), ("SR calibration", stage3.get("calibrated_sr", {}).get("fit", {}))):
            if fit:
                output.console.print(refit_line(what, fit), markup=False, style="dim")
        if stage3.get("calibrated_sr"):
            title = "SR calibration per bin" + ("" if stage3["calibrated_sr"].get("fit", {}).get("kept", True)
                                                else " (not kept: none applied)")
            output.console.print(gate_table(stage3["calibrated_sr"]["calibration"], title))


def bins_table(results: dict, split: str = "test") -> Table:
    """Rows = frequency bins; columns = stages, then stage 3's experts each ranking on its own and the
    training-free text kNN: how much tail signal the LLM carries and how much of it each expert keeps. A run
    from before experts were ranked on validation has no expert columns on `valid`."""
    from rich import box

    short = {"pretrain": "SR", "align": "aligned", "disentangle": "PAD"}
    stages = [s for s in STAGES if s in results.get("stages", {})]
    first = results["stages"][stages[0]][split]
    columns = [(short[s], results["stages"][s][split]) for s in stages]
    experts = results["stages"].get("disentangle", {}).get(f"experts_{split}", {})
    columns += [(name[:5], m) for name, m in experts.items()]
    if results.get("text_knn"):
        columns.append(("kNN", results["text_knn"][split]))
    caption = ("id / align / text / knn: stage 3's experts, each ranking alone; kNN: the text kNN (no training)"
               if experts else "kNN: the text kNN (no training)" if results.get("text_knn") else None)
    table = Table(title=f"{split} NDCG@10 per frequency bin (1 = most popular, last = cold)", title_justify="left",
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

    runs = [RunFolder(path / f"seed-{s}") for s in seeds] if seeds else [RunFolder(p) for p in seed_folders(path)]
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


def show_group(path: Path, split: str = "test") -> None:
    seeds, summary = group_summary(path, split=split)
    if not seeds:
        output.console.print(f"{path}: no finished seeds yet.")
        return
    output.console.print(f"[bold]{path}[/]  seeds: {', '.join(seeds)}  ({split}, mean ± std)")
    first = RunFolder(path / seeds[0])  # the first finished seed: it has the protocol to print
    from padtui.results_table import protocol_line

    output.console.print(protocol_line(first.results()))
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
    output.console.print(table)


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
        output.console.print(table)
        report_bad_lines(runs)
    else:
        output.console.print(f"no runs in {args.runs_dir}. Start one: padtui run demo")
    return 0


def report_bad_lines(runs: list[RunFolder]) -> None:
    """One line per run whose events.jsonl had lines the readers skipped (hand-edited, or torn by a crash)."""
    for run in runs:
        if run.bad_lines:
            output.err.print(f"note: {run.events_path}: {run.bad_lines} line(s) that are not events were skipped "
                      f"(not UTF-8 JSON objects with a known 'kind' and a 'time').", markup=False)
