"""Where the run spends resources: GPU memory / utilisation on a GPU, CPU and RSS otherwise."""

from __future__ import annotations

from textual.widgets import Static

from padtui.screens.run_state import RunState, fmt_seconds


def _mb(value: float) -> str:
    return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value:.0f} MB"


class ResourceLine(Static):
    def show(self, state: RunState, live: dict | None = None) -> None:
        """`live`: cpu_percent / rss_mb sampled from the worker process while it runs (psutil)."""
        run = state.run
        parts = [f"{state.status}", f"{run.get('device', '?')} ×{run.get('num_processes', 1)}",
                 f"elapsed {fmt_seconds(state.elapsed())}"]
        res = {**state.resources, **(live or {})}
        if res.get("gpu_mem_mb") is not None:
            parts.append(f"GPU mem {_mb(res['gpu_mem_mb'])}")
            if res.get("gpu_util") is not None:
                parts.append(f"util {res['gpu_util']:.0f}%")
        if res.get("cpu_percent") is not None:
            parts.append(f"CPU {res['cpu_percent']:.0f}%")
        if res.get("rss_mb") is not None:
            parts.append(f"RSS {_mb(res['rss_mb'])}")
        self.update(" · ".join(parts))
