"""Benchmark core.text.embed_items against a plain transformers loop, and show nearest neighbours per pooling.

    python bench/embed.py --llm minilm
    python bench/embed.py --llm smollm2-135m --neighbours mean,prompt_last,last

The plain loop is what one writes first: the same model object, batch size and max_length, batches in item
order (unsorted, padded to the longest text in each batch), mean pooling. embed_items runs with mean pooling
too, so the two tables must agree. Both are timed in the same process; the cache is then hit once.
Embedding caches written here use a throw-away item-map hash and are deleted at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core import text  # noqa: E402
from core.assets import asset_dir, is_fetched  # noqa: E402
from core.config import LLMConfig, build, preset_path, read_toml  # noqa: E402

ML100K_TEMPLATE = "{movie_title} ({release_year}). Genres: {class}"
QUERIES = ("Toy Story (1995)", "Star Wars (1977)", "Scream (1996)")


def ml100k_texts() -> list[str] | None:
    if not is_fetched("ml-100k"):
        return None
    path = asset_dir("ml-100k") / "ml-100k.item"
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = [h.split(":", 1)[0] for h in lines[0].split("\t")]
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
    rows.sort(key=lambda r: int(r["item_id"]))
    assert [int(r["item_id"]) for r in rows] == list(range(1, len(rows) + 1)), "ml-100k item ids are not 1..N"
    return [ML100K_TEMPLATE.format(**r) for r in rows]


def synthetic_texts(n: int = 1500, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "space love war detective ghost robot island summer city family heist dragon river night road".split()
    genres = "Action Comedy Drama Horror Romance Sci-Fi Thriller Western Animation Documentary".split()
    return [
        f"The {' '.join(rng.sample(words, rng.randint(1, 4))).title()} ({rng.randint(1930, 2020)}). "
        f"Genres: {' '.join(rng.sample(genres, rng.randint(1, 3)))}"
        for _ in range(n)
    ]


@torch.inference_mode()
def plain_loop(tokenizer, model, texts: list[str], cfg: LLMConfig, device) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = []
    for b in range(0, len(texts), cfg.batch_size):
        enc = tokenizer(
            texts[b : b + cfg.batch_size], padding=True, truncation=True, max_length=cfg.max_length,
            return_tensors="pt",
        ).to(device)
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden.float() * mask).sum(1) / mask.sum(1)
        if cfg.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out.append(pooled.cpu())
    return torch.cat(out), time.perf_counter() - start


def padded_tokens(tokenizer, texts: list[str], cfg: LLMConfig) -> tuple[int, int, int]:
    """Token positions the model runs on: unsorted batches, length-sorted batches, and real tokens."""
    lengths = [len(ids) for ids in text._encode(tokenizer, texts, cfg)]
    bs = cfg.batch_size

    def padded(ls: list[int]) -> int:
        return sum(max(ls[b : b + bs]) * len(ls[b : b + bs]) for b in range(0, len(ls), bs))

    return padded(lengths), padded(sorted(lengths, reverse=True)), sum(lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="smollm2-135m", help="LLM preset name (presets/llms)")
    parser.add_argument("--dataset", default="ml100k", choices=["ml100k", "synthetic"])
    parser.add_argument("--limit", type=int, default=0, help="embed only the first N items")
    parser.add_argument("--device", default="", help="cpu / cuda; default: cuda when available")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing runs (best one is shown)")
    parser.add_argument("--neighbours", default="", help="comma list of poolings to show ML-100K neighbours for")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    path = preset_path("llms", args.llm)
    cfg = build(LLMConfig, read_toml(path), str(path))
    mean_cfg = dataclasses.replace(cfg, pooling="mean")
    texts = ml100k_texts() if args.dataset == "ml100k" else None
    source = "ML-100K titles+years+genres" if texts else "synthetic texts"
    texts = texts or synthetic_texts()
    if args.limit:
        texts = texts[: args.limit]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = f", {torch.cuda.get_device_name(0)}" if device == "cuda" else ""
    import transformers

    print(
        f"machine: {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {platform.machine()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}{gpu}"
    )
    print(
        f"llm: {args.llm} ({cfg.model}), dtype {text.resolve_dtype(cfg, device)}, batch {cfg.batch_size}, "
        f"max_length {cfg.max_length}; texts: {len(texts)} {source}"
    )

    start = time.perf_counter()
    tokenizer, model = text.load_llm(mean_cfg, device)
    load_s = time.perf_counter() - start
    plain_loop(tokenizer, model, texts[: cfg.batch_size], mean_cfg, device)  # warm-up (threads, kernels)
    tokens = padded_tokens(tokenizer, texts, mean_cfg)

    # interleaved repeats, best of each: other jobs on a shared machine make single timings noisy
    tag = f"bench-{time.time_ns()}"
    plain_s, ours_s, forward = [], [], []
    for r in range(args.repeats):
        plain, seconds = plain_loop(tokenizer, model, texts, mean_cfg, device)
        plain_s.append(seconds)
        speeds: list[float] = []
        start = time.perf_counter()
        ours = text.embed_items(
            texts, mean_cfg, ML100K_TEMPLATE, tag, device=device, cache=r == args.repeats - 1,
            progress=lambda d, t, s: speeds.append(s),
        )
        ours_s.append(time.perf_counter() - start)
        forward.append(speeds[-1])
    del model
    start = time.perf_counter()
    cached = text.embed_items(texts, mean_cfg, ML100K_TEMPLATE, tag, device=device)
    hit_s = time.perf_counter() - start
    cache_file = text.embedding_cache_path(mean_cfg, ML100K_TEMPLATE, tag)
    size_mb = cache_file.stat().st_size / 1e6
    cache_file.unlink()
    assert torch.equal(ours, cached)
    diff = (ours[1:] - plain).abs().max().item()

    n = len(texts)
    plain_ips, ours_ips, fwd_ips = n / min(plain_s), n / min(ours_s), max(forward)

    def spread(times: list[float]) -> str:
        return f"(runs: {', '.join(f'{n / t:.0f}' for t in times)})" if len(times) > 1 else ""

    rows = [
        ("model load (load_llm)", f"{load_s:.2f} s", ""),
        ("plain loop, unsorted", f"{min(plain_s):.2f} s", f"{plain_ips:.1f} items/s {spread(plain_s)}"),
        ("embed_items, forward only", f"{n / fwd_ips:.2f} s", f"{fwd_ips:.1f} items/s"),
        ("embed_items, end to end (with load)", f"{min(ours_s):.2f} s", f"{ours_ips:.1f} items/s {spread(ours_s)}"),
        ("ratio, forward (ours / plain)", f"{fwd_ips / plain_ips:.2f}x", ""),
        ("ratio, end to end (ours / plain)", f"{ours_ips / plain_ips:.2f}x", ""),
        (f"cached re-run ({size_mb:.1f} MB file)", f"{hit_s * 1000:.1f} ms", f"{min(ours_s) / hit_s:.0f}x faster"),
        ("max |ours - plain| (mean pooling)", f"{diff:.2e}", ""),
        ("tokens run, plain / sorted / real", f"{tokens[0]}", f"/ {tokens[1]} / {tokens[2]}  (noise-free: "
         f"sorting saves {tokens[0] / tokens[1]:.2f}x)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"best of {args.repeats} interleaved runs each:")
    for name, a, b in rows:
        print(f"  {name:<{width}}  {a:>10}  {b}")

    poolings = [p for p in args.neighbours.split(",") if p]
    if poolings and source.startswith("ML-100K"):
        print()
        for pooling in poolings:
            pcfg = dataclasses.replace(cfg, pooling=pooling)
            start = time.perf_counter()
            table = text.embed_items(texts, pcfg, ML100K_TEMPLATE, tag, device=device)
            seconds = time.perf_counter() - start
            text.embedding_cache_path(pcfg, ML100K_TEMPLATE, tag).unlink()
            print(f"{args.llm}, pooling {pooling} ({seconds:.1f} s):")
            for query in QUERIES:
                item = next(i for i, t in enumerate(texts, 1) if t.startswith(query))
                found = text.nearest_items(table, item, k=5)
                shown = "; ".join(f"{texts[j - 1].split('. Genres')[0]} {s:.3f}" for j, s in found)
                print(f"  {query:<18} -> {shown}")


if __name__ == "__main__":
    main()
