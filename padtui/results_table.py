"""The three-stage results table: SR baseline vs aligned vs PAD, HR@10 / NDCG@10 for overall / warm / cold.

Pure formatting over results.json's shape (no torch, no Textual); Rich renderables so the monitor, the
compare screen and the history can all show it.
"""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text


STAGE_ROWS = (("pretrain", "SR baseline"), ("align", "aligned"), ("disentangle", "PAD"))
GROUPS = ("overall", "warm", "cold")
METRICS = ("HR@10", "NDCG@10")


def metric(results: dict, stage: str, group: str, name: str, split: str = "test") -> float | None:
    value = results.get("stages", {}).get(stage, {}).get(split, {}).get(group, {}).get(name)
    return value if isinstance(value, (int, float)) else None


def relative_change(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return (value - base) / base


def fmt_metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def fmt_change(change: float | None) -> str:
    return "" if change is None else f"{change:+.1%}"


def rows(results: dict, split: str = "test") -> list[tuple[str, list[tuple[float | None, float | None]]]]:
    """(label, [(value, change vs stage 1) per (group, metric)]) for each stage present."""
    out = []
    for stage, label in STAGE_ROWS:
        if stage not in results.get("stages", {}):
            continue
        cells = []
        for group in GROUPS:
            for name in METRICS:
                value = metric(results, stage, group, name, split)
                base = metric(results, "pretrain", group, name, split)
                cells.append((value, None if stage == "pretrain" else relative_change(value, base)))
        out.append((label, cells))
    return out


def protocol_line(results: dict) -> str:
    protocol = results.get("protocol") or {}
    parts = [f"{k}: {v}" for k, v in protocol.items() if isinstance(v, (str, int, float, bool))]
    return "protocol — " + (" · ".join(parts) if parts else "see manifest.json")


def results_table(results: dict, split: str = "test", title: str | None = None) -> Table:
    """A Rich table; relative changes sit under each value so it fits 80 columns."""
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, expand=False)
    table.add_column(f"{split}", no_wrap=True)
    for group in GROUPS:
        for name in METRICS:
            table.add_column(f"{group}\n{name}", justify="right", no_wrap=True)
    for label, cells in rows(results, split):
        texts = []
        for value, change in cells:
            text = Text(fmt_metric(value))
            if change is not None:
                text.append("\n" + fmt_change(change), style="green" if change >= 0 else "red")
            texts.append(text)
        table.add_row(label, *texts)
    return table

