"""What keeps a 200,000-item run inside one machine's memory: the vectorised synthetic generator, the
integer-coded data path, sampled softmax that never builds full-catalogue logits, and the scale presets."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core.config import DatasetConfig, Synthetic, load_run_config
from core.data.prepare import build_sequences
from core.data.synthetic import Catalogue, generate_interactions, generate_items
from core.engine import StageModule
from core.errors import InputError
from core.models import build_backbone
from core.models.items import AlignedItems, IDItems, LLMTable, TextItems
from core.models.scorer import Expert, FrequencyGate, SeqRecommender

SMALL = Synthetic(n_users=300, n_items=240, n_topics=8, mean_length=15.0)

# ───────────────────────────── synthetic generator ─────────────────────────────


def test_synthetic_sizes_and_codes():
    out = generate_interactions(SMALL, seed=0)
    n = len(out["user"])
    assert all(len(out[k]) == n for k in ("user", "item", "time", "rating"))
    lengths = np.bincount(out["user"], minlength=SMALL.n_users)
    assert lengths.min() >= 5 and lengths.max() <= 400 and len(lengths) == SMALL.n_users
    assert 0.7 * SMALL.mean_length < lengths.mean() < 1.4 * SMALL.mean_length
    assert out["item"].min() >= 0 and out["item"].max() < SMALL.n_items
    assert len(out["user_ids"]) == SMALL.n_users and len(out["item_ids"]) == SMALL.n_items
    # users one after the other, each user's steps numbered 0..length-1
    assert (np.diff(out["user"]) >= 0).all()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    assert (out["time"][starts] == 0).all() and out["time"].max() == lengths.max() - 1


def test_synthetic_is_deterministic_by_seed():
    a, b, c = (generate_interactions(SMALL, seed=s) for s in (0, 0, 1))
    assert np.array_equal(a["item"], b["item"]) and np.array_equal(a["user"], b["user"])
    assert not np.array_equal(a["item"][:200], c["item"][:200])
    assert generate_items(SMALL, seed=0) == generate_items(SMALL, seed=0)
    assert generate_items(SMALL, seed=0)["title"] != generate_items(SMALL, seed=1)["title"]


def test_synthetic_text_carries_the_topic():
    items = generate_items(SMALL, seed=0)
    assert len(items["title"]) == SMALL.n_items and len(set(items["topic"])) == SMALL.n_topics
    pools: dict[str, set[str]] = {}
    for title, topic in zip(items["title"], items["topic"]):
        assert f"— a {topic} " in title  # "Word word shared — a <Topic> word"
        words = title.lower().split()
        pools.setdefault(topic, set()).update((words[0], words[1], words[-1]))
    # every topic's titles draw on its own six words: the text says which topic an item is in
    assert all(len(pool) <= 6 for pool in pools.values())
    assert len(set().union(*pools.values())) > 6 * SMALL.n_topics // 2


def test_synthetic_users_follow_topics_and_episodes():
    out = generate_interactions(SMALL, seed=0)
    cat = Catalogue(SMALL, seed=0)
    same_user = out["user"][1:] == out["user"][:-1]
    prev, nxt = out["item"][:-1][same_user], out["item"][1:][same_user]
    same_topic = cat.item_topic[prev] == cat.item_topic[nxt]
    assert same_topic.mean() > 0.7  # drift 0.15: most steps stay in the topic
    size = np.bincount(cat.item_topic)
    episode = same_topic & (cat.position[nxt] == (cat.position[prev] + 1) % size[cat.item_topic[prev]])
    assert episode.mean() > 0.3  # about half of the in-topic steps take the next episode


def test_synthetic_rejects_an_impossible_catalogue():
    with pytest.raises(InputError, match=r"dataset\.synthetic\.n_items"):
        generate_interactions(Synthetic(n_items=5, n_topics=12), seed=0)
    with pytest.raises(InputError, match=r"dataset\.synthetic\.n_users"):
        generate_items(Synthetic(n_users=0), seed=0)


def test_synthetic_scale_is_vectorised():
    """2,000,000 interactions in seconds (the per-interaction loop it replaced took minutes)."""
    big = Synthetic(n_users=10_000, n_items=40_000, n_topics=50, mean_length=40.0)
    start = time.perf_counter()
    out = generate_interactions(big, seed=0)
    assert len(out["user"]) > 350_000
    assert time.perf_counter() - start < 5.0


def test_coded_and_raw_ids_give_the_same_sequences():
    out = generate_interactions(SMALL, seed=0)
    cfg = DatasetConfig(preset="small")
    coded = build_sequences(out, cfg)
    raw = {"user": np.array(out["user_ids"])[out["user"]], "item": np.array(out["item_ids"])[out["item"]],
           "time": out["time"], "rating": out["rating"]}
    plain = build_sequences(raw, cfg)
    assert np.array_equal(coded[0], plain[0]) and np.array_equal(coded[1], plain[1])
    assert coded[2] == plain[2] and coded[3] == plain[3]


# ───────────────────────────── no full-catalogue logits ─────────────────────────────


class ShapeRecorder(torch.overrides.TorchFunctionMode):
    """Every tensor a torch function returns during the forward pass."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


N_ITEMS, D, LLM_D, L, B = 3000, 16, 24, 12, 8


def stage_models() -> dict[str, SeqRecommender]:
    cfg = load_run_config("demo", ["backbone.hidden_size=16", f"backbone.max_len={L}", "backbone.n_layers=1"])
    torch.manual_seed(0)
    llm = LLMTable(torch.randn(N_ITEMS + 1, LLM_D))
    ids = IDItems(N_ITEMS, D)
    bins = torch.randint(1, 11, (N_ITEMS + 1,))
    bins[0] = 0
    experts = {
        "id": Expert(ids, build_backbone(cfg.backbone)),
        "aligned": Expert(AlignedItems(IDItems(N_ITEMS, D), llm, D, 1, 0.1), build_backbone(cfg.backbone)),
        "text": Expert(TextItems(llm, D, 1, 0.1), build_backbone(cfg.backbone)),
    }
    return {
        "pretrain": SeqRecommender({"id": experts["id"]}, N_ITEMS),
        "align": SeqRecommender({"aligned": experts["aligned"]}, N_ITEMS),
        "disentangle": SeqRecommender(experts, N_ITEMS, bins, FrequencyGate(list(experts), 10)),
    }


def logit_shapes(model: SeqRecommender, loss: str) -> list[tuple[int, ...]]:
    """Shapes with an item axis as long as the catalogue, seen in one training step's forward pass."""
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(1, N_ITEMS + 1, (B, L), generator=g)
    targets = torch.randint(1, N_ITEMS + 1, (B, L), generator=g)
    # sampled softmax: k negatives shared by the batch; bce: one per position
    negatives = torch.randint(1, N_ITEMS + 1, (64,) if loss == "sampled_softmax" else (B, L), generator=g)
    module = StageModule(model, loss, None)
    with ShapeRecorder() as rec:
        losses = module(seq, targets, torch.zeros(0, dtype=torch.bool), negatives)
    losses["total"].backward()
    # item tables are [N+1, d]: a logits matrix has the catalogue on its last axis
    return [s for s in rec.shapes if len(s) >= 2 and s[-1] >= N_ITEMS]


@pytest.mark.parametrize("stage", ["pretrain", "align", "disentangle"])
def test_sampled_softmax_never_builds_full_catalogue_logits(stage):
    model = stage_models()[stage]
    assert logit_shapes(model, "sampled_softmax") == []
    assert logit_shapes(model, "bce") == []
    # the recorder does see them where they exist: full softmax scores every item (padding column left out)
    assert (B * L, N_ITEMS) in logit_shapes(model, "ce")


# ───────────────────────────── presets ─────────────────────────────


def test_scale_presets_validate():
    from test_cli import invoke

    code, out, err = invoke("presets", "validate", "scale-200k")  # validates its dataset preset too
    assert code == 0 and "synthetic-200k" in out, (out, err)
    cfg = load_run_config("scale-200k")
    assert cfg.dataset.synthetic.n_items == 200_000
    assert 1_800_000 <= cfg.dataset.synthetic.n_users * cfg.dataset.synthetic.mean_length <= 2_200_000
    for stage in ("pretrain", "align", "disentangle"):
        assert getattr(cfg.stages, stage).loss == "sampled_softmax"
    assert cfg.eval.item_chunk * cfg.eval.batch_size * 4 <= 64 * 2**20  # a score chunk stays ≤ 64 MiB
    assert cfg.llm.model == "asset:minilm"


# ───────────────────────────── several processes ─────────────────────────────


@pytest.mark.slow
def test_a_two_process_launch_shares_one_run_folder(tmp_path, runs_dir):
    """`torchrun` / `accelerate launch` start the same `padtui run` in every process: they must agree on one
    run folder (stages 2 and 3 on every rank read stage 1's checkpoint from it) and print one result."""
    import json
    import os
    import subprocess
    import sys

    from conftest import TINY
    from test_resume import tiny_llm

    llm = tiny_llm(tmp_path / "llm")
    sets = [a for s in (*TINY, f"llm.model={llm}") for a in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "padtui", "run", "demo", "--runs-dir", str(runs_dir), *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = list(runs_dir.iterdir())
    assert len(folders) == 1 and proc.stdout.count("run: ") == 1
    manifest = json.loads((folders[0] / "manifest.json").read_text())
    assert manifest["num_processes"] == 2
    results = json.loads((folders[0] / "results.json").read_text())
    assert set(results["stages"]) == {"pretrain", "align", "disentangle"}


def test_preflight_warns_about_full_softmax_on_a_big_catalogue(tiny_cfg, runs_dir, monkeypatch):
    from core import checks

    monkeypatch.setattr(checks, "FULL_LOGITS_WARN_BYTES", 1_000_000)  # the tiny catalogue stands in for a big one
    warnings: list[str] = []
    checks.preflight(tiny_cfg("stages.pretrain.loss=ce"), ["pretrain"], runs_dir, warn=warnings.append)
    assert any("stages.pretrain.loss = 'ce'" in w and "sampled_softmax" in w for w in warnings)
    warnings.clear()
    checks.preflight(tiny_cfg("stages.pretrain.loss=sampled_softmax"), ["pretrain"], runs_dir, warn=warnings.append)
    assert warnings == []


@pytest.mark.parametrize("stage", ["pretrain", "align", "disentangle"])
def test_a_sampled_softmax_step_encodes_only_the_scored_items(stage):
    """No tensor in the forward pass is as long as the catalogue: the LLM adapters and the fusion run on the
    batch's items and negatives, not on all items (what made stage 2/3 steps 5× slower at 200,000 items)."""
    model = stage_models()[stage]
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(1, N_ITEMS + 1, (B, L), generator=g)
    targets = torch.randint(1, N_ITEMS + 1, (B, L), generator=g)
    negatives = torch.randint(1, N_ITEMS + 1, (64,), generator=g)
    with ShapeRecorder() as rec:
        StageModule(model, "sampled_softmax", None)(seq, targets, torch.zeros(0, dtype=torch.bool), negatives)
    assert [s for s in rec.shapes if any(n >= N_ITEMS for n in s)] == []
