"""One stage-3 training step (ce over the whole catalogue, experts' own loss on), timed two ways.

    python bench/stage3_step.py                          # Amazon-Games-sized: 16,859 items, 128 x 20 positions
    python bench/stage3_step.py --items 1682 --experts id,aligned,text

`shared` is what `core.engine.StageModule` does: each expert's [positions x catalogue] scores are computed once
and feed both the mixture's loss and the expert's own. `separate` scores the mixture, then every expert again
(the straightforward computation, and what the engine did before). Both run forward + backward on the same
random weights; the table prints ms per step (median of --repeats), peak RSS growth is not separated.
Ratios are against `separate` in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.engine import StageModule, _OneExpert  # noqa: E402
from core.losses import rec_loss  # noqa: E402
from core.models.items import IDItems  # noqa: E402
from core.models.scorer import FrequencyGate, SeqRecommender  # noqa: E402


class _Flat(torch.nn.Module):
    """A backbone stand-in (one linear layer) so that the step's cost is the scoring, which is what differs."""

    causal = True

    def __init__(self, d: int):
        super().__init__()
        self.proj = torch.nn.Linear(d, d)

    def forward(self, x, real):
        return self.proj(x)


def build(n_items: int, d: int, experts: list[str], n_bins: int = 10) -> SeqRecommender:
    from core.models.scorer import Expert

    torch.manual_seed(0)
    members = {e: Expert(IDItems(n_items, d), _Flat(d)) for e in experts}
    bins = torch.randint(1, n_bins + 1, (n_items + 1,))
    return SeqRecommender(members, n_items, bins, FrequencyGate(experts, n_bins))


def separate(model: SeqRecommender, seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    states = model.encode(seq)
    pos = targets > 0
    selected = tuple(s[pos] for s in states)
    tables = model.tables()
    rec = rec_loss(model, selected, targets[pos], "ce", None, tables)
    own = [rec_loss(_OneExpert(model, k), selected, targets[pos], "ce", None, tables) for k in range(len(model.names))]
    return rec + sum(own) / len(own)


def time_step(fn, repeats: int) -> float:
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        fn().backward()
        if i:  # the first call warms the allocator
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=16_859)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--experts", default="id,aligned,text,knn")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    experts = args.experts.split(",")
    model = build(args.items, args.hidden, experts)
    seq = torch.randint(1, args.items + 1, (args.batch, args.length))
    targets = torch.randint(1, args.items + 1, (args.batch, args.length))
    module = StageModule(model, "ce", None, expert_loss=1.0)
    empty = torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.long)
    rows = {
        "separate": time_step(lambda: separate(model, seq, targets), args.repeats),
        "shared": time_step(lambda: module(seq, targets, *empty)["total"], args.repeats),
    }
    print(f"stage-3 ce step, {len(experts)} experts, {args.items:,} items, {args.batch}x{args.length} positions, "
          f"d={args.hidden}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'path':<10} {'ms/step':>9} {'x separate':>11}")
    for name, ms in rows.items():
        print(f"{name:<10} {ms:>9.0f} {ms / rows['separate']:>11.2f}")


if __name__ == "__main__":
    main()
