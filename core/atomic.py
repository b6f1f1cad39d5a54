"""Files that appear whole or not at all: write to a temp file in the same folder, fsync, rename into place.
A crash or a full disk leaves the old file (or none), never a half-written one. JSON is written without
NaN / inf (they become null), so readers in any language can parse it."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write_file(path: Path, write: Callable[[Path], Any]) -> None:
    """Create `path` atomically: `write(tmp)` fills a temp file in the same folder, which is fsynced and then
    renamed into place. A crash or a full disk leaves the old file (or none), never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_file(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _clean(obj: Any) -> Any:
    """JSON without NaN/inf (they become null) — readers in any language can parse it."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2) + "\n")
