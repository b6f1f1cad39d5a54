"""Corrupt run state must never cost a user the runs folder: bad event lines, concurrent workers."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import InputError
from core.run_writer import RunWriter
from core.runs import RunFolder
from test_cli import invoke


def finished_run(root: Path, name: str) -> RunFolder:
    """A run folder as a finished run leaves it (config, events, results), written without training."""
    run = RunWriter(root / name)
    run.path.mkdir(parents=True)
    run.config_path.write_text('preset = "demo"\n')
    run.emit("run_start", "", run=name, preset="demo", seed=1, stages=["pretrain"])
    run.emit("run_end", "", status="done", seconds=1.0)
    metrics = {g: {"HR@10": 0.5, "NDCG@10": 0.25, "n": 10} for g in ("overall", "warm", "cold")}
    run.results_path.write_text(json.dumps({"stages": {"pretrain": {"test": metrics, "valid": metrics}}}))
    return run


BAD_LINES = [b'{"time": 1}\n', b'{"a\xff\n', b"42\n", b'{"kind": "run_end"}\n', b'{"time": 2, "kind": 7}\n',
             b'{"time": true, "kind": "step"}\n', b"[1, 2]\n", b'{"time": 3, "kind": "eval", "stage": 5}\n']


@pytest.mark.parametrize("line", BAD_LINES, ids=lambda b: b.decode("latin-1").strip())
def test_a_bad_events_line_is_skipped_counted_and_never_hides_the_other_runs(runs_dir, line):
    broken, fine = finished_run(runs_dir, "broken"), finished_run(runs_dir, "fine")
    with open(broken.events_path, "ab") as fh:
        fh.write(line)
    broken.emit("resumed", "", done=[])  # a good event after the bad line is still read
    assert [e["kind"] for e in RunFolder(broken.path).events()] == ["run_start", "run_end", "resumed"]
    code, out, err = invoke("runs", "--runs-dir", str(runs_dir))
    assert code == 0 and "broken" in out and "fine" in out, (out, err)
    assert "Traceback" not in out + err and "1 line(s) that are not events were skipped" in err
    code, out, err = invoke("show", str(broken.path))
    assert code == 0 and "SR baseline" in out and "Traceback" not in out + err
    assert err.count("skipped") == 1


def test_a_results_file_that_is_not_utf8_json_reads_as_empty(runs_dir):
    run = finished_run(runs_dir, "r")
    run.results_path.write_bytes(b'{"stages": \xff')
    assert run.results() == {}
    run.results_path.write_text("[1, 2]")
    assert run.results() == {} and run.manifest() == {}
    code, out, err = invoke("runs", "--runs-dir", str(runs_dir))
    assert code == 0 and "Traceback" not in out + err


def _try_lock(path: str, start: float, queue, everyone_tried) -> None:
    while time.time() < start:
        pass
    run = RunWriter(Path(path))
    try:
        run.acquire()
    except InputError:
        queue.put(0)
        return
    queue.put(1)
    everyone_tried.wait(60)  # hold it until every other process has tried (however late a loaded machine starts it)
    run.release()


def test_the_run_lock_is_atomic_under_many_concurrent_tries_with_a_stale_pid(runs_dir):
    run = finished_run(runs_dir, "locked")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ctx = multiprocessing.get_context("fork")
    for trial in range(20):
        run.pid_path.write_text(f"{dead.pid}\n")  # the state after any crash
        queue, everyone_tried = ctx.Queue(), ctx.Event()
        start = time.time() + 0.2
        procs = [ctx.Process(target=_try_lock, args=(str(run.path), start, queue, everyone_tried)) for _ in range(10)]
        for p in procs:
            p.start()
        got = [queue.get(timeout=30) for _ in procs]
        everyone_tried.set()
        for p in procs:
            p.join(timeout=30)
        assert sum(got) == 1, f"trial {trial}: {sum(got)} processes got the lock"
    assert not run.pid_path.exists()  # the winner released it


def test_the_lock_is_dropped_with_a_killed_worker(runs_dir):
    run = finished_run(runs_dir, "killed")
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; sys.path.insert(0, %r); from core.run_writer import RunWriter; "
                               "RunWriter(%r).acquire(); print('held', flush=True); time.sleep(60)"
                               % (str(Path(__file__).resolve().parent.parent), str(run.path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            RunWriter(run.path).acquire()
    finally:
        holder.kill()
        holder.wait()
    other = RunWriter(run.path)
    other.acquire()  # SIGKILL released the flock; the stale pid file is cleared
    assert other.worker_pid() == os.getpid()
    other.release()


# ───────────────────────────── small ones ─────────────────────────────


def test_duplicate_seeds_are_exit_2_and_leave_nothing(runs_dir):
    from test_cli import expect_input_error

    err = expect_input_error("run", "demo", "--seeds", "1,1", "--runs-dir", str(runs_dir))
    assert "seed 1 appears twice" in " ".join(err.split())
    assert list(runs_dir.iterdir()) == []


def test_presets_copy_to_a_missing_or_read_only_folder_is_exit_2(tmp_path, monkeypatch):
    from test_cli import expect_input_error

    err = expect_input_error("presets", "copy", "demo", "/nodir/x.toml")
    assert "/nodir" in err and "does not exist" in err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root writes anywhere: nothing to test then
            pytest.skip("this user can write to a read-only folder")
        err = expect_input_error("presets", "copy", "demo", str(ro / "x.toml"))
        assert "cannot write" in err
    finally:
        ro.chmod(0o700)


def test_presets_copy_with_a_bare_name_makes_a_preset_show_can_find(tmp_path, monkeypatch):
    monkeypatch.setenv("PADTUI_PRESETS", str(tmp_path / "mine"))
    code, out, err = invoke("presets", "copy", "demo", "mydemo")
    assert code == 0, err
    assert (tmp_path / "mine" / "runs" / "mydemo.toml").is_file()
    code, out, err = invoke("presets", "show", "mydemo")
    assert code == 0 and "[stages.pretrain]" in out


@pytest.mark.parametrize("command", ["attach", "show", "resume"])
def test_a_run_is_found_by_its_bare_name_and_a_missing_one_is_exit_2(command, runs_dir, monkeypatch):
    from test_cli import expect_input_error

    run = finished_run(runs_dir, "demo-20261202-101010")
    err = expect_input_error("--runs-dir", str(runs_dir), command, "nosuchrun")
    assert "nosuchrun" in err and "padtui runs" in " ".join(err.split())
    if command == "show":
        code, out, err = invoke("--runs-dir", str(runs_dir), "show", run.name)
        assert code == 0 and "SR baseline" in out
    from padtui.commands.common import find_run

    assert find_run(run.name, runs_dir) == run.path
    assert find_run(str(run.path), Path("elsewhere")) == run.path


# ───────────────────────────── resume on changed data ─────────────────────────────


def test_resume_on_changed_data_is_refused_and_the_manifest_keeps_its_record(tmp_path, runs_dir):
    from test_bad_input import local_preset, write_csv

    rows = [[f"u{u}", f"i{(u * 3 + k) % 20 + 1}", k, 5] for u in range(30) for k in range(8)]
    data = write_csv(tmp_path / "ratings.csv", ["user", "item", "ts", "rating"], rows)
    preset = local_preset(tmp_path, data, extra="[stages.pretrain]\nepochs = 1\n[backbone]\nhidden_size = 8\nmax_len = 10\n")
    code, out, err = invoke("run", str(preset), "--stages", "pretrain", "--runs-dir", str(runs_dir))
    assert code == 0, err
    run = RunFolder(next(runs_dir.iterdir()))
    manifest = run.manifest_path.read_text()
    # as a crash leaves it: no run_end
    lines = run.events_path.read_text().splitlines(keepends=True)
    run.events_path.write_text("".join(line for line in lines if '"run_end"' not in line))
    assert run.status() == "interrupted"
    write_csv(data, ["user", "item", "ts", "rating"], rows[:-40])  # 40 rows gone, the same items
    code, out, err = invoke("resume", str(run.path))
    text = " ".join(err.split())
    assert code == 2 and "the data changed since this run started" in text and "interactions 240 → 200" in text, err
    assert "dataset fingerprint" in text and "--allow-changed-data" in text and "Traceback" not in err
    assert run.manifest_path.read_text() == manifest  # the record of the original data is kept
    assert run.status() == "interrupted"  # refused, not failed: still resumable
    code, out, err = invoke("resume", str(run.path), "--allow-changed-data")
    assert code == 0, err
    assert run.manifest_path.read_text() == manifest


# ───────────────────────────── damaged checkpoints, full disks ─────────────────────────────


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A tiny two-stage run stopped after stage 1 and one epoch of stage 2 (checkpoints on disk), to damage."""
    from test_resume import tiny_llm

    root = tmp_path_factory.mktemp("damaged")
    llm = tiny_llm(root / "llm")
    return root, llm


def _train(root: Path, llm: Path, *sets: str) -> RunFolder:
    from conftest import TINY

    runs = root / "runs"
    args = ["run", "demo", "--runs-dir", str(runs), "--stages", "pretrain,align"]
    for s in (*TINY, f"llm.model={llm}", "stages.align.epochs=2", *sets):
        args += ["--set", s]
    before = set(runs.iterdir()) if runs.exists() else set()
    code, out, err = invoke(*args)
    assert code == 0, err
    return RunFolder(next(iter(set(runs.iterdir()) - before)))


def _interrupt(run: RunFolder) -> None:
    """As a crash leaves a run: no run_end, stage 2's result not yet written."""
    lines = run.events_path.read_text().splitlines(keepends=True)
    run.events_path.write_text("".join(line for line in lines if '"run_end"' not in line))
    results = json.loads(run.results_path.read_text())
    results["stages"].pop("align")
    run.results_path.write_text(json.dumps(results))


@pytest.mark.parametrize("damage", ["model.safetensors", "optimizer.bin", "trainer.json"])
def test_a_damaged_last_checkpoint_names_the_file_and_what_to_delete(stopped_run, damage, tmp_cache):
    root, llm = stopped_run
    run = _train(root, llm)
    _interrupt(run)
    last = run.checkpoints / "align" / "last"
    target = next(last.glob(damage)) if damage != "trainer.json" else last / damage
    target.write_bytes(target.read_bytes()[:20])
    code, out, err = invoke("resume", str(run.path))
    text = " ".join(err.split())
    assert code == 1 and "damaged" in text and str(last) in text and "Delete" in text, err
    assert "Traceback" not in err
    import shutil

    shutil.rmtree(last)  # what the message says to do
    code, out, err = invoke("resume", str(run.path))
    assert code == 0, err
    assert set(run.results()["stages"]) == {"pretrain", "align"}


def test_a_damaged_last_falls_back_to_the_previous_one_when_a_crash_kept_it(stopped_run, tmp_cache):
    import shutil

    root, llm = stopped_run
    run = _train(root, llm)
    _interrupt(run)
    last = run.checkpoints / "align" / "last"
    shutil.copytree(last, last.with_name("last.old"))  # a crash between the two renames of a swap
    (last / "model.safetensors").write_bytes(b"\x00" * 10)
    code, out, err = invoke("resume", str(run.path))
    assert code == 0, err
    assert any("resuming from the previous checkpoint" in line for line in run.log_tail(100))


def test_a_damaged_best_checkpoint_says_which_folder_to_delete_and_resume_retrains_it(stopped_run, tmp_cache):
    root, llm = stopped_run
    run = _train(root, llm)
    _interrupt(run)
    best = run.checkpoints / "pretrain" / "best.safetensors"
    best.write_bytes(best.read_bytes()[:30])
    import shutil

    shutil.rmtree(run.checkpoints / "align")  # stage 2 starts from stage 1's best: it must read the damaged file
    code, out, err = invoke("resume", str(run.path))
    text = " ".join(err.split())
    assert code == 1 and str(best) in text and "damaged" in text and f"Delete the folder {best.parent}" in text, err
    shutil.rmtree(best.parent)
    code, out, err = invoke("resume", str(run.path))
    assert code == 0, err
    assert (run.checkpoints / "pretrain" / "best.safetensors").is_file()
    assert set(run.results()["stages"]) == {"pretrain", "align"}


def test_torch_short_writes_are_recognised_as_a_full_disk(tmp_path):
    from core.pipeline import disk_failure

    run = RunFolder(tmp_path)
    exc = RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 77056 vs 76948")
    failure = disk_failure(run, exc)
    assert failure is not None and "Free some space" in str(failure) and "padtui resume" in str(failure)


# ───────────────────────────── bad cells in the data ─────────────────────────────


def _stats(tmp_path, text: bytes | str, name: str = "d.csv", extra: str = "") -> tuple[int, str, str]:
    data = tmp_path / name
    data.write_bytes(text if isinstance(text, bytes) else text.encode())
    preset = tmp_path / "p.toml"
    preset.write_text(f'[dataset]\nsource = "local"\npath = "{data}"\n'
                      f'[dataset.columns]\nuser = "user"\nitem = "item"\ntime = "ts"\n{extra}')
    return invoke("data", "stats", str(preset))


def _rows(n_users: int = 6, per_user: int = 6) -> list[str]:
    return [f"u{u},{(u * 5 + k) % 17 + 1},{k}" for u in range(n_users) for k in range(per_user)]


@pytest.mark.parametrize("bad_row, what", [("u1,3,", "blank time"), ("u1,3,nan", "NaN time"),
                                           ("u1,3,inf", "inf time"), (",3,4", "blank user"),
                                           ("u1,,4", "blank item")])
def test_bad_cells_are_named_by_row_or_dropped_with_a_count(tmp_path, bad_row, what):
    rows = _rows()
    rows.insert(4, bad_row)
    code, out, err = _stats(tmp_path, "user,item,ts\n" + "\n".join(rows) + "\n")
    text = " ".join(err.split())
    assert code == 2 and "data rows 5 " in text and "drop_bad_rows" in text and "Traceback" not in err, (what, err)
    code, out, err = _stats(tmp_path, "user,item,ts\n" + "\n".join(rows) + "\n",
                            extra="[dataset.filter]\ndrop_bad_rows = true\n")
    assert code == 0 and "36 interactions" in out, err
    assert "None" not in out


def test_numeric_ids_with_a_blank_keep_their_text(tmp_path):
    rows = _rows()
    rows.append("u9,,1")
    items = tmp_path / "items.csv"
    items.write_text("item,title\n" + "\n".join(f"{i},Title {i}" for i in range(1, 18)) + "\n")
    code, out, err = _stats(tmp_path, "user,item,ts\n" + "\n".join(rows) + "\n",
                            extra=f'[dataset.filter]\ndrop_bad_rows = true\n[dataset.items]\npath = "{items}"\n'
                                  f'key = "item"\ntext = "{{title}}"\n')
    assert code == 0, err
    assert "have no text" not in out  # "8.0" would match no item of the item file


@pytest.mark.parametrize("content, name, words", [
    (b"", "d.csv", "is empty"), (b"user,item,ts\n", "d.csv", "has no rows"),
    (b"user,item,ts\nu1,\xff\xfe,1\n", "d.csv", "not UTF-8"), (b"", "d.jsonl", "is empty")])
def test_empty_header_only_and_non_utf8_files_say_what_is_wrong(tmp_path, content, name, words):
    code, out, err = _stats(tmp_path, content, name)
    assert code == 2 and words in " ".join(err.split()) and name in err and "Traceback" not in err, err


def test_data_stats_counts_repeats_and_sparsity_stays_in_range(tmp_path):
    rows = [f"u{u},1,{k}" for u in range(4) for k in range(6)]  # every row the same item
    code, out, err = _stats(tmp_path, "user,item,ts\n" + "\n".join(rows) + "\n")
    assert code == 0, err
    assert "sparsity 0.0000%" in out and "20 interactions repeat" in " ".join(out.split())


def test_a_nan_loss_is_reported_once(runs_dir):
    code, out, err = invoke("run", "demo", "--stages", "pretrain", "--runs-dir", str(runs_dir),
                            "--set", "stages.pretrain.lr=1e30", "--set", "stages.pretrain.max_grad_norm=0",
                            "--set", "dataset.synthetic.n_users=200", "--set", "stages.pretrain.epochs=2")
    assert code == 1
    assert (out + err).count("loss component 'rec' is") == 1, out + err


@pytest.fixture
def tiny_disk(tmp_path):
    """A 400 KB tmpfs (root only): a run on it fills the disk at its first checkpoint."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_says_free_space_then_resume_and_resume_works(tiny_disk):
    runs = tiny_disk / "runs"
    code, out, err = invoke("run", "demo", "--stages", "pretrain", "--runs-dir", str(runs),
                            "--set", "dataset.synthetic.n_users=300", "--set", "dataset.synthetic.n_items=400",
                            "--set", "stages.pretrain.epochs=3", "--set", "backbone.hidden_size=32")
    text = " ".join((out + err).split())
    assert code == 1 and "Free some space" in text and "padtui resume" in text, text
    assert "Traceback" not in text and text.count("cannot write to the run folder") == 1
    run = RunFolder(next(runs.iterdir()))
    assert not list(run.path.rglob("*.tmp")) and not list(run.checkpoints.rglob("last.tmp"))  # nothing half-written
    subprocess.run(["mount", "-o", "remount,size=50m", str(tiny_disk)], check=True)
    code, out, err = invoke("resume", str(run.path))
    assert code == 0, err
    assert run.status() == "done" and "pretrain" in run.results()["stages"]


def test_a_full_cache_disk_does_not_stop_a_run(tmp_path, runs_dir, monkeypatch):
    """The data and embedding caches are optimisations: when their disk is full the run goes on in memory."""
    from conftest import TINY
    from test_resume import tiny_llm

    llm = tiny_llm(tmp_path / "llm")
    cache = tmp_path / "cache"
    cache.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(cache)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        monkeypatch.setenv("PADTUI_CACHE", str(cache))
        args = ["run", "demo", "--runs-dir", str(runs_dir), "--stages", "pretrain,align"]
        for s in (*TINY, f"llm.model={llm}"):
            args += ["--set", s]
        code, out, err = invoke(*args)
        assert code == 0, err
        run = RunFolder(next(runs_dir.iterdir()))
        assert any("embedding cache" in line and "could not be written" in line for line in run.log_tail(100))
    finally:
        subprocess.run(["umount", "-l", str(cache)], capture_output=True)


def test_output_to_a_pipe_is_never_cut_or_wrapped(runs_dir):
    """`padtui runs | cat` and `padtui show RUN > file`: whole cells, whole lines (stdout is not a TTY here)."""
    long = "a-run-with-a-rather-long-name-that-would-not-fit-in-eighty-columns-20261202-101010"
    run = finished_run(runs_dir, long)
    for args in (["runs", "--runs-dir", str(runs_dir)], ["show", str(run.path)]):
        out = subprocess.run([sys.executable, "-m", "padtui", *args], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "COLUMNS": "80"})
        assert out.returncode == 0, out.stderr
        assert "…" not in out.stdout, out.stdout
        assert long in out.stdout  # one piece: not cut, not wrapped


def test_a_misspelt_preset_gets_a_suggestion(runs_dir):
    from test_cli import expect_input_error

    err = expect_input_error("run", "dmeo", "--runs-dir", str(runs_dir))
    assert "Did you mean demo?" in err


def test_a_second_launch_warns_that_another_run_is_training(runs_dir):
    busy = finished_run(runs_dir, "busy")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy.pid_path.write_text(f"{owner.pid}\n")
        from padtui.commands.run import warn_if_training

        code, out, err = invoke("run", "demo", "--stages", "pretrain", "--runs-dir", str(runs_dir), "--set",
                                "stages.pretrain.epochs=1", "--set", "dataset.synthetic.n_users=200")
        assert code == 0, err
        assert "busy is training on this machine" in " ".join(err.split())
        assert [r.name for r in warn_if_training(runs_dir)] == ["busy"]
    finally:
        owner.kill()
        owner.wait()


def test_padtui_run_fetches_a_missing_asset_first_and_says_so(tmp_path, runs_dir, monkeypatch):
    """`padtui run` on a fresh cache: a line names what it fetches, real pip reads a local folder (a tiny
    recbole wheel with the ml-100k layout built here, pinned by its sha256), then the run trains."""
    import dataclasses
    import hashlib
    import zipfile

    from core import assets

    spec = assets.ASSETS["ml-100k"]
    index = tmp_path / "index"
    index.mkdir()
    wheel = index / spec.wheel
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{(u * 7 + k) % 40 + 1}\t4\t{k}\n" for u in range(1, 61) for k in range(8))
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + "".join(
        f"{i}\tMovie {i}\t1990\tDrama\n" for i in range(1, 41))
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(spec.members[0], inter)
        zf.writestr(spec.members[1], item)
        zf.writestr("recbole-1.2.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: recbole\nVersion: 1.2.1\n")
        zf.writestr("recbole-1.2.1.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("recbole-1.2.1.dist-info/RECORD", "")
    monkeypatch.setitem(assets.ASSETS, "ml-100k",
                        dataclasses.replace(spec, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest()))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    from core.config import load_run_config

    assert assets.needed(load_run_config("ml100k-sasrec-smollm2"), ["pretrain"]) == ["ml-100k"]
    code, out, err = invoke("run", "ml100k-sasrec-smollm2", "--stages", "pretrain", "--runs-dir", str(runs_dir),
                            "--set", "stages.pretrain.epochs=1", "--set", "backbone.max_len=10")
    assert code == 0, err
    assert "fetching asset 'ml-100k': recbole==1.2.1 from PyPI" in " ".join(err.split())
    assert assets.is_fetched("ml-100k")


def test_show_exports_the_table_as_markdown_csv_and_latex(runs_dir):
    import csv
    import io

    run = finished_run(runs_dir, "r1")
    code, out, err = invoke("show", str(run.path), "--format", "markdown")
    assert code == 0 and "| SR baseline | 0.5000 | 0.2500 |" in out and out.count("\n|---") == 1
    code, out, err = invoke("show", str(run.path), "--format", "csv", "--split", "valid")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["row", "overall HR@10", "overall NDCG@10"] and rows[1][0] == "SR baseline"
    code, out, err = invoke("show", str(run.path), "--format", "latex")
    assert r"\begin{tabular}{lrrrrrr}" in out and r"SR baseline & 0.5000" in out and r"\end{tabular}" in out
    group = runs_dir / "g"
    group.mkdir()
    (group / "group.json").write_text('{"seeds": [1, 2]}')
    for seed in (1, 2):
        finished_run(group, f"seed-{seed}")
    code, out, err = invoke("show", str(group), "--format", "markdown")
    assert code == 0 and "0.2500 ± 0.0000" in out and "seed-1, seed-2" in out


def test_a_group_lists_its_seeds_in_seed_order(runs_dir):
    from core.runs import seed_folders

    group = runs_dir / "g"
    group.mkdir()
    (group / "group.json").write_text('{"seeds": [6, 7, 10]}')
    for seed in (10, 6, 7):
        finished_run(group, f"seed-{seed}")
    assert [p.name for p in seed_folders(group)] == ["seed-6", "seed-7", "seed-10"]
    code, out, err = invoke("show", str(group), "--format", "markdown")
    assert code == 0 and "seed-6, seed-7, seed-10" in out
