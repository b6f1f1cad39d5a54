"""The headless CLI end to end (DESIGN §5): one short `padtui run demo --stages pretrain` shared by the
module, then `show`, `runs`, `data stats`, `presets`, and bad input → exit 2 with a message naming the culprit
and no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from core.config import load_run_config, load_saved_config
from core.runs import RunFolder
from padtui import cli, output

ROOT = Path(__file__).resolve().parent.parent
SMALL = [
    "--set", "stages.pretrain.epochs=2",
    "--set", "dataset.synthetic.n_users=300",
    "--set", "dataset.synthetic.n_items=150",
    "--set", "dataset.synthetic.n_topics=6",
    "--set", "backbone.hidden_size=16",
    "--set", "backbone.max_len=20",
    "--set", "stages.pretrain.batch_size=64",
    "--set", "train.log_every_steps=2",
]


def invoke(*args: str) -> tuple[int, str, str]:
    """padtui.cli.main in this process → (exit code, stdout, stderr); consoles 80 wide like a pipe."""
    out, err = io.StringIO(), io.StringIO()
    saved = output.console, output.err
    output.console = Console(file=out, highlight=False, width=80)
    output.err = Console(file=err, highlight=False, width=80)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        output.console, output.err = saved
    return code, out.getvalue(), err.getvalue()


def expect_input_error(*args: str) -> str:
    """Exit code 2, an `error:` paragraph on stderr, no traceback; returns stderr."""
    code, out, err = invoke(*args)
    assert code == 2, (out, err)
    assert "error:" in err and "Traceback" not in err + out
    return err


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One short headless run for the whole module: (exit code, stdout, stderr, run folder, runs dir)."""
    import signal

    tmp = tmp_path_factory.mktemp("cli")
    runs = tmp / "runs"
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PADTUI_CACHE", str(tmp / "cache"))
        code, out, err = invoke("run", "demo", "--stages", "pretrain", "--runs-dir", str(runs), *SMALL)
    for s, handler in saved.items():
        signal.signal(s, handler)
    first = out.splitlines()[0] if out else ""
    path = Path(first.removeprefix("run: ")) if first.startswith("run: ") else None
    return code, out, err, path, runs


# ───────────────────────────── padtui run ─────────────────────────────


def test_run_exits_zero_and_prints_the_folder_first(demo_run):
    code, out, err, path, runs = demo_run
    assert code == 0, err
    assert out.splitlines()[0] == f"run: {path}"
    assert path.parent == runs and path.name.startswith("demo-")
    assert "Traceback" not in err
    assert "SR baseline" in out  # the results table closes the run


def test_run_folder_files(demo_run):
    *_, path, _ = demo_run
    for name in ("config.toml", "manifest.json", "events.jsonl", "log.txt", "results.json"):
        assert (path / name).is_file(), name
    assert (path / "checkpoints" / "pretrain" / "best.safetensors").is_file()
    assert not (path / "worker.pid").exists()  # released at the end
    cfg = load_saved_config(path / "config.toml")
    assert cfg == load_run_config("demo", SMALL[1::2])  # the fully resolved config, overrides included
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["protocol"]["ties"] == "pessimistic" and manifest["protocol"]["users"] == 300
    assert manifest["dataset"]["fingerprint"] and manifest["item_map_hash"]
    assert {"torch", "transformers", "datasets", "accelerate"} <= set(manifest["versions"])


def test_results_json(demo_run):
    *_, path, _ = demo_run
    results = json.loads((path / "results.json").read_text())
    assert results["protocol"]["mask_history"] is True
    assert list(results["stages"]) == ["pretrain"]
    stage = results["stages"]["pretrain"]
    for split in ("valid", "test"):
        groups = stage[split]
        assert set(groups) == {"overall", "warm", "cold", "bins"}
        for group in ("overall", "warm", "cold"):
            for metric in ("HR@10", "NDCG@10", "MRR@10", "HR@5", "NDCG@20"):
                assert 0.0 <= groups[group][metric] <= 1.0
        assert list(groups["bins"]) == [str(b) for b in range(1, 11)]
        users = 300 if split == "test" else 150  # validation: the users outside the fit split (eval.fit_share 0.5)
        assert groups["overall"]["n"] == users
        assert groups["warm"]["n"] + groups["cold"]["n"] == users
        assert groups["cold"] == groups["bins"]["10"]
    assert stage["best_epoch"] in (1, 2) and stage["epochs_run"] == 2
    assert stage["seconds"] > 0


def test_events_in_order(demo_run):
    *_, path, _ = demo_run
    events = RunFolder(path).events()
    for e in events:
        assert {"time", "stage", "kind"} <= set(e)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert events[-1]["status"] == "done"
    assert "error" not in kinds

    def first(kind):
        return kinds.index(kind)

    order = ["run_start", "stage_start", "step", "epoch", "eval", "checkpoint", "stage_end", "run_end"]
    positions = [first(k) for k in order]
    assert positions == sorted(positions), list(zip(order, positions))
    times = [e["time"] for e in events]
    assert times == sorted(times)
    stage_events = [e for e in events if e["kind"] not in ("run_start", "run_end")]
    assert {e["stage"] for e in stage_events} == {"pretrain"}
    assert events[0]["stage"] == "" and events[0]["stages"] == ["pretrain"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    evals = [e for e in events if e["kind"] == "eval"]
    assert [e["epoch"] for e in epochs] == [1, 2] and [e["epoch"] for e in evals] == [1, 2]
    assert all("rec" in e["losses"] and "total" in e["losses"] for e in epochs)
    assert all(set(e["metrics"]) == {"overall", "warm", "cold", "bins"} and e["split"] == "valid" for e in evals)
    # every epoch: its steps, then the epoch, its evaluation and its checkpoint
    for epoch in (1, 2):
        idx = [i for i, e in enumerate(events) if e.get("epoch") == epoch and e["kind"] != "stage_start"]
        seq = [kinds[i] for i in idx]
        assert seq[0] == "step" and seq[-3:] == ["epoch", "eval", "checkpoint"], seq
    steps = [e for e in events if e["kind"] == "step"]
    assert all(e["steps_per_epoch"] >= e["step"] >= 1 and "total" in e["losses"] for e in steps)
    end = next(e for e in events if e["kind"] == "stage_end")
    assert end["test"]["overall"]["NDCG@10"] == json.loads((path / "results.json").read_text())[
        "stages"]["pretrain"]["test"]["overall"]["NDCG@10"]


def test_show_prints_the_results_table(demo_run):
    *_, path, _ = demo_run
    code, out, err = invoke("show", str(path))
    assert code == 0, err
    results = json.loads((path / "results.json").read_text())
    ndcg = results["stages"]["pretrain"]["test"]["overall"]["NDCG@10"]
    assert "SR baseline" in out and f"{ndcg:.4f}" in out
    assert "protocol" in out and "pessimistic" in out
    code, out, err = invoke("show", str(path), "--bins")
    assert code == 0 and "bin 10" in out


def test_runs_lists_the_run(demo_run):
    *_, path, runs = demo_run
    code, out, err = invoke("runs", "--runs-dir", str(runs))
    assert code == 0, err
    assert "done" in out and "demo" in out
    assert path.name in out  # the name is what `padtui show` needs: it must not be cut to "demo-20…"


def test_runs_on_an_empty_folder(tmp_path):
    code, out, _ = invoke("--runs-dir", str(tmp_path), "runs")
    assert code == 0 and "no runs" in out


# ───────────────────────────── data, presets ─────────────────────────────


def test_data_stats_json():
    code, out, err = invoke("data", "stats", "demo", "--json", "--set", "dataset.synthetic.n_users=250",
                            "--set", "dataset.synthetic.n_items=120")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["users"] == 250 and 0 < stats["items"] <= 120
    assert len(stats["bins"]) == 10 and sum(b["test_targets"] for b in stats["bins"]) == 250
    assert {"min", "median", "mean", "max"} <= set(stats["seq_len"])
    code, out, err = invoke("data", "stats", "demo", "--set", "dataset.synthetic.n_users=250",
                            "--set", "dataset.synthetic.n_items=120")
    assert code == 0 and "250 users" in out and "frequency bins" in out


def test_data_stats_takes_a_dataset_preset_name_too():
    code, out, err = invoke("data", "stats", "synthetic", "--json", "--set", "dataset.synthetic.n_users=250",
                            "--set", "dataset.synthetic.n_items=120")
    assert code == 0 and json.loads(out)["users"] == 250, err
    code, _, err = invoke("data", "stats", "no-such-thing")
    assert code == 2 and "unknown run preset 'no-such-thing'" in err


def test_presets_list():
    code, out, _ = invoke("presets", "list")
    assert code == 0
    for name in ("demo", "synthetic", "ml100k", "sasrec", "gru4rec", "bert4rec", "minilm"):
        assert name in out


def test_presets_show_prints_valid_toml(tmp_path):
    code, out, err = invoke("presets", "show", "demo")
    assert code == 0, err
    path = tmp_path / "shown.toml"
    path.write_text(out)  # `padtui presets show demo > my.toml` must give a loadable file
    assert load_saved_config(path) == load_run_config("demo")


def test_presets_validate_and_copy(tmp_path):
    code, out, _ = invoke("presets", "validate", "demo")
    assert code == 0 and out.startswith("ok: demo")
    dest = tmp_path / "mine.toml"
    code, out, _ = invoke("presets", "copy", "demo", str(dest))
    assert code == 0 and dest.read_text() == (ROOT / "presets" / "runs" / "demo.toml").read_text()
    code, out, _ = invoke("presets", "validate", str(dest))
    assert code == 0 and "ok:" in out
    err = expect_input_error("presets", "copy", "demo", str(dest))  # never overwrite
    assert "already exists" in err


# ───────────────────────────── bad input ─────────────────────────────


def test_error_unknown_preset():
    err = expect_input_error("run", "nope")
    assert "unknown run preset 'nope'" in err and "demo" in err


def test_error_unknown_set_key(runs_dir):
    err = expect_input_error("run", "demo", "--runs-dir", str(runs_dir), "--set", "stages.pretrain.epochz=1")
    assert "'stages.pretrain.epochz'" in err
    assert not list(runs_dir.iterdir())  # nothing created for a bad config


def test_error_malformed_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('dataset = "synthetic"\n[stages.pretrain\nepochs = 1\n')
    err = expect_input_error("run", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert "broken.toml" in err and "line 2" in err


def local_preset(folder: Path, data_path: Path) -> Path:
    path = folder / "local.toml"
    path.write_text(f'[dataset]\nsource = "local"\npath = "{data_path}"\n[dataset.columns]\nuser = "u"\n')
    return path


def test_error_local_dataset_file_missing(tmp_path):
    missing = tmp_path / "ratings.csv"
    err = expect_input_error("run", str(local_preset(tmp_path, missing)), "--runs-dir", str(tmp_path / "runs"))
    assert "ratings.csv" in err and "not found" in err and "dataset.path" in err


def test_error_names_a_path_with_brackets_verbatim(tmp_path):
    """Messages are text, not Rich markup: a folder called `[old]` must appear as such."""
    folder = tmp_path / "[old]"
    folder.mkdir()
    err = expect_input_error("run", str(local_preset(folder, folder / "ratings.csv")), "--runs-dir",
                             str(tmp_path / "runs"))
    assert str(folder / "ratings.csv") in err.replace("\n", "")
    err = expect_input_error("show", str(folder))
    assert str(folder) in err


def test_error_show_on_a_folder_that_is_not_a_run(tmp_path):
    err = expect_input_error("show", str(tmp_path))
    assert str(tmp_path) in err and "not a run folder" in err
    err = expect_input_error("show", str(tmp_path / "nope"))
    assert "no such run folder" in err


@pytest.mark.parametrize("args, words", [
    (("run", "demo", "--stages", "align"), "must start with pretrain"),
    (("run", "demo", "--stages", "pretrain,finetune"), "'finetune'"),
    (("run", "demo", "--stages", "pretrain", "--seeds", "1,x"), "--seeds"),
    (("run", "demo", "--set", "novalue"), "KEY=VALUE"),
    (("presets", "show", "nope"), "unknown run preset 'nope'"),
    (("presets", "validate"), "give a preset name"),
    (("presets", "copy", "nope", "x.toml"), "unknown preset 'nope'"),
    (("data", "stats", "demo", "--set", "dataset.filter.min_user_interactions=1000"), "min_user_interactions"),
])
def test_other_input_errors(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    err = expect_input_error(*args)
    assert words in err


def test_entry_point_in_a_subprocess(tmp_path):
    """The real `python -m padtui`: exit 2 and one paragraph on stderr, no traceback; --help lists commands."""
    env = {**os.environ, "PADTUI_CACHE": str(tmp_path / "cache"), "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "padtui", "run", "nope", "--runs-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "unknown run preset 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    proc = subprocess.run([sys.executable, "-m", "padtui", "--help"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0
    for command in ("attach", "run", "resume", "show", "runs", "presets", "data", "assets", "doctor"):
        assert command in proc.stdout

