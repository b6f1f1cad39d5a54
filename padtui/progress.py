"""Headless progress: a rich progress bar (stage, epoch, step, loss, ETA) fed by the run's events.jsonl.

It reads the same events the TUI reads, from a background thread, so the engine stays UI-free. When stdout
is not a terminal it prints one line per epoch / evaluation instead (logs stay readable).
"""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.runs import RunFolder


def _fmt_losses(losses: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in (losses or {}).items() if isinstance(v, (int, float)))


class EventProgress:
    def __init__(self, run: RunFolder, console: Console, quiet: bool = False):
        self.run, self.console, self.quiet = run, console, quiet
        self.offset = 0

    def follow(self, stop: threading.Event) -> None:
        if self.quiet:
            while not stop.wait(0.5):
                self._drain(None)
            self._drain(None)
            return
        columns = (TextColumn("[bold]{task.fields[stage]:<11}"), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TextColumn("{task.fields[loss]}"), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=False, refresh_per_second=4) as progress:
            self.tasks: dict[str, int] = {}
            while not stop.wait(0.25):
                self._drain(progress)
            self._drain(progress)

    def _task(self, progress: Progress, stage: str, total: int | None) -> int:
        if stage not in self.tasks:
            self.tasks[stage] = progress.add_task("", total=total, stage=stage, loss="")
        return self.tasks[stage]

    def _drain(self, progress: Progress | None) -> None:
        events, self.offset = self.run.read_events(self.offset)
        for e in events:
            kind, stage = e.get("kind"), e.get("stage", "")
            if progress is None:
                self._print_line(e)
                continue
            if kind == "step" and stage == "embed":
                t = self._task(progress, "embed", e.get("items_total"))
                progress.update(t, completed=e.get("items_done", 0), description=f"{e.get('items_per_s', 0):.0f} items/s")
            elif kind == "stage_start":
                t = self._task(progress, stage, e.get("steps_per_epoch"))
                progress.update(t, total=e.get("steps_per_epoch"), completed=0,
                                description=f"epoch {e.get('start_epoch', 1)}/{e.get('epochs')}")
                self.epochs = e.get("epochs")
            elif kind == "step":
                t = self._task(progress, stage, e.get("steps_per_epoch"))
                progress.update(t, completed=e.get("step", 0), total=e.get("steps_per_epoch"),
                                description=f"epoch {e.get('epoch')}/{getattr(self, 'epochs', '?')}",
                                loss=_fmt_losses(e.get("losses")))
            elif kind in ("eval", "stage_end", "resumed"):  # an error: the command that ran the run says it
                self._print_line(e, progress.console)

    def _print_line(self, e: dict, console: Console | None = None) -> None:
        console = console or self.console
        kind, stage = e.get("kind"), e.get("stage", "")
        if kind == "eval":
            m = e.get("metrics", {})
            gate = "  gate bin1/last: " + _gate_line(e["gate"]) if e.get("gate") else ""
            console.print(f"{stage:<11} epoch {e.get('epoch'):>3}  valid NDCG@10 {m['overall']['NDCG@10']:.4f}  "
                          f"warm {m['warm']['NDCG@10']:.4f}  cold {m['cold']['NDCG@10']:.4f}"
                          f"{'  *' if e.get('best') else ''}{gate}")
        elif kind == "epoch" and self.quiet:
            console.print(f"{stage:<11} epoch {e.get('epoch'):>3}  {_fmt_losses(e.get('losses'))}  {e.get('seconds', 0):.1f}s")
        elif kind == "stage_end":
            t = e.get("test", {})
            console.print(f"[bold]{stage}[/] done: best epoch {e.get('best_epoch')}, test NDCG@10 "
                          f"{t['overall']['NDCG@10']:.4f} (warm {t['warm']['NDCG@10']:.4f}, cold {t['cold']['NDCG@10']:.4f}) "
                          f"in {e.get('seconds', 0):.0f}s")
        elif kind == "resumed":
            console.print(f"resumed {stage or 'run'}" + (f" at epoch {e['epoch']}" if e.get("epoch") else ""))


def _gate_line(gate: dict) -> str:
    keys = list(gate)
    first, last = gate[keys[0]], gate[keys[-1]]
    return " ".join(f"{k}={first[k]:.2f}/{last[k]:.2f}" for k in first)
