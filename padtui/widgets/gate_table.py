"""Stage 3's frequency gate: expert weights per item-frequency bin (bin 1 = most popular)."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

EXPERTS = ("id", "aligned", "text")
BAR = 8


def _bar(weight: float) -> str:
    full = int(round(max(0.0, min(1.0, weight)) * BAR))
    return "█" * full + "·" * (BAR - full)


class GateTable(Static):
    def show(self, gate: dict, epoch: int | None) -> None:
        if not gate:
            self.update(Text("gate weights appear during stage 3 (disentangle)", style="dim"))
            return
        experts = [e for e in EXPERTS if any(e in w for w in gate.values())]
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"epoch {epoch}" if epoch else None,
                      title_justify="left")
        table.add_column("bin", justify="right")
        for expert in experts:
            table.add_column(expert, no_wrap=True)
        for b in sorted(gate, key=lambda k: int(k) if str(k).isdigit() else 0):
            weights = gate[b]
            table.add_row(str(b), *(f"{weights.get(e, 0.0):.2f} {_bar(weights.get(e, 0.0))}" for e in experts))
        self.update(table)
