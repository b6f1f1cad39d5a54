"""The three-stage results table: SR baseline vs aligned vs PAD, HR@10 / NDCG@10 for overall / warm / cold.

Pure formatting over results.json's shape (no torch, no Textual); Rich renderables so the monitor, the
compare screen and the history can all show it.
"""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from core.runs import fit_value, peak_resources


STAGE_ROWS = (("pretrain", "SR baseline"), ("align", "aligned"), ("disentangle", "PAD"))
GROUPS = ("overall", "warm", "cold")
METRICS = ("HR@10", "NDCG@10")


def row_sources(results: dict) -> list[tuple[str, dict]]:
    """(label, {split: grouped metrics}) for each row present, in table order: the stages, plus the SR baseline
    with the per-bin calibration fitted on the fit split (next to PAD's held-out gate, like with like) and the
    training-free text kNN (how much tail signal the LLM carries)."""
    stages = results.get("stages", {})
    out = [(label, stages[stage]) for stage, label in STAGE_ROWS if stage in stages]
    calibrated = stages.get("disentangle", {}).get("calibrated_sr")
    if calibrated:
        out.insert(1, ("calibrated SR", calibrated))
    if results.get("text_knn"):
        out.insert(len(out) - ("disentangle" in stages) - ("align" in stages), ("text kNN", results["text_knn"]))
    return out


def metric(results: dict, stage: str, group: str, name: str, split: str = "test") -> float | None:
    return _value(results.get("stages", {}).get(stage, {}), split, group, name)


def _value(source: dict, split: str, group: str, name: str) -> float | None:
    value = source.get(split, {}).get(group, {}).get(name)
    return value if isinstance(value, (int, float)) else None


def relative_change(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return (value - base) / base


def fmt_metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def fmt_change(change: float | None) -> str:
    return "" if change is None else f"{change:+.1%}"


def rows(results: dict, split: str = "test") -> list[tuple[str, list[tuple[float | None, float | None]]]]:
    """(label, [(value, change vs stage 1) per (group, metric)]) for each row present."""
    out = []
    for label, source in row_sources(results):
        cells = []
        for group in GROUPS:
            for name in METRICS:
                value = _value(source, split, group, name)
                base = metric(results, "pretrain", group, name, split)
                cells.append((value, None if label == "SR baseline" else relative_change(value, base)))
        out.append((label, cells))
    return out


def protocol_line(results: dict) -> str:
    protocol = results.get("protocol") or {}
    parts = [f"{k}: {v}" for k, v in protocol.items() if isinstance(v, (str, int, float, bool))]
    return "protocol — " + (" · ".join(parts) if parts else "see manifest.json")


def results_table(results: dict, split: str = "test", title: str | None = None) -> Table:
    """A Rich table; relative changes sit under each value so it fits 80 columns."""
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, expand=False)
    table.add_column(f"{split}", no_wrap=True)
    for group in GROUPS:
        for name in METRICS:
            table.add_column(f"{group}\n{name}", justify="right", no_wrap=True)
    for label, cells in rows(results, split):
        texts = []
        for value, change in cells:
            text = Text(fmt_metric(value))
            if change is not None:
                text.append("\n" + fmt_change(change), style="green" if change >= 0 else "red")
            texts.append(text)
        table.add_row(label, *texts)
    return table


def verdict(results: dict, split: str = "test") -> list[str]:
    """What the table says, in words: each later row against the SR baseline on overall and cold NDCG@10, a
    loss named as a loss, and what explains most of them (a tiny cold group; tail signal the LLM carries that
    PAD did not keep; a per-bin calibration of stage 1 alone that gains more on the tail than PAD)."""
    base = results.get("stages", {}).get("pretrain")
    if not base:
        return []
    b_all, b_cold = _value(base, split, "overall", "NDCG@10"), _value(base, split, "cold", "NDCG@10")
    lines = []
    for label, source in row_sources(results):
        if label in ("SR baseline", "calibrated SR", "text kNN"):
            continue
        d_all = relative_change(_value(source, split, "overall", "NDCG@10"), b_all)
        d_cold = relative_change(_value(source, split, "cold", "NDCG@10"), b_cold)
        if d_all is None and d_cold is None:
            continue
        parts = [f"overall {fmt_change(d_all) or '—'}", f"cold {fmt_change(d_cold) or '—'}"]
        losses = [g for g, d in (("overall", d_all), ("cold", d_cold)) if d is not None and d < -0.01]
        if label == "PAD" and (fit := source.get("gate_fit", {})).get("fallback"):
            lines.append(gave_way(fit))
        elif not losses:
            lines.append(f"{label}: {', '.join(parts)} against the SR baseline — a gain or a tie on both.")
        else:
            lines.append(f"{label}: {', '.join(parts)} against the SR baseline — it loses on "
                         f"{' and '.join(losses)} NDCG@10.")
    n_cold = base.get(split, {}).get("cold", {}).get("n")
    if isinstance(n_cold, int) and n_cold < 200 and lines:
        lines.append(f"The cold group has {n_cold} {split} users: a change of a few hits moves its NDCG@10 by "
                     f"tens of per cent; compare seeds (`--seeds`) before reading much into it.")
    knn_cold = _value(results.get("text_knn") or {}, split, "cold", "NDCG@10")
    pad_cold = metric(results, "disentangle", "cold", "NDCG@10", split)
    if knn_cold is not None and pad_cold is not None and b_cold is not None and knn_cold > max(pad_cold, b_cold):
        lines.append(f"The LLM's vectors alone (text kNN, no training) rank cold items better ({knn_cold:.4f}) "
                     f"than PAD ({pad_cold:.4f}): tail signal the experts did not keep (`padtui show RUN --bins`).")
    calibrated = results.get("stages", {}).get("disentangle", {}).get("calibrated_sr") or {}
    cal_cold = _value(calibrated, split, "cold", "NDCG@10")
    if (calibrated.get("fit", {}).get("kept") and cal_cold is not None and pad_cold is not None
            and b_cold is not None and cal_cold > max(pad_cold, b_cold)):
        lines.append(f"A per-bin scale and offset of stage 1's own scores (calibrated SR, fitted on the same split "
                     f"as PAD's gate) ranks cold items better ({cal_cold:.4f}) than PAD ({pad_cold:.4f}): part of "
                     f"stage 1's tail gap here is a shift of its scores by frequency bin, which needs no text.")
    return lines


def gave_way(fit: dict) -> str:
    """Why the PAD row equals the SR baseline: no gate, the trained one included, passed the fit split's check
    (`core.stages` writes the record; its numbers are named after the run's selection metric)."""
    metric, floor = fit_value(fit, " stage 1 (floor)")
    cold = fit_value(fit, " cold, stage 1")[1]
    margins = [m for m in (fit.get("confident margin over stage 1 by step") or {}).values() if isinstance(m, float)]
    colds = [c for c in (fit_value(fit, " cold by step, out of fold")[1] or {}).values() if isinstance(c, float)]
    why = []
    if isinstance(floor, float) and margins and max(margins) <= 0:
        why.append(f"none beat stage 1's {floor:.4f} on them with 95 % confidence (best margin {max(margins):+.4f})")
    if isinstance(cold, float) and colds and max(colds) < cold:
        why.append(f"none kept their cold {metric} at stage 1's {cold:.4f}")
    return (f"PAD gave way to stage 1, so its row is the SR baseline's: stage 3 was checked on "
            f"{fit.get('users', 'the')} fit users and " + (" and ".join(why) or "no gate passed") +
            ". Stage 3's own experts are in `padtui show RUN --bins`; more users or epochs give the check more "
            "to go on.")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def cost_line(results: dict, events: list[dict]) -> str:
    """Wall time and peak RSS per stage (RSS as sampled at the logged training steps), and the LLM embedding
    next to stage 2 when this run computed it (it runs before stage 2's clock starts)."""
    rss = {stage: peak["rss_mb"] for stage, peak in peak_resources(events).items() if "rss_mb" in peak}
    embed_s = 0.0
    for e in events:
        if e.get("kind") == "step" and e.get("stage") == "embed" and e.get("items_per_s"):
            embed_s = e.get("items_total", 0) / e["items_per_s"]
    parts = []
    total = 0.0
    for stage, label in STAGE_ROWS:
        r = results.get("stages", {}).get(stage)
        if not r or not isinstance(r.get("seconds"), (int, float)):
            continue
        total += r["seconds"]
        mem = f", RSS {rss[stage] / 1024:.1f} GB" if stage in rss else ""
        extra = ""
        if stage == "align" and embed_s and "embed" in rss:  # the LLM table is built before stage 2's clock starts
            extra = f" + embedding {_clock(embed_s)} (RSS {rss['embed'] / 1024:.1f} GB)"
            total += embed_s
        parts.append(f"{stage} {_clock(r['seconds'])}{extra}{mem}")
    return ("time — " + " · ".join(parts) + f" · total {_clock(total)}") if parts else ""


def export(rows: list[tuple[str, list[str]]], fmt: str, caption: str = "") -> str:
    """The three-stage table as markdown, CSV or a LaTeX tabular (a paper's table in one command): `rows` are
    (label, one cell per (group, metric) in GROUPS × METRICS order)."""
    header = ["row"] + [f"{g} {m}" for g in GROUPS for m in METRICS]
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([label, *cells] for label, cells in rows)
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
        return ("" if not caption else caption + "\n\n") + "\n".join(lines) + "\n"
    if fmt == "latex":
        def tex(text: str) -> str:
            return text.replace("±", r"$\pm$").replace("%", r"\%").replace("_", r"\_")

        cols = "l" + "r" * (len(header) - 1)
        head = " & ".join([""] + [rf"\multicolumn{{2}}{{c}}{{{g}}}" for g in GROUPS]) + r" \\"
        sub = " & ".join([""] + list(METRICS) * len(GROUPS)) + r" \\"
        body = [" & ".join(tex(c) for c in [label, *cells]) + r" \\" for label, cells in rows]
        return "\n".join([rf"\begin{{tabular}}{{{cols}}}", r"\toprule", head, sub, r"\midrule", *body,
                          r"\bottomrule", r"\end{tabular}"]) + ("\n% " + caption if caption else "") + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def run_rows(results: dict, split: str = "test") -> list[tuple[str, list[str]]]:
    """One run's rows as text cells for `export`."""
    return [(label, [fmt_metric(v) for v, _ in cells]) for label, cells in rows(results, split)]
