"""The authors' recipe and the honest protocol around stage 3: the official BCE loss and kernels by hand, the
Xavier fusion, the method presets, the anchor-free ablation, the carved fit split and the text kNN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from core.config import load_run_config, list_presets
from core.engine import StageModule, eval_inputs, fit_users
from core.errors import InputError
from core.knn import text_knn_metrics, unit_table
from core.losses import kernel_matrix, rec_loss
from core.models.items import AlignedItems, IDItems, LLMTable
from core.models.scorer import BinCalibration, Expert, SeqRecommender


class FixedScores:
    """A 'model' whose score of (row p, item i) is table[p, i]: the loss is then checkable by hand."""

    def __init__(self, table: torch.Tensor):
        self.table = table

    def score(self, state, items=None):
        rows = torch.arange(len(self.table))[:, None]
        return self.table[rows, items]


def test_official_bce_matches_a_hand_computation_on_a_tiny_batch():
    table = torch.tensor([[0.0, 2.0, -1.0, 0.5], [0.0, -0.5, 1.5, 3.0]])
    targets, negatives = torch.tensor([1, 2]), torch.tensor([3, 3])
    got = float(rec_loss(FixedScores(table), None, targets, "bce", negatives))
    bce = lambda s, y: -math.log(1 / (1 + math.exp(-s))) if y else -math.log(1 - 1 / (1 + math.exp(-s)))  # noqa: E731
    # mean over positions of BCE(σ(s⁺), 1) plus mean over positions of BCE(σ(s⁻), 0), as the authors' code
    expected = (bce(2.0, 1) + bce(1.5, 1)) / 2 + (bce(0.5, 0) + bce(3.0, 0)) / 2
    assert got == pytest.approx(expected, rel=1e-6)


def test_kernels_are_the_authors():
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    # cosine: 1 − cos (a distance, what CosKernel returns); zero rows normalise to 0 so 1 − 0 there
    cos = kernel_matrix(z[1:], "cosine")
    assert torch.allclose(cos, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), atol=1e-6)
    # laplacian: L1 distances with the Gaussian's bandwidth rule
    d1 = torch.tensor([[abs(a[0] - b[0]) + abs(a[1] - b[1]) for b in z.tolist()] for a in z.tolist()])
    mean_d = float((d1.sum() - d1.diagonal().sum()) / 6)
    expected = sum(torch.exp(-d1 / (2 * 2.0**u * mean_d)) for u in range(-3, 2))
    assert torch.allclose(kernel_matrix(z, "laplacian"), expected, atol=1e-6)
    assert torch.allclose(kernel_matrix(z, "linear"), z @ z.T)


def test_xavier_fusion_does_not_start_as_the_id_expert():
    torch.manual_seed(0)
    ids, llm = IDItems(20, 8), LLMTable(torch.randn(21, 12))
    identity = AlignedItems(ids, llm, 8, 1, 0.0, "identity").eval()
    xavier = AlignedItems(ids, llm, 8, 1, 0.0, "xavier").eval()
    items = torch.arange(1, 21)
    near_copy = nn.functional.gelu(ids(items))
    assert torch.allclose(identity(items), near_copy, atol=0.1)
    assert not torch.allclose(xavier(items), near_copy, atol=0.1)
    std = float(xavier.fusion.weight.detach().std())
    assert std == pytest.approx(math.sqrt(2 / (16 + 8)), rel=0.3) and float(xavier.fusion.bias.detach().abs().sum()) == 0


def test_the_official_method_applies_to_any_run_preset_and_run_presets_win_over_it():
    official = load_run_config("ml100k-sasrec-smollm2", ["method=pad-official"])
    assert official.method == "pad-official"
    for stage in ("pretrain", "align", "disentangle"):
        assert getattr(official.stages, stage).loss == "bce"
        assert getattr(official.stages, stage).weight_decay == 0.1
    d, a = official.stages.disentangle, official.stages.align
    assert (d.lr, d.gate_lr, d.expert_loss, d.gate_fit) == (1e-4, 1e-4, 0.0, "train")
    assert (a.mmd_weight, a.fusion_init, a.kernel, a.rec_anchor) == (0.2, "xavier", "gaussian", True)
    assert official.stages.pretrain.lr == 1e-3  # the run preset's own key wins over the method
    plain = load_run_config("ml100k-sasrec-smollm2")
    assert plain.method == "" and plain.stages.pretrain.loss == "ce"
    infonce = load_run_config("ml100k-ablate-infonce")
    assert (infonce.stages.align.objective, infonce.stages.align.mmd_weight, infonce.stages.pretrain.loss) == (
        "infonce", 0.01, "bce")
    assert {"ml100k-ablate-no-anchor", "ml100k-ablate-kernel-cosine", "ml100k-ablate-kernel-laplacian",
            "ml100k-ablate-kernel-linear", "ml100k-pad-official"} <= set(list_presets("runs"))
    for name in list_presets("runs"):
        if name.startswith("ml100k-ablate-"):
            assert load_run_config(name).method == "pad-official", name


def test_a_bad_method_is_named(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown method preset 'nosuch'"):
        load_run_config("demo", ["method=nosuch"])
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "odd.toml").write_text('seed = 3\n[stages.align]\nmmd_weight = 0.5\n')
    monkeypatch.setenv("PADTUI_PRESETS", str(tmp_path))
    with pytest.raises(InputError, match=r"odd.toml: a method preset holds only .*'seed'"):
        load_run_config("demo", ["method=odd"])
    with pytest.raises(InputError, match="rec_anchor"):
        load_run_config("demo", ["stages.align.rec_anchor=false", "stages.align.mmd_weight=0"])
    with pytest.raises(InputError, match="eval.fit_share"):
        load_run_config("demo", ["eval.fit_share=1.0"])
    with pytest.raises(InputError, match="fit split"):
        load_run_config("demo", ["eval.fit_share=0", 'stages.disentangle.gate_fit="heldout"'])


def test_without_the_anchor_only_the_alignment_term_trains():
    torch.manual_seed(0)
    llm = LLMTable(torch.randn(11, 6))
    items = AlignedItems(IDItems(10, 4), llm, 4, 1, 0.0, "xavier")

    class Backbone(nn.Module):
        causal = True

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x, real):
            return self.lin(x)

    from core.engine import AlignmentLoss

    model = SeqRecommender({"aligned": Expert(items, Backbone())}, 10)
    seq = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    targets = torch.tensor([[2, 3, 4, 5], [6, 7, 8, 9]])
    module = StageModule(model, "ce", AlignmentLoss(0.2, "mmd", "gaussian", 64, 0.1), rec_anchor=False)
    losses = module(seq, targets, torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.long))
    assert set(losses) == {"rec", "mmd", "total"} and float(losses["total"]) == pytest.approx(float(losses["mmd"]))
    losses["total"].backward()
    assert model.experts[0].backbone.lin.weight.grad is None  # no L_rec gradient reaches the encoder
    assert items.fusion.weight.grad is None
    assert items.adapter.net[0].weight.grad.abs().sum() > 0 and items.ids.embedding.weight.grad.abs().sum() > 0


def synthetic_data():
    from core.config import DatasetConfig, Synthetic
    from core.data import load_data

    cfg = DatasetConfig(source="synthetic", synthetic=Synthetic(n_users=300, n_items=120, n_topics=4))
    return load_data(cfg, 10, use_cache=False, log=lambda m: None)


def test_the_fit_split_never_overlaps_the_validation_or_the_test():
    data = synthetic_data()
    valid, fit, test = (eval_inputs(data, 20, s, 0.5) for s in ("valid", "fit", "test"))
    v_users, f_users = set(valid["users"].tolist()), set(fit["users"].tolist())
    assert not v_users & f_users and v_users | f_users == set(range(data.n_users))
    assert len(f_users) == 150
    # the fit targets are the fit users' second-last items: never a test target position, never a validation user's
    offsets = data.offsets
    for u, target in zip(fit["users"].tolist()[:50], fit["target"].tolist()):
        assert target == data.items[offsets[u + 1] - 2]
        assert data.items[offsets[u + 1] - 1] == test["target"][u]
    assert len(test["target"]) == data.n_users
    # fixed by user id: the same carve for every run and every share
    assert np.array_equal(fit_users(300, 0.5), fit_users(300, 0.5))
    assert (fit_users(300, 0.25) <= fit_users(300, 0.5)).all()
    assert len(eval_inputs(data, 20, "valid", 0.0)["target"]) == data.n_users


def test_bin_calibration_scales_and_shifts_by_bin():
    cal = BinCalibration(3)
    with torch.no_grad():
        cal.log_scale.copy_(torch.tensor([0.0, 0.0, math.log(2.0), 0.0]))
        cal.offset.copy_(torch.tensor([0.0, 1.0, 0.0, -1.0]))
    scores = torch.tensor([[1.0, 1.0, 1.0]])
    assert cal(scores, torch.tensor([1, 2, 3])).tolist() == [[2.0, 2.0, 0.0]]


def test_text_knn_ranks_by_similarity_to_the_last_items():
    # items 1-3 share a direction, 4-6 another; a user whose last items are 1 and 2 gets 3 at rank 1
    table = torch.zeros(7, 4)
    table[1:4] = torch.tensor([1.0, 0.1, 0.0, 0.0]) + 0.01 * torch.arange(3)[:, None]
    table[4:7] = torch.tensor([0.0, 0.0, 1.0, 0.2]) + 0.01 * torch.arange(3)[:, None]
    inputs = {"history": torch.tensor([[0, 1, 2], [4, 5, 6]]), "mask": torch.tensor([[0, 1, 2], [4, 5, 6]]),
              "target": torch.tensor([3, 1])}
    bins = torch.tensor([0, 1, 1, 2, 2, 2, 2])
    m = text_knn_metrics(table, inputs, bins, 2, [1, 5], last=2)
    assert m["bins"]["2"]["HR@1"] == 1.0  # user 0: item 3 first (1 and 2 are masked)
    assert m["bins"]["1"]["HR@5"] == 1.0  # user 1: its history masked, three candidates are left
    assert torch.allclose(unit_table(table)[0], torch.zeros(4))
