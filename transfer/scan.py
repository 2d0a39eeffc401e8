"""Training-set-size scan: how the result grows with the number of training events.

``--train-fraction 0.1,0.3,1.0`` trains one model per fraction on a
stratified subset of the training split
(:func:`transfer.folds.train_fraction_subset`), always with the same
validation and test events, and writes::

    OUT/fraction-0.1/ ...          complete run folders
    OUT/train_fraction_scan.csv    fraction, training events, validation and test accuracy and AUC
    OUT/train_fraction_scan.png    validation AUC and accuracy against the number of training events
    OUT/config.yaml                reproduces the whole scan

If the curve still rises at the full training set, more data would help;
if it is flat, a better model or better inputs would.

Example::

    from transfer.config import TrainConfig
    from transfer.scan import run_train_fraction_scan
    scan = run_train_fraction_scan(TrainConfig(data="images/", backbone="smallcnn", weights="none",
                                               train_fraction=(0.1, 0.3, 1.0), out="runs/scan"))
    scan.table
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer.backbones import get_backbone
from transfer.config import TrainConfig, save_config
from transfer.errors import TransferError
from transfer.files import check_output_folder, staged_folder
from transfer.folds import train_fraction_subset
from transfer.sources import open_data
from transfer.weights import resolve_weights

SCAN_CSV = "train_fraction_scan.csv"
SCAN_PNG = "train_fraction_scan.png"


@dataclass
class ScanResult:
    """What :func:`run_train_fraction_scan` returns; everything is also in ``out_dir``."""

    out_dir: Path
    runs: list  # RunResult per fraction, ascending
    table: "object"  # pandas.DataFrame, the content of train_fraction_scan.csv

    def summary_lines(self) -> list[str]:
        lines = [f"training-set-size scan: {self.out_dir}"]
        for row in self.table.itertuples():
            lines.append(f"fraction {row.fraction:g}: {row.n_train} training events, test accuracy "
                         f"{row.test_accuracy:.3f}, AUC {_text(row.test_auc)}; baseline accuracy "
                         f"{_text(row.baseline_test_accuracy)}, AUC {_text(row.baseline_test_auc)}"
                         + (" COLLAPSED" if row.collapsed else ""))
        return lines


def _text(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _auc(metrics: dict):
    auc = metrics["roc_auc"]
    auc = auc.get("macro") if isinstance(auc, dict) else auc
    return np.nan if auc is None else auc


def fraction_name(fraction: float) -> str:
    return f"fraction-{fraction:g}"


def scan_table(runs: list, fractions) -> "object":
    """One row per run: fraction, n_train, validation/test accuracy and AUC (macro for several classes), run."""
    import pandas as pd

    rows = []
    for fraction, run in zip(fractions, runs):
        m = run.metrics
        base = m.get("baseline") or {}
        rows.append({"fraction": fraction, "n_train": sum(m["events_per_class"]["train"].values()),
                     "validation_accuracy": m["validation"]["accuracy"], "validation_auc": _auc(m["validation"]),
                     "test_accuracy": m["test"]["accuracy"], "test_auc": _auc(m["test"]),
                     "baseline_test_accuracy": base["test"]["accuracy"] if base else np.nan,
                     "baseline_test_auc": _auc(base["test"]) if base else np.nan,
                     "collapsed": bool(m.get("health", {}).get("collapsed")),
                     "run": fraction_name(fraction)})
    return pd.DataFrame(rows)


def plot_scan(table, path, title: str = "Training-set-size scan") -> Path:
    """Validation AUC and accuracy (test dotted) against the number of training events."""
    from transfer.report import _figure

    figure, axes = _figure(1, 6.5, 4.5)
    ax = axes[0]
    x = table["n_train"].to_numpy()
    for column, label, style in (("validation_auc", "validation ROC AUC", "o-"),
                                 ("validation_accuracy", "validation accuracy", "s-"),
                                 ("test_auc", "test ROC AUC", "o:"), ("test_accuracy", "test accuracy", "s:"),
                                 ("baseline_test_auc", "baseline test ROC AUC", "^--"),
                                 ("baseline_test_accuracy", "baseline test accuracy", "v--")):
        if column in table and table[column].notna().any():
            ax.plot(x, table[column].to_numpy(), style, label=label,
                    alpha=1.0 if column.startswith("val") else 0.6)
    if len(x) > 1 and x.max() > 5 * x.min():
        ax.set_xscale("log")
    ax.set(xlabel="training events", ylabel="metric", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    figure.savefig(path, dpi=120)
    return Path(path)


def run_train_fraction_scan(config: TrainConfig) -> ScanResult:
    """One run per ``config.train_fraction`` on stratified training subsets (see the module docstring)."""
    from transfer.train import check_view, train_view

    fractions = config.train_fraction
    if not fractions:
        raise TransferError("train_fraction: give one or more fractions in (0, 1], e.g. 0.1,0.3,1.0")
    spec = get_backbone(config.backbone)
    out = Path(config.out or config.default_out())
    check_output_folder(out, config.overwrite)
    with open_data(config) as source:
        splits = source.default_splits
        views = []
        for fraction in fractions:  # every subset checked before any training
            try:
                train = train_fraction_subset(splits["train"], source.labels_all, fraction, config.seed)
            except ValueError as exc:
                raise TransferError(f"--train-fraction {fraction:g}: too few training events for a stratified "
                                    f"subset of every class ({exc})") from None
            views.append(source.view({**splits, "train": train}))
            views[-1].split_source = (f"{source.split_source}; training subset of fraction {fraction:g} "
                                      f"(stratified, seed {config.seed})")
        image_size = check_view(spec, views[0], config)
        weights = resolve_weights(spec, config.weights, image_size, config.on_missing_weights)
        record = TrainConfig(**{**config.to_dict(), "out": str(out), "overwrite": False})
        runs = []
        with staged_folder(out, config.overwrite) as staging:
            for fraction, view in zip(fractions, views):
                name = fraction_name(fraction)
                runs.append(train_view(config, spec, view, weights, out / name, into=staging / name, record=record,
                                       recorded={"train_fraction_run": fraction},
                                       extra_info={"train_fraction": fraction}))
            table = scan_table(runs, fractions)
            table.to_csv(staging / SCAN_CSV, index=False, float_format="%.6g")
            plot_scan(table, staging / SCAN_PNG, f"Training-set-size scan: {spec.name}")
            save_config(record, staging / "config.yaml", {
                "weights_used": weights.used, "weights_reason": weights.reason, "weights_file": weights.file,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return ScanResult(out_dir=out, runs=runs, table=table)
