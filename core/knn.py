"""The text kNN: a training-free ranking by LLM-vector similarity, to show how much tail signal the LLM carries.

score(u, i) = cos(x_i, mean of the user's last `last` history items' vectors), x the LLM table with its columns
standardised over the real items (as every expert sees it, core.models.items.LLMTable); history masked and
ranks counted exactly as in evaluation. No parameter is learned, so its validation and test numbers are honest
by construction; it is the bar a stage 3 that keeps the LLM's tail signal should reach on cold items.
"""

from __future__ import annotations

import torch

from core.metrics import grouped_metrics, target_ranks
from core.models.items import LLMTable
from core.models.text_knn import RecentMean, UnitLLMItems


def unit_table(llm_table: torch.Tensor) -> torch.Tensor:
    """[N+1, D] standardised per column over items 1..N, then L2-normalised per row; row 0 stays zero."""
    return UnitLLMItems(LLMTable(llm_table)).table()


@torch.no_grad()
def text_knn_metrics(llm_table: torch.Tensor, inputs: dict[str, torch.Tensor], item_bin: torch.Tensor, n_bins: int,
                     ks: list[int], mask_history: bool = True, last: int = 3, batch_size: int = 512,
                     chunk: int = 65536) -> dict:
    """Grouped metrics (overall / warm / cold / bins) of the text kNN on one split's eval inputs."""
    table = unit_table(llm_table)
    window = RecentMean(last, scale=1.0)
    n_items = table.shape[0] - 1
    all_ranks, all_bins = [], []
    for i in range(0, len(inputs["target"]), batch_size):
        history = inputs["history"][i:i + batch_size]
        target = inputs["target"][i:i + batch_size]
        query = window(table[history], history > 0)[:, -1]  # the kNN expert's own query, without its scale
        ranks = target_ranks(lambda a, b: query @ table[a:b].T, (query * table[target]).sum(1), target,
                             inputs["mask"][i:i + batch_size] if mask_history else None, n_items, chunk)
        all_ranks.append(ranks)
        all_bins.append(item_bin[target])
    return grouped_metrics(torch.cat(all_ranks), torch.cat(all_bins), n_bins, ks)
