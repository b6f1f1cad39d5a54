"""One ce training step (whole-catalogue softmax, forward + backward), fused against the autograd graph.

    python bench/stage3_step.py                          # Amazon-Games-sized: 16,859 items, 128 x 20 positions
    python bench/stage3_step.py --items 1682 --experts id,aligned,text

`autograd` is the straightforward graph: each expert's [positions x catalogue] scores, made log-probabilities
(mix = "logprob"), weighted by the frequency gate, the mixture's CE plus the experts' own CE — every step of it
a [P, N] tensor kept for backward. `fused` is what `core.engine.StageModule` runs: core.losses.fused_catalogue_ce,
the same loss and gradients in one sweep over row chunks (the kNN expert's scale differentiated without a
product with its table). Rows: stage 1 (one ID expert) and stage 3 (the listed experts; `knn` is padtui's kNN
expert with a --llm-dim table). ms per step is the median of --repeats after one warm-up; ratios are against
`autograd` of the same row, measured in the same run. Both paths see the same weights and the same batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.engine import StageModule  # noqa: E402
from core.losses import catalogue_ce  # noqa: E402
from core.models.items import IDItems, LLMTable  # noqa: E402
from core.models.scorer import Expert, FrequencyGate, SeqRecommender  # noqa: E402
from core.models.text_knn import RecentMean, UnitLLMItems  # noqa: E402


class _Flat(torch.nn.Module):
    """A backbone stand-in (one linear layer): the step's cost is the scoring, which is what differs."""

    causal = True

    def __init__(self, d: int):
        super().__init__()
        self.proj = torch.nn.Linear(d, d)

    def forward(self, x, real):
        return self.proj(x)


def build(n_items: int, d: int, llm_dim: int, experts: list[str], n_bins: int = 10) -> SeqRecommender:
    torch.manual_seed(0)
    llm = LLMTable(torch.cat([torch.zeros(1, llm_dim), torch.randn(n_items, llm_dim)]))
    members = {e: Expert(UnitLLMItems(llm), RecentMean(3)) if e == "knn" else Expert(IDItems(n_items, d), _Flat(d))
               for e in experts}
    if len(experts) == 1:
        return SeqRecommender(members, n_items)
    bins = torch.randint(1, n_bins + 1, (n_items + 1,))
    return SeqRecommender(members, n_items, bins, FrequencyGate(experts, n_bins), normalise=True)


def autograd_loss(model: SeqRecommender, seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    pos = targets > 0
    selected = tuple(s[pos] for s in model.encode(seq))
    parts = [model.score(selected, only=k) for k in range(len(model.names))]
    if len(parts) == 1:
        return catalogue_ce(parts[0], targets[pos])
    mixed = model.mix(model.log_probs(parts), model.item_bin)
    own = sum(catalogue_ce(p, targets[pos]) for p in parts) / len(parts)
    return catalogue_ce(mixed, targets[pos]) + own


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
    parser.add_argument("--real", type=float, default=0.4, help="share of positions with a target (Amazon: ~0.4)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--llm-dim", type=int, default=576, help="the kNN expert's table width (SmolLM2: 576)")
    parser.add_argument("--experts", default="id,aligned,text,knn")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(1, args.items + 1, (args.batch, args.length), generator=g)
    targets = torch.randint(1, args.items + 1, (args.batch, args.length), generator=g)
    targets[torch.rand(targets.shape, generator=g) > args.real] = 0
    empty = torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.long)
    print(f"ce step, {args.items:,} items, {args.batch}x{args.length} positions ({int((targets > 0).sum())} with a "
          f"target), d={args.hidden}, kNN table {args.llm_dim}-d, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'row':<34} {'autograd ms':>12} {'fused ms':>9} {'x autograd':>11}")
    for label, experts in (("stage 1: id", ["id"]), (f"stage 3: {args.experts}", args.experts.split(","))):
        model = build(args.items, args.hidden, args.llm_dim, experts)
        module = StageModule(model, "ce", None, expert_loss=1.0 if len(experts) > 1 else 0.0)
        slow = time_step(lambda: autograd_loss(model, seq, targets), args.repeats)
        fast = time_step(lambda: module(seq, targets, *empty)["total"], args.repeats)
        print(f"{label:<34} {slow:>12.0f} {fast:>9.0f} {fast / slow:>11.2f}")


if __name__ == "__main__":
    main()
