"""train.log_with: a run's losses, metrics per group and gate weights reach Accelerate's trackers (read back with
TensorBoard's own event-file reader), next to the run folder, which stays the record."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY
from core import trackers
from core.errors import InputError
from core.runs import RunFolder
from padtui import cli
from test_resume import tiny_llm

pytest.importorskip("tensorboard")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> RunFolder:
    tmp = tmp_path_factory.mktemp("tracked")
    llm = tiny_llm(tmp / "llm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PADTUI_CACHE", str(tmp / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        (tmp / "runs").mkdir()
        args = ["run", "demo", "--runs-dir", str(tmp / "runs")]
        for s in (*TINY, f"llm.model={llm}", "train.log_every_steps=1", 'train.log_with=["tensorboard"]'):
            args += ["--set", s]
        assert cli.main(args) == 0
    return RunFolder(next((tmp / "runs").iterdir()))


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in folder.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_tensorboard_gets_the_runs_losses_metrics_and_gate(tracked):
    scalars = read_scalars(tracked.path / "trackers")
    for tag in ("pretrain/train/rec", "pretrain/epoch/total", "pretrain/valid/overall/NDCG@10",
                "align/train/mmd", "disentangle/valid/cold/NDCG@10", "disentangle/gate/bin1/id",
                "disentangle/best/test/overall/NDCG@10"):
        assert tag in scalars, f"{tag} missing; have {sorted(scalars)[:20]}"
    # the same numbers as the run's own events, at the same epochs
    evals = [e for e in tracked.events() if e["kind"] == "eval" and e["stage"] == "pretrain"]
    expected = [(e["epoch"], e["metrics"]["overall"]["NDCG@10"]) for e in evals]
    got = sorted(scalars["pretrain/valid/overall/NDCG@10"])
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert all(v == pytest.approx(w, rel=1e-6) for (_, v), (_, w) in zip(got, expected))
    end = next(e for e in tracked.events() if e["kind"] == "stage_end" and e["stage"] == "disentangle")
    assert scalars["disentangle/best/test/overall/NDCG@10"][-1][1] == pytest.approx(
        end["test"]["overall"]["NDCG@10"], rel=1e-6)
    # the run folder is still the record: its events and results are all there
    assert tracked.status() == "done" and "disentangle" in tracked.results()["stages"]


def test_an_unknown_or_missing_tracker_is_named_before_the_run(tmp_path, capsys):
    with pytest.raises(InputError, match="'tensorbored' is not a tracker Accelerate supports"):
        trackers.check(["tensorbored"])
    from accelerate.tracking import get_available_trackers

    available = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    absent = next((t for t in ("aim", "clearml", "dvclive", "swanlab", "comet_ml") if t not in available), None)
    if absent is None:
        pytest.skip("every tracker is installed here")
    runs = tmp_path / "runs"
    runs.mkdir()
    code = cli.main(["run", "demo", "--runs-dir", str(runs), "--set", f'train.log_with=["{absent}"]'])
    assert code == 2
    assert f"'{absent}' is not installed here" in capsys.readouterr().err
    assert not list(runs.iterdir())  # nothing was started


def test_events_map_to_scalars():
    step = trackers.scalars("step", "align", {"global_step": 7, "losses": {"rec": 1.5, "mmd": 0.25}, "lr": 1e-3})
    assert step == ({"align/train/rec": 1.5, "align/train/mmd": 0.25, "align/train/lr": 1e-3}, 7)
    ev = trackers.scalars("eval", "disentangle", {"epoch": 2, "split": "valid",
                                                  "metrics": {"cold": {"NDCG@10": 0.1, "n": 12}},
                                                  "gate": {"10": {"id": 0.3, "text": 0.7}}})
    assert ev == ({"disentangle/valid/cold/NDCG@10": 0.1, "disentangle/gate/bin10/id": 0.3,
                   "disentangle/gate/bin10/text": 0.7}, 2)
    assert trackers.scalars("run_start", "", {"run": "x"}) is None
    assert trackers.scalars("checkpoint", "pretrain", {"epoch": 1}) is None
