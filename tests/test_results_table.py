"""The results table in words: a stage that loses is named as losing, and the evidence that explains it."""

from __future__ import annotations

from padtui.results_table import verdict


def grouped(overall: float, cold: float, n_cold: int = 500) -> dict:
    return {"test": {"overall": {"NDCG@10": overall, "n": 5000}, "cold": {"NDCG@10": cold, "n": n_cold}}}


def test_a_losing_stage_is_named_and_the_tail_signal_it_dropped_is_shown():
    results = {"stages": {"pretrain": grouped(0.10, 0.020), "align": grouped(0.105, 0.0005),
                          "disentangle": grouped(0.095, 0.014)},
               "text_knn": grouped(0.03, 0.030)}
    lines = verdict(results)
    assert lines[0].startswith("aligned: overall +5.0%, cold -97.5%") and "loses on cold NDCG@10" in lines[0]
    assert lines[1].startswith("PAD: overall -5.0%, cold -30.0%") and "loses on overall and cold" in lines[1]
    assert any("text kNN, no training" in line and "0.0300" in line for line in lines)
    assert not any("cold group has" in line for line in lines)  # 500 cold users: no small-sample warning


def test_a_gain_says_so_and_a_tiny_cold_group_is_flagged():
    results = {"stages": {"pretrain": grouped(0.10, 0.020, n_cold=40), "disentangle": grouped(0.11, 0.025, 40)},
               "text_knn": grouped(0.03, 0.010, 40)}
    lines = verdict(results)
    assert lines[0] == "PAD: overall +10.0%, cold +25.0% against the SR baseline — a gain or a tie on both."
    assert any("The cold group has 40 test users" in line for line in lines)
    assert not any("text kNN" in line for line in lines)  # the kNN is below PAD on the tail: nothing to say


def test_a_calibrated_baseline_that_beats_pad_on_the_tail_is_said():
    calibrated = {**grouped(0.107, 0.086), "fit": {"kept": True}}
    results = {"stages": {"pretrain": grouped(0.10, 0.014),
                          "disentangle": {**grouped(0.102, 0.039), "calibrated_sr": calibrated}}}
    lines = verdict(results)
    assert lines[0].startswith("PAD: overall +2.0%, cold +178.6%")
    assert any(line.startswith("A per-bin scale and offset of stage 1's own scores") and "0.0860" in line
               and "0.0390" in line for line in lines)
    calibrated["fit"]["kept"] = False  # not kept: the row is stage 1 itself, nothing to say
    assert not any("per-bin scale" in line for line in verdict(results))
    calibrated["fit"]["kept"], calibrated["test"]["cold"]["NDCG@10"] = True, 0.030  # below PAD: nothing to say
    assert not any("per-bin scale" in line for line in verdict(results))


def test_no_baseline_no_words():
    assert verdict({"stages": {}}) == []


def test_the_cost_line_gives_each_stage_its_time_and_peak_memory():
    from padtui.results_table import cost_line

    results = {"stages": {"pretrain": {"seconds": 754.2}, "align": {"seconds": 1800.0},
                          "disentangle": {"seconds": 3725.0}}}
    events = [{"kind": "step", "stage": "pretrain", "rss_mb": 700.0}, {"kind": "step", "stage": "pretrain", "rss_mb": 716.8},
              {"kind": "step", "stage": "embed", "rss_mb": 1536.0, "items_total": 16859, "items_per_s": 20.0},
              {"kind": "step", "stage": "align", "rss_mb": 1945.6}, {"kind": "eval", "stage": "disentangle"}]
    line = cost_line(results, events)
    assert line == ("time — pretrain 12:34, RSS 0.7 GB · align 30:00 + embedding 14:03 (RSS 1.5 GB), RSS 1.9 GB"
                    " · disentangle 1:02:05 · total 1:58:42")
    assert cost_line({"stages": {}}, []) == ""


def test_a_stage3_that_gave_way_says_why_instead_of_calling_a_tie_a_gain():
    fit = {"users": 500, "fallback": True, "NDCG@10 stage 1 (floor)": 0.4928, "NDCG@10 cold, stage 1": 0.1052,
           "confident margin over stage 1 by step": {"0": -0.0099, "0.5": -0.0078, "1": -0.0078},
           "NDCG@10 cold by step, out of fold": {"0": 0.1255, "1": 0.1367}}
    results = {"stages": {"pretrain": grouped(0.52, 0.136, 90),
                          "disentangle": {**grouped(0.52, 0.136, 90), "gate_fit": fit}}}
    lines = verdict(results)
    assert lines[0].startswith("PAD gave way to stage 1")
    assert "500 fit users" in lines[0] and "0.4928" in lines[0] and "-0.0078" in lines[0]
    assert "none kept" not in lines[0]  # every step kept the cold fit users above stage 1: not a reason
    assert not any("a gain or a tie" in line for line in lines)
    fit_cold = {**fit, "NDCG@10 cold by step, out of fold": {"0": 0.09, "1": 0.10}}
    results["stages"]["disentangle"]["gate_fit"] = fit_cold
    assert "none kept their cold NDCG@10 at stage 1's 0.1052" in verdict(results)[0]
