"""`padtui run … --reuse RUN`: stages whose inputs are identical are copied from a finished run, not trained;
the first stage whose inputs differ (and every later one) is trained."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import TINY
from core.runs import RunFolder
from padtui import cli
from test_resume import one_thread, tiny_llm  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory) -> Path:
    return tiny_llm(tmp_path_factory.mktemp("tiny-bert"))


def start(capsys, runs_dir: Path, llm_dir: Path, *extra: str) -> RunFolder:
    args = ["run", "demo", "--runs-dir", str(runs_dir)]
    for s in (*TINY, f"llm.model={llm_dir}", "train.log_every_steps=100"):
        args += ["--set", s]
    assert cli.main(args + list(extra)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return RunFolder(Path(out.split("run: ", 1)[1].split()[0])), out


def test_an_ablation_of_stage_3_trains_only_stage_3(capsys, runs_dir, llm_dir, one_thread):
    base, _ = start(capsys, runs_dir, llm_dir)
    ablation, out = start(capsys, runs_dir, llm_dir, "--reuse", str(base.path),
                          "--set", "stages.disentangle.frequency_aware=false")
    assert "reuse: pretrain, align from" in out and "disentangle differs at stages.disentangle.frequency_aware" in out
    a, b = base.results()["stages"], ablation.results()["stages"]
    for stage in ("pretrain", "align"):
        assert b[stage]["test"] == a[stage]["test"] and b[stage]["reused_from"] == str(base.path.resolve())
        assert load_file(str(ablation.checkpoints / stage / "best.safetensors")).keys() == \
            load_file(str(base.checkpoints / stage / "best.safetensors")).keys()
    assert "reused_from" not in b["disentangle"] and list(b["disentangle"]["gate"]) == ["all"]
    started = [e["stage"] for e in ablation.events() if e["kind"] == "stage_start"]
    assert started == ["disentangle"]  # nothing else was trained
    ends = {e["stage"]: e for e in ablation.events() if e["kind"] == "stage_end"}
    assert ends["pretrain"]["reused_from"] and ends["disentangle"].get("reused_from") is None
    assert ablation.status() == "done"


def test_a_different_seed_reuses_nothing(capsys, runs_dir, llm_dir, one_thread):
    base, _ = start(capsys, runs_dir, llm_dir, "--stages", "pretrain")
    other, out = start(capsys, runs_dir, llm_dir, "--stages", "pretrain", "--reuse", str(base.path), "--set", "seed=7")
    assert "reuse: nothing from" in out and "pretrain differs at seed (42 there, 7 here)" in out
    assert [e["stage"] for e in other.events() if e["kind"] == "stage_start"] == ["pretrain"]


def test_reuse_of_a_folder_that_is_not_a_run_exits_2(capsys, runs_dir, tmp_path):
    code = cli.main(["run", "demo", "--runs-dir", str(runs_dir), "--stages", "pretrain", "--set", "dataset=synthetic",
                     "--reuse", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == 2 and "not a run folder" in err and "Traceback" not in err
    assert not any(runs_dir.iterdir())  # nothing was created
