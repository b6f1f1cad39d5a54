"""The PAD method itself (DESIGN §3): MK-MMD, the frequency gate, how the stages chain, the gate re-fit, and
all three stages with every backbone and every loss on synthetic data with a tiny on-the-fly LLM."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from core.losses import mk_mmd
from torch import nn

from core.models.scorer import Expert, FrequencyGate, SeqRecommender
from core.stages import checked_fit, choose_step, confident_step, margin_over
from core.runs import RunFolder, refit_line
from padtui import cli
from test_resume import tiny_llm


# ───────────────────────────── MK-MMD ─────────────────────────────


def samples(shift: float = 0.0, n: int = 300, d: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + shift


def test_mmd_is_near_zero_for_one_distribution_and_large_for_a_shifted_one():
    same = float(mk_mmd(samples(seed=1), samples(seed=2)))
    shifted = float(mk_mmd(samples(seed=1), samples(1.0, seed=2)))
    assert abs(same) < 0.01
    assert shifted > 0.3 and shifted > 30 * abs(same)


def test_mmd_is_symmetric():
    a, b = samples(seed=3), samples(0.5, seed=4)
    assert float(mk_mmd(a, b)) == pytest.approx(float(mk_mmd(b, a)), rel=1e-5)


def test_mmd_matches_a_hand_computed_four_point_example():
    s, t = [[0.0, 0.0], [1.0, 0.0]], [[0.0, 2.0], [1.0, 3.0]]
    z = s + t
    d2 = [[(a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 for b in z] for a in z]
    mean_d = sum(d2[i][j] for i in range(4) for j in range(4) if i != j) / 12
    k = [[sum(math.exp(-d2[i][j] / (2 * 2.0**u * mean_d)) for u in range(-3, 2)) for j in range(4)] for i in range(4)]
    expected = k[0][1] + k[2][3] - 2 * (k[0][2] + k[0][3] + k[1][2] + k[1][3]) / 4
    got = float(mk_mmd(torch.tensor(s), torch.tensor(t)))
    assert got == pytest.approx(expected, rel=1e-5)
    assert expected > 0.1  # the example is not trivially zero


def test_mmd_gradients_reach_both_inputs():
    a, b = samples(seed=5, n=50).requires_grad_(), samples(0.7, seed=6, n=50).requires_grad_()
    mk_mmd(a, b).backward()
    for x in (a, b):
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ───────────────────────────── gate ─────────────────────────────


def test_gate_initial_weights_match_design():
    w = FrequencyGate(["id", "aligned", "text"], 10).weights()
    assert w.shape == (3, 11)
    assert w[:, 1].tolist() == pytest.approx([0.568, 0.013, 0.419], abs=1e-3)
    assert w[:, 10].tolist() == pytest.approx([0.404, 0.005, 0.591], abs=1e-3)
    assert torch.allclose(w.sum(dim=0), torch.ones(11))
    # the collaborative expert's share falls and the text expert's rises towards the tail
    assert (w[0, 2:] < w[0, 1:-1]).all() and (w[2, 2:] > w[2, 1:-1]).all()


def test_gate_weights_depend_only_on_the_items_bin():
    gate = FrequencyGate(["id", "aligned", "text"], 4)
    with torch.no_grad():
        gate.logits.normal_()
    bins = torch.tensor([[1, 3, 1, 4], [4, 2, 2, 3]])
    w = gate.for_items(bins)  # [K, 2, 4]
    assert torch.allclose(w.sum(dim=0), torch.ones(2, 4))
    for b in range(1, 5):
        cols = w[:, bins == b]
        assert torch.allclose(cols, gate.weights()[:, b : b + 1].expand_as(cols))


def test_one_shared_gate_without_frequency_awareness():
    gate = FrequencyGate(["id", "aligned", "text"], 10, frequency_aware=False)
    w = gate.for_items(torch.arange(1, 11))
    assert gate.logits.shape == (3, 1) and torch.allclose(w, w[:, :1].expand_as(w))
    assert list(gate.table()) == ["all"]


def test_the_knn_expert_starts_off_in_every_bin():
    w = FrequencyGate(["id", "aligned", "text", "knn"], 10, knn=-4.0).weights()
    assert (w[3, 1:] < 0.02).all()
    assert FrequencyGate(["id", "knn"], 10, knn=0.0).logits[1].tolist() == [0.0] * 11


# ─────────────────── the held-out re-fit and its 2-fold check ───────────────────

N_ITEMS = 30


def two_experts(id_logit: float, text_logit: float) -> SeqRecommender:
    """A mixture whose experts' scores are given directly (only `mix` is used), the gate set by hand."""
    experts = {name: Expert(nn.Identity(), nn.Identity()) for name in ("id", "text")}
    bins = torch.tensor([0] + [1 + i % 2 for i in range(N_ITEMS)])
    model = SeqRecommender(experts, N_ITEMS, bins, FrequencyGate(["id", "text"], 2))
    with torch.no_grad():
        model.gate.logits[0].fill_(id_logit)
        model.gate.logits[1].fill_(text_logit)
    return model


def cached_half(good: str, users: int, seed: int) -> list[tuple]:
    """One batch of cached scores: expert `good` puts every user's target on top, the other expert is noise."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(1, N_ITEMS + 1, (users,), generator=g)
    sharp = 0.1 * torch.randn(users, N_ITEMS + 1, generator=g)
    sharp[torch.arange(users), target] = 5.0
    noise = torch.randn(users, N_ITEMS + 1, generator=g)
    parts = [sharp, noise] if good == "id" else [noise, sharp]
    drop = torch.zeros(users, N_ITEMS + 1, dtype=torch.bool)
    drop[:, 0] = True
    items = torch.arange(N_ITEMS + 1).expand(users, -1)  # every item a candidate
    bins = torch.tensor([0] + [1 + i % 2 for i in range(N_ITEMS)]).expand(users, -1)
    return [(parts, target, drop, bins, items)]


def test_a_refit_that_ranks_held_out_users_better_is_kept():
    model = two_experts(4.0, -4.0)  # the gate trusts the noisy expert
    halves = cached_half("text", 40, 1), cached_half("text", 40, 2)
    fit = checked_fit(model, [model.gate.logits], halves, 60, "NDCG@10", [10])
    assert fit["kept"] and fit["NDCG@10 re-fit, out of fold"] > fit["NDCG@10 as trained"] + 0.2
    assert fit["losses"][-1] < fit["losses"][0]
    assert (model.gate.weights()[1, 1:] > 0.3).all()  # from 0.0003: the good expert now counts in both bins


def test_a_refit_that_cannot_beat_the_trained_gate_leaves_it_alone():
    model = two_experts(4.0, -4.0)  # the gate already trusts the expert that ranks every target first
    before = model.gate.logits.detach().clone()
    halves = cached_half("id", 40, 1), cached_half("id", 40, 2)
    fit = checked_fit(model, [model.gate.logits], halves, 60, "NDCG@10", [10])
    assert fit["NDCG@10 as trained"] == 1.0 and not fit["kept"] and fit["step"] == 0 and fit["losses"] == []
    assert torch.equal(model.gate.logits.detach(), before)
    unchecked = checked_fit(model, [model.gate.logits], halves, 60, "NDCG@10", [10], check=False)
    assert unchecked["kept"] and "NDCG@10 re-fit, out of fold" not in unchecked
    assert not torch.equal(model.gate.logits.detach(), before)


def test_the_check_takes_the_largest_step_within_its_tolerance():
    # out of fold at steps 0, 0.1, ..., 1: the whole re-fit costs 7 %, half of it 0.4 %
    by_step = [0.0750, 0.0749, 0.0756, 0.0751, 0.0743, 0.0747, 0.0742, 0.0732, 0.0736, 0.0720, 0.0695]
    assert choose_step(by_step, 0.01) == 0.5
    assert choose_step(by_step, 0.0) == 0.3  # must rank better than the trained gate
    assert choose_step(by_step, 0.1) == 1.0
    assert choose_step([0.1] + [0.09] * 10, 0.01) == 0.0  # every step costs more: the trained gate stays


def test_a_floor_at_stage_1_keeps_only_steps_confidently_above_it():
    g = torch.Generator().manual_seed(0)
    sr = torch.rand(400, generator=g)
    ahead = sr + 0.05 + 0.02 * torch.randn(400, generator=g)  # clearly above stage 1 on every user
    level = sr + 0.02 * torch.randn(400, generator=g)  # no better than stage 1: within the noise
    per_step = [ahead] * 6 + [level] * 5  # steps 0-0.5 ahead, 0.6-1 level
    assert margin_over(ahead, sr) > 0 > margin_over(level, sr)
    assert confident_step(per_step, sr) == 0.5
    assert confident_step([level] * 11, sr) == 0.0  # nothing the fit split can vouch for: the trained gate stays
    few = confident_step([sr[:5] + 0.05 + 0.2 * torch.randn(5, generator=g)] * 11, sr[:5])
    assert few == 0.0  # a mean gain on five users is not confident


def test_a_tail_guard_rejects_steps_that_lower_the_cold_users_and_can_give_way_to_stage_1():
    g = torch.Generator().manual_seed(0)
    sr = torch.rand(400, generator=g)
    tail = torch.zeros(400, dtype=torch.bool)
    tail[:80] = True
    ahead = sr + 0.05 + 0.02 * torch.randn(400, generator=g)
    head_only = ahead.clone()
    head_only[tail] = sr[tail] - 0.05  # confidently ahead overall, yet below stage 1 on the cold users
    assert margin_over(head_only, sr) > 0
    assert confident_step([ahead] * 4 + [head_only] * 7, sr, tail) == 0.3
    assert confident_step([ahead] * 4 + [head_only] * 7, sr, tail, fallback=True) == 0.3
    # with the fallback, step 0 (the trained gate) is judged like any step, and nothing passing is "no step"
    assert confident_step([head_only] * 11, sr, tail) == 0.0
    assert confident_step([head_only] * 11, sr, tail, fallback=True) is None
    assert confident_step([ahead] + [head_only] * 10, sr, tail, fallback=True) == 0.0


def test_the_stage1_floor_records_the_cold_bar_and_says_when_it_gives_way():
    halves = cached_half("text", 40, 1), cached_half("text", 40, 2)
    model = two_experts(4.0, -4.0)
    start = model.gate.logits.detach().clone()
    perfect = (torch.ones(40), torch.ones(40))  # a stage 1 that ranks every target first: nothing can beat it
    fit = checked_fit(model, [model.gate.logits], halves, 60, "NDCG@10", [10], floor=perfect, cold_bin=2)
    assert fit["fallback"] and not fit["kept"] and fit["step"] == 0
    assert torch.equal(model.gate.logits.detach(), start)  # the caller gives way to stage 1; nothing moved here
    assert 0 < fit["cold fit users"] < 80 and fit["NDCG@10 cold, stage 1"] == 1.0
    assert "gave way to stage 1" in refit_line("gate", fit) and "cold fit users" in refit_line("gate", fit)
    easy = (torch.zeros(40), torch.zeros(40))
    other = two_experts(4.0, -4.0)
    fit = checked_fit(other, [other.gate.logits], halves, 60, "NDCG@10", [10], floor=easy, cold_bin=2)
    assert not fit["fallback"] and fit["kept"]


def test_the_refit_reports_the_floor_it_was_held_to():
    halves = cached_half("text", 40, 1), cached_half("text", 40, 2)
    model = two_experts(4.0, -4.0)
    floor = (torch.zeros(40), torch.zeros(40))  # a stage 1 that ranks no target in the top 10
    fit = checked_fit(model, [model.gate.logits], halves, 60, "NDCG@10", [10], floor=floor)
    assert fit["NDCG@10 stage 1 (floor)"] == 0.0 and fit["kept"]
    assert fit["confident margin over stage 1 by step"]["1"] > 0
    assert "beat stage 1's 0.0000 with 95 % confidence" in refit_line("gate", fit)


def test_the_gate_ends_at_the_chosen_step_between_trained_and_refitted():
    halves = cached_half("text", 40, 1), cached_half("text", 40, 2)
    whole = two_experts(4.0, -4.0)
    checked_fit(whole, [whole.gate.logits], halves, 60, "NDCG@10", [10], check=False)
    model = two_experts(4.0, -4.0)
    start = model.gate.logits.detach().clone()
    fit = checked_fit(model, [model.gate.logits], halves, 60, "NDCG@10", [10], tolerance=0.0)
    step = fit["step"]
    assert 0 < step <= 1 and fit["out of fold by step"]["0"] == fit["NDCG@10 as trained"]
    expected = start + step * (whole.gate.logits.detach() - start)
    assert torch.allclose(model.gate.logits.detach(), expected, atol=1e-6)


# ───────────────────────────── runs ─────────────────────────────


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory) -> Path:
    return tiny_llm(tmp_path_factory.mktemp("tiny-bert"))


# stage 3 as DESIGN §3 (method design-stage3): these tests take its pieces one at a time on top of it
DESIGN_STAGE3 = ('stages.disentangle.experts=["id", "aligned", "text"]', 'stages.disentangle.mix="scores"',
                 'stages.disentangle.gate_fit="train"', 'stages.disentangle.gate_fit_floor="trained"',
                 "stages.disentangle.gate_fit_users=4096")


def run(runs_dir: Path, llm_dir: Path, *sets: str, reuse: Path | None = None) -> RunFolder:
    args = ["run", "demo", "--runs-dir", str(runs_dir)]
    for s in (*TINY, f"llm.model={llm_dir}", "train.log_every_steps=100", *DESIGN_STAGE3, *sets):
        args += ["--set", s]
    if reuse is not None:
        args += ["--reuse", str(reuse)]
    before = set(runs_dir.iterdir())
    code = cli.main(args)
    folder = next(iter(set(runs_dir.iterdir()) - before))
    assert code == 0, "\n".join(RunFolder(folder).log_tail(30))
    return RunFolder(folder)


@pytest.fixture(scope="module")
def base(llm_dir, tmp_path_factory) -> RunFolder:
    """One finished tiny three-stage run (SASRec, ce), shared by the chaining and gate re-fit tests."""
    tmp = tmp_path_factory.mktemp("pad-base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PADTUI_CACHE", str(tmp / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        (tmp / "runs").mkdir()
        return run(tmp / "runs", llm_dir, "stages.align.epochs=2", "stages.disentangle.epochs=2")


def weights(run_: RunFolder, stage: str) -> dict[str, torch.Tensor]:
    return load_file(str(run_.checkpoints / stage / "best.safetensors"))


def context(run_: RunFolder):
    from core.config import load_saved_config
    from core.data import load_data
    from core.pipeline import RunContext, make_accelerator

    cfg = load_saved_config(run_.config_path)
    data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=lambda m: None)
    from core.run_writer import RunWriter

    return RunContext(RunWriter(run_.path), cfg, make_accelerator(cfg), data)


def test_stage_2_starts_from_stage_1_and_leaves_its_expert_alone(base):
    from core.stages import build_align

    s1, s2 = weights(base, "pretrain"), weights(base, "align")
    start = build_align(context(base)).model.state_dict()
    # E_al and f_al start as copies of stage 1's table and backbone …
    for key, value in s1.items():
        assert torch.equal(start[key.replace("items.embedding", "items.ids.embedding")], value), key
    # … which stage 2 then trains, while stage 1's weights, saved before stage 2 began, are not written again
    assert not torch.equal(s2["experts.0.items.ids.embedding.weight"], s1["experts.0.items.embedding.weight"])
    align_start = next(e["time"] for e in base.events() if e["kind"] == "stage_start" and e["stage"] == "align")
    assert (base.checkpoints / "pretrain" / "best.safetensors").stat().st_mtime <= align_start


def test_stage_3_starts_from_both_earlier_stages(base):
    from core.stages import build_disentangle

    model = build_disentangle(context(base)).model
    assert model.names == ["id", "aligned", "text"]
    for k, stage in ((0, "pretrain"), (1, "align")):
        saved = weights(base, stage)
        mine = model.experts[k].state_dict()
        assert len(mine) == len(saved)
        for name, value in saved.items():
            assert torch.equal(mine[name.split(".", 2)[2]], value), f"expert {model.names[k]}: {name}"


def test_results_hold_three_stages_and_the_gate(base):
    stages = base.results()["stages"]
    assert list(stages) == ["pretrain", "align", "disentangle"]
    for result in stages.values():
        for group in ("overall", "warm", "cold"):
            assert 0 <= result["test"][group]["NDCG@10"] <= 1
    gate = stages["disentangle"]["gate"]
    assert list(gate) == [str(b) for b in range(1, 11)]
    assert all(sum(w.values()) == pytest.approx(1, abs=1e-3) for w in gate.values())
    logged = [e["gate"] for e in base.events() if e["kind"] == "eval" and e["stage"] == "disentangle"]
    assert len(logged) == stages["disentangle"]["epochs_run"]


def test_gate_refit_on_validation_lowers_its_loss_and_keeps_the_experts(base, llm_dir, runs_dir, capsys):
    refit = run(runs_dir, llm_dir, "stages.align.epochs=2", "stages.disentangle.epochs=2",
                "stages.disentangle.gate_fit=\"heldout\"", "stages.disentangle.gate_fit_steps=50",
                "stages.disentangle.gate_fit_check=false", reuse=base.path)
    result = refit.results()["stages"]["disentangle"]
    assert result["gate_fit"]["kept"]
    first, last = result["gate_fit"]["loss"]
    assert last < first
    assert result["gate"] != result["gate_trained"]
    # same training as the base run (same seed, same inputs): only the gate differs afterwards
    mine, theirs = weights(refit, "disentangle"), weights(base, "disentangle")
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.equal(mine[name], theirs[name]) != (name == "gate.logits"), name
    # the monitor and `padtui show --bins` see the re-fitted gate, and the trained one next to it
    end = next(e for e in refit.events() if e["kind"] == "stage_end" and e["stage"] == "disentangle")
    assert end["gate"] == result["gate"]
    capsys.readouterr()
    assert cli.main(["show", str(refit.path), "--bins"]) == 0
    out = capsys.readouterr().out
    assert "gate after training" in out and "gate re-fitted on the fit split" in out
    assert "PAD's gate: re-fitted on" in out and "(not checked)" in out
    # the SR baseline got the same kind of held-out fit, and both sit in the results table with the text kNN
    calibrated = result["calibrated_sr"]
    assert set(calibrated["calibration"]) == {str(b) for b in range(1, 11)}
    assert calibrated["fit"]["kept"] and calibrated["fit"]["loss"][1] < calibrated["fit"]["loss"][0]
    assert calibrated["test"]["overall"]["n"] == result["test"]["overall"]["n"]
    assert "calibrated SR" in out and "text kNN" in out and "SR calibration per bin" in out
    # each expert's own per-bin ranking is kept and printed next to the stages
    assert set(result["experts_test"]) == set(result["experts_valid"]) == {"id", "aligned", "text"}
    assert "experts, each ranking alone" in out
    assert "test NDCG@10 per frequency bin" in out


def test_giving_way_to_stage_1_makes_stage_3_rank_exactly_as_stage_1(base, llm_dir, runs_dir, capsys):
    # a stage 1 the fit split cannot be confident of beating: the tiny run's few fit users cannot vouch for
    # any step (the record says so), and the shipped stage 3 then ranks every user as stage 1 does
    guarded = run(runs_dir, llm_dir, "stages.align.epochs=2", "stages.disentangle.epochs=2",
                  "stages.disentangle.gate_fit=\"heldout\"", "stages.disentangle.gate_fit_steps=50",
                  "stages.disentangle.gate_fit_floor=\"stage1\"", reuse=base.path)
    stages = guarded.results()["stages"]
    fit = stages["disentangle"]["gate_fit"]
    assert fit["fallback"], fit
    for split in ("valid", "test"):
        assert stages["disentangle"][split] == stages["pretrain"][split], split
    assert all(w["id"] == 1.0 for w in stages["disentangle"]["gate"].values())
    mine, first = weights(guarded, "disentangle"), weights(base, "pretrain")
    ids = {k: v for k, v in mine.items() if k.startswith("experts.0.")}
    assert ids and all(torch.equal(v, first[k]) for k, v in ids.items())
    capsys.readouterr()
    assert cli.main(["show", str(guarded.path), "--bins"]) == 0
    assert "gave way to stage 1" in capsys.readouterr().out


def test_show_split_valid_shows_validation_everywhere(base, capsys):
    """Choosing looks at validation only: `padtui show RUN --bins --split valid` prints no test number."""
    results = base.results()
    capsys.readouterr()
    assert cli.main(["show", str(base.path), "--bins", "--split", "valid"]) == 0
    out = capsys.readouterr().out
    assert "valid NDCG@10 per frequency bin" in out and "test NDCG@10" not in out
    stage3 = results["stages"]["disentangle"]
    for name, m in stage3["experts_valid"].items():
        assert f"{m['cold']['NDCG@10']:.4f}" in out, name
    assert f"{results['stages']['pretrain']['valid']['overall']['NDCG@10']:.4f}" in out
    assert f"{results['text_knn']['valid']['cold']['NDCG@10']:.4f}" in out


def test_a_checked_held_out_gate_is_checked_step_by_step(base, llm_dir, runs_dir):
    checked = run(runs_dir, llm_dir, "stages.align.epochs=2", "stages.disentangle.epochs=2",
                  "stages.disentangle.gate_fit=\"heldout\"", "stages.disentangle.gate_fit_steps=50", reuse=base.path)
    fit = checked.results()["stages"]["disentangle"]["gate_fit"]
    by_step = fit["out of fold by step"]
    assert list(by_step) == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]
    assert by_step["0"] == fit["NDCG@10 as trained"] and fit["tolerance"] == 0.01
    # the step taken is the largest within 1 % of the trained gate, out of fold
    assert fit["step"] == choose_step(list(by_step.values()), 0.01) and fit["kept"] == (fit["step"] > 0)


def test_expert_loss_is_logged_as_its_own_component(base, llm_dir, runs_dir):
    other = run(runs_dir, llm_dir, "stages.align.epochs=2", "stages.disentangle.epochs=1",
                "stages.disentangle.expert_loss=1.0", reuse=base.path)
    losses = [e["losses"] for e in other.events() if e["kind"] == "epoch" and e["stage"] == "disentangle"]
    assert losses and set(losses[0]) == {"rec", "experts", "total"}
    assert losses[0]["total"] == pytest.approx(losses[0]["rec"] + losses[0]["experts"], rel=1e-4)
    plain = [e["losses"] for e in base.events() if e["kind"] == "epoch" and e["stage"] == "disentangle"]
    assert set(plain[0]) == {"rec", "total"}


@pytest.mark.parametrize("kind,loss", [("sasrec", "bce"), ("sasrec", "sampled_softmax"), ("gru4rec", "ce"),
                                       ("bert4rec", "ce"), ("bert4rec", "bce")])
def test_every_backbone_and_loss_runs_all_three_stages(kind, loss, llm_dir, runs_dir):
    sets = [f"backbone.kind=\"{kind}\""] + [f"stages.{s}.loss=\"{loss}\"" for s in ("pretrain", "align", "disentangle")]
    done = run(runs_dir, llm_dir, *sets, "stages.pretrain.n_negatives=16", "stages.align.n_negatives=16",
               "stages.disentangle.n_negatives=16")
    stages = done.results()["stages"]
    assert list(stages) == ["pretrain", "align", "disentangle"] and done.status() == "done"
    for result in stages.values():
        assert all(math.isfinite(result["test"][g]["NDCG@10"]) for g in ("overall", "warm", "cold"))
    assert {"id", "aligned", "text"} == set(stages["disentangle"]["gate"]["10"])


def test_the_knn_expert_alone_ranks_exactly_as_the_text_knn(base, llm_dir, runs_dir):
    """padtui's kNN expert is the training-free text kNN with a scale: on its own it must rank every test user's
    target where the text-kNN row does, whatever stage 3 learned around it."""
    knn = run(runs_dir, llm_dir, "stages.align.epochs=2", "stages.disentangle.epochs=1",
              'stages.disentangle.experts=["id", "aligned", "text", "knn"]', reuse=base.path)
    results = knn.results()
    alone = results["stages"]["disentangle"]["experts_test"]["knn"]
    reference = results["text_knn"]["test"]
    for group in ("overall", "cold"):
        for name in ("HR@10", "NDCG@10", "MRR@20"):
            assert alone[group][name] == pytest.approx(reference[group][name], abs=1e-9), (group, name)
    assert reference["overall"]["NDCG@10"] > 0
    assert set(results["stages"]["disentangle"]["gate"]["10"]) == {"id", "aligned", "text", "knn"}


def test_recent_mean_is_the_direction_of_the_last_items():
    from core.models.text_knn import RecentMean

    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
    real = torch.tensor([[False, True, True, True]])
    out = RecentMean(window=2, scale=1.0)(x, real)
    assert torch.allclose(out[0, 1], torch.tensor([1.0, 0.0]))
    assert torch.allclose(out[0, 2], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert torch.allclose(out[0, 3], torch.tensor([0.0, 1.0]))  # the item at position 1 left the window


def test_frozen_experts_stay_as_the_earlier_stages_left_them(base, llm_dir, runs_dir):
    """stages.disentangle.freeze: stage 3 trains only the other experts and the gate (stacking)."""
    stacked = run(runs_dir, llm_dir, "method=design-stage3", "stages.align.epochs=2", "stages.disentangle.epochs=1",
                  'stages.disentangle.freeze=["id", "aligned"]', reuse=base.path)
    s1, s2, s3 = weights(stacked, "pretrain"), weights(stacked, "align"), weights(stacked, "disentangle")
    for name, value in s1.items():
        assert torch.equal(s3["experts.0." + name.split(".", 2)[2]], value), name
    for name, value in s2.items():
        assert torch.equal(s3["experts.1." + name.split(".", 2)[2]], value), name
    trained = weights(base, "disentangle")  # without freeze the same run moves them
    assert any(not torch.equal(trained[k], s3[k]) for k in s3 if k.startswith("experts.0."))
    assert any(not torch.equal(trained[k], s3[k]) for k in s3 if k.startswith("experts.2."))


def test_freeze_names_only_experts_in_the_mixture():
    from core.config import load_run_config
    from core.errors import InputError

    with pytest.raises(InputError, match="stages.disentangle.freeze"):
        load_run_config("demo", ['stages.disentangle.experts=["id", "text"]', 'stages.disentangle.freeze=["aligned"]'])


# ─────────────────── one-pass evaluation of a mixture and its experts ───────────────────


class _Last(nn.Module):
    """A causal backbone that reads each position's own item vector (enough to score a history)."""
    causal = True

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return x


def _mixture(normalise: bool) -> SeqRecommender:
    from core.models.items import IDItems
    torch.manual_seed(0)
    experts = {name: Expert(IDItems(N_ITEMS, 6), _Last()) for name in ("id", "text")}
    bins = torch.tensor([0] + [1 + i % 2 for i in range(N_ITEMS)])
    model = SeqRecommender(experts, N_ITEMS, bins, FrequencyGate(["id", "text"], 2), normalise=normalise)
    with torch.no_grad():
        model.gate.logits.normal_()
    return model


@pytest.mark.parametrize("normalise", [False, True])
def test_scoring_the_catalogue_once_gives_the_mixture_and_every_expert_as_sliced_scoring_does(normalise):
    model = _mixture(normalise)
    state = model.user_states(torch.randint(0, N_ITEMS + 1, (5, 4)))
    tables = model.tables()
    final, parts = model.whole_scores(state, tables)
    norms = model.norms(state, tables)
    sliced = torch.cat([model.score(state, tables=tables, start=a, stop=min(a + 7, N_ITEMS + 1), norms=norms)
                        for a in range(0, N_ITEMS + 1, 7)], dim=1)
    torch.testing.assert_close(final, sliced)
    for k in range(2):
        torch.testing.assert_close(parts[k], model.score(state, tables=tables, only=k))
    assert model.whole_scores(state, tables, final=False)[0] is None


def test_one_pass_evaluation_ranks_as_one_view_at_a_time_in_slices():
    from types import SimpleNamespace
    from accelerate import Accelerator
    from core.engine import evaluate, evaluate_views

    model = _mixture(normalise=True)
    g = torch.Generator().manual_seed(1)
    history = torch.randint(0, N_ITEMS + 1, (40, 5), generator=g)
    target = torch.randint(1, N_ITEMS + 1, (40,), generator=g)
    loader = [(history[i:i + 16], history[i:i + 16], target[i:i + 16]) for i in range(0, 40, 16)]

    def ctx(chunk: int):
        ev = SimpleNamespace(item_chunk=chunk, mask_history=True, ks=[5, 10])
        return SimpleNamespace(accelerator=Accelerator(cpu=True), cfg=SimpleNamespace(eval=ev),
                               item_bin_dev=model.item_bin, data=SimpleNamespace(n_bins=2))

    together, _ = evaluate_views(ctx(65536), model, loader, [None, 0, 1])  # the whole catalogue at once
    apart = [evaluate(ctx(7), model, loader, only=only)[0] for only in (None, 0, 1)]  # slices, one view a time
    assert together == apart
    assert together[1] != together[2]  # the experts are ranked apart, not copies of the mixture
