"""`padtui doctor`: what this machine offers the engine."""

from __future__ import annotations

import os
import shutil


def report() -> list[tuple[str, str, bool | None]]:
    """(check, value, ok) rows; ok None = informational."""
    rows: list[tuple[str, str, bool | None]] = []
    import torch

    rows.append(("torch", torch.__version__, True))
    rows.append(("cpu threads", f"{torch.get_num_threads()} of {os.cpu_count()} cores", None))
    cuda = torch.cuda.is_available()
    rows.append(("CUDA", torch.version.cuda or "not built with CUDA" if not cuda else f"{torch.version.cuda}, "
                 f"{torch.cuda.device_count()} GPU(s)", cuda or None))
    if cuda:
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            rows.append((f"GPU {i}", f"{torch.cuda.get_device_name(i)}, {free / 2**30:.1f} / {total / 2**30:.1f} GiB free", True))
        rows.append(("bf16", "supported" if torch.cuda.is_bf16_supported() else "not supported", torch.cuda.is_bf16_supported()))
    else:
        rows.append(("bf16", "CPU only: runs in fp32 (bf16 on CPU is ~10x slower here)", None))
    for lib in ("transformers", "datasets", "accelerate", "gguf", "safetensors", "textual"):
        try:
            mod = __import__(lib)
            rows.append((lib, getattr(mod, "__version__", "?"), True))
        except ImportError:
            rows.append((lib, "missing: pip install " + lib, False))
    from core.runs import cache_dir, default_runs_dir

    cache = cache_dir()
    usage = shutil.disk_usage(cache if cache.exists() else cache.parent if cache.parent.exists() else "/")
    rows.append(("cache folder", f"{cache} ({usage.free / 2**30:.0f} GiB free)", True))
    rows.append(("runs folder", str(default_runs_dir().resolve()), None))
    from core import assets

    for a in assets.list_assets():
        rows.append((f"asset {a['name']}", "fetched" if a["fetched"] else f"not fetched: padtui assets fetch {a['name']}",
                     True if a["fetched"] else None))
    return rows
