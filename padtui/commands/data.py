"""`padtui data stats`: a dataset after filtering."""

from __future__ import annotations

import json
import os

from rich.table import Table
from core.config import list_presets, load_run_config
from core.errors import InputError
from core.atomic import atomic_write_json
from padtui import output


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
    data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=lambda m: output.err.print(m, markup=False))
    stats = data.stats()
    from core.runs import cache_dir

    if cfg.dataset.preset:
        atomic_write_json(cache_dir() / "stats" / f"{cfg.dataset.preset}.json", stats)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    output.console.print(f"[bold]{cfg.dataset.preset or cfg.dataset.path}[/]: {stats['users']:,} users, {stats['items']:,} "
                  f"items, {stats['interactions']:,} interactions, sparsity {stats['sparsity']:.4%}")
    sl = stats["seq_len"]
    output.console.print(f"sequence length: min {sl['min']}, median {sl['median']:.0f}, mean {sl['mean']:.1f}, max {sl['max']}")
    if stats.get("repeated_pairs"):
        output.console.print(f"{stats['repeated_pairs']:,} interactions repeat a (user, item) pair seen before: kept; as "
                      f"targets they cannot be hit while eval.mask_history is true")
    if stats["items_without_text"]:
        output.console.print(f"[yellow]{stats['items_without_text']} items have no text (their id is used)[/]")
    table = Table(title="frequency bins (training interactions)", title_justify="left")
    for col in ("bin", "items", "share", "freq range", "test targets"):
        table.add_column(col, justify="right")
    for row in stats["bins"]:
        table.add_row(str(row["bin"]), str(row["items"]), f"{row['share']:.1%}",
                      f"{row['min_freq']}–{row['max_freq']}", str(row["test_targets"]))
    output.console.print(table)
    return 0
