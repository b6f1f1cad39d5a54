"""core.metrics against hand-computed ranks and metric values (DESIGN §3: full ranking, pessimistic ties,
history masked except the target, item 0 never ranked, cold = last bin)."""

from __future__ import annotations

import math

import pytest
import torch

from core.errors import RunFailure
from core.metrics import grouped_metrics, metric_names, ndcg_of_rank, rank_metrics, target_ranks


def ranks_of(scores, targets, history=None, chunk=None) -> list[int]:
    """scores: [B, N+1] rows over item ids 0..N (column 0 = padding)."""
    s = torch.tensor(scores, dtype=torch.float32)
    t = torch.tensor(targets, dtype=torch.long)
    h = None if history is None else torch.tensor(history, dtype=torch.long)
    n_items = s.shape[1] - 1
    out = target_ranks(lambda a, b: s[:, a:b], s[torch.arange(len(t)), t], t, h, n_items, chunk or n_items)
    return out.tolist()


# ───────────────────────────── ranks ─────────────────────────────

#            pad  1    2    3    4    5
ROW = [0.0, 0.1, 0.5, 0.5, 0.9, 0.2]


def test_rank_counts_higher_scores():
    assert ranks_of([ROW], [4]) == [1]  # the best item
    assert ranks_of([ROW], [5]) == [4]  # below 4, 2, 3
    assert ranks_of([ROW], [1]) == [5]  # the worst


def test_ties_count_against_the_target():
    # item 2 ties with item 3 and is below item 4: pessimistic rank 3, whichever of the pair is the target
    assert ranks_of([ROW], [2]) == [3]
    assert ranks_of([ROW], [3]) == [3]
    # all items tied: the target is last
    assert ranks_of([[0.0] + [1.0] * 6], [3]) == [6]


def test_history_is_masked():
    assert ranks_of([ROW], [2], history=[[4, 0, 0]]) == [2]  # item 4 masked; item 3 still ties
    assert ranks_of([ROW], [2], history=[[4, 3, 0]]) == [1]
    assert ranks_of([ROW], [5], history=[[1, 0, 0]]) == [4]  # masking a lower item changes nothing


def test_duplicate_history_items_are_masked_once():
    assert ranks_of([ROW], [2], history=[[4, 4, 3, 3]]) == [1]


def test_target_is_never_masked_even_in_history():
    assert ranks_of([ROW], [2], history=[[2, 0, 0]]) == [3]
    assert ranks_of([ROW], [2], history=[[2, 4, 2]]) == [2]


def test_padding_item_is_never_ranked():
    row = [99.0, 0.1, 0.5, 0.5, 0.9, 0.2]  # item 0 scores highest
    assert ranks_of([row], [4]) == [1]
    assert ranks_of([row], [4], history=[[0, 0, 0]]) == [1]  # 0 in history means "none"


def test_several_users_in_one_batch():
    scores = [ROW, [0.0, 0.9, 0.8, 0.7, 0.6, 0.5]]
    assert ranks_of(scores, [2, 5], history=[[4, 0], [1, 2]]) == [2, 3]


def test_no_history_mask():
    assert ranks_of([ROW], [2], history=None) == [3]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 40, 41, 100])
def test_chunking_gives_the_same_ranks(chunk):
    g = torch.Generator().manual_seed(0)
    n_items, users = 41, 12
    scores = torch.randint(0, 6, (users, n_items + 1), generator=g).float()  # many ties
    targets = torch.randint(1, n_items + 1, (users,), generator=g)
    history = torch.randint(0, n_items + 1, (users, 9), generator=g)
    history[0, :3] = targets[0]  # the target inside the history
    whole = ranks_of(scores.tolist(), targets.tolist(), history.tolist(), chunk=n_items)
    assert ranks_of(scores.tolist(), targets.tolist(), history.tolist(), chunk=chunk) == whole
    # and the one-chunk ranks are what a direct count says
    for u in range(users):
        t = int(targets[u])
        masked = {int(i) for i in history[u] if int(i) not in (0, t)}
        better = sum(1 for j in range(1, n_items + 1)
                     if j != t and j not in masked and scores[u, j] >= scores[u, t])
        assert whole[u] == better + 1


def test_nan_target_scores_fail_the_run():
    with pytest.raises(RunFailure, match="NaN"):
        ranks_of([[0.0, float("nan"), 0.5, 0.2]], [1])


def test_nan_scores_of_other_items_fail_the_run():
    row = [0.0, 0.1, 0.5, float("nan"), 0.9, 0.2]
    with pytest.raises(RunFailure, match="NaN"):
        ranks_of([row], [2], chunk=2)


# ───────────────────────────── metric values ─────────────────────────────


def test_ndcg_of_known_ranks():
    assert ndcg_of_rank(1) == 1.0
    assert ndcg_of_rank(3) == pytest.approx(0.5)  # 1 / log2(4)
    assert ndcg_of_rank(7) == pytest.approx(1 / 3)  # 1 / log2(8)


def test_single_user_metrics():
    m = rank_metrics(torch.tensor([1]), [10])
    assert (m["HR@10"], m["NDCG@10"], m["MRR@10"]) == (1.0, 1.0, 1.0)
    m = rank_metrics(torch.tensor([3]), [10])
    assert m["HR@10"] == 1.0
    assert m["NDCG@10"] == pytest.approx(0.5)
    assert m["MRR@10"] == pytest.approx(1 / 3)
    m = rank_metrics(torch.tensor([11]), [10])
    assert (m["HR@10"], m["NDCG@10"], m["MRR@10"]) == (0.0, 0.0, 0.0)
    m = rank_metrics(torch.tensor([10]), [10])  # rank K is still a hit
    assert m["HR@10"] == 1.0
    assert m["NDCG@10"] == pytest.approx(1 / math.log2(11))
    assert m["MRR@10"] == pytest.approx(0.1)


def test_means_over_users_for_several_ks():
    m = rank_metrics(torch.tensor([1, 3, 11, 6]), [5, 10, 20])
    assert m["n"] == 4
    assert m["HR@5"] == pytest.approx(2 / 4)
    assert m["HR@10"] == pytest.approx(3 / 4)
    assert m["HR@20"] == pytest.approx(4 / 4)
    assert m["NDCG@5"] == pytest.approx((1 + 0.5) / 4)
    assert m["NDCG@10"] == pytest.approx((1 + 0.5 + 1 / math.log2(7)) / 4)
    assert m["NDCG@20"] == pytest.approx((1 + 0.5 + 1 / math.log2(12) + 1 / math.log2(7)) / 4)
    assert m["MRR@5"] == pytest.approx((1 + 1 / 3) / 4)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)
    assert m["MRR@20"] == pytest.approx((1 + 1 / 3 + 1 / 11 + 1 / 6) / 4)
    assert list(m) == metric_names([5, 10, 20]) + ["n"]
    assert metric_names([5, 10]) == ["HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR@5", "MRR@10"]


def test_empty_group_gives_zeros():
    m = rank_metrics(torch.tensor([], dtype=torch.long), [10])
    assert m == {"HR@10": 0.0, "NDCG@10": 0.0, "MRR@10": 0.0, "n": 0}


def test_warm_cold_and_bins():
    ranks = torch.tensor([1, 2, 5, 20, 3])
    bins = torch.tensor([1, 3, 3, 2, 1])  # 3 bins: bin 3 is cold
    g = grouped_metrics(ranks, bins, 3, [10])
    assert set(g) == {"overall", "warm", "cold", "bins"}
    assert g["overall"]["n"] == 5 and g["overall"]["HR@10"] == pytest.approx(4 / 5)
    assert g["warm"]["n"] == 3  # ranks 1, 20, 3
    assert g["warm"]["HR@10"] == pytest.approx(2 / 3)
    assert g["warm"]["NDCG@10"] == pytest.approx((1 + 0.5) / 3)
    assert g["cold"]["n"] == 2  # ranks 2, 5
    assert g["cold"]["HR@10"] == 1.0
    assert g["cold"]["MRR@10"] == pytest.approx((1 / 2 + 1 / 5) / 2)
    assert list(g["bins"]) == ["1", "2", "3"]
    assert g["bins"]["1"]["n"] == 2 and g["bins"]["1"]["MRR@10"] == pytest.approx((1 + 1 / 3) / 2)
    assert g["bins"]["2"]["n"] == 1 and g["bins"]["2"]["HR@10"] == 0.0
    assert g["bins"]["3"] == g["cold"]


def test_empty_cold_group():
    g = grouped_metrics(torch.tensor([1, 4]), torch.tensor([1, 2]), 3, [10])
    assert g["cold"]["n"] == 0 and g["cold"]["NDCG@10"] == 0.0
    assert g["warm"] == g["overall"]
