"""Training-set-size scan: how the result grows with the number of training events.

``--train-fraction 0.1,0.3,1.0`` trains one model per fraction on a
stratified subset of the training split
(:func:`transfer.data.folds.train_fraction_subset`), always with the same
validation and test events, and writes::

    OUT/fraction-0.1/ ...          complete run folders
    OUT/train_fraction_scan.csv    fraction, training events, validation and test accuracy and AUC
    OUT/train_fraction_scan.png    validation AUC and accuracy against the number of training events
    OUT/config.yaml                reproduces the whole scan

If the curve still rises at the full training set, more data would help;
if it is flat, a better model or better inputs would.

Example::

    from transfer.config import TrainConfig
    from transfer.experiments.scan import run_train_fraction_scan
    scan = run_train_fraction_scan(TrainConfig(data="images/", backbone="smallcnn", weights="none",
                                               train_fraction=(0.1, 0.3, 1.0), out="runs/scan"))
    scan.table
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer.config import TrainConfig
from transfer.data import DataSource, open_data
from transfer.data.folds import train_fraction_subset
from transfer.errors import DataError, OptionError
from transfer.evaluation.plot_style import plot_style
from transfer.training.plan import ExperimentPlan, Part, output_folder, plan_experiment

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
    from transfer.evaluation.plot_style import save_figure
    from transfer.evaluation.plots import new_figure

    figure, axes = new_figure(1, 6.5, 4.5)
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
    save_figure(figure, path, dpi=120)
    return Path(path)


def plan_train_fraction_scan(config: TrainConfig, source: DataSource, out: Path) -> ExperimentPlan:
    """One plan per ``config.train_fraction`` (stratified training subsets), all checked before any training."""
    splits = source.default_splits
    parts = []
    for fraction in config.train_fraction:
        try:
            train = train_fraction_subset(splits["train"], source.labels_all, fraction, config.seed)
        except ValueError as exc:
            raise DataError(f"--train-fraction {fraction:g}: too few training events for a stratified "
                            f"subset of every class ({exc})") from None
        view = source.view({**splits, "train": train})
        view.split_source = (f"{source.split_source}; training subset of fraction {fraction:g} "
                             f"(stratified, seed {config.seed})")
        parts.append(Part(fraction_name(fraction), view, facts={"train_fraction_run": fraction},
                          info={"train_fraction": fraction}))
    return plan_experiment(config, out, parts)


def write_scan_summary(staging: Path, plan: ExperimentPlan, runs: list):
    """train_fraction_scan.csv and .png of the scan's runs; returns the table."""
    table = scan_table(runs, [run.info["train_fraction"] for run in plan.runs])
    table.to_csv(staging / SCAN_CSV, index=False, float_format="%.6g")
    with plot_style(plan.record.plot_style, plan.record.plot_energy):
        plot_scan(table, staging / SCAN_PNG, f"Training-set-size scan: {plan.runs[0].spec.name}")
    return table


def run_train_fraction_scan(config: TrainConfig) -> ScanResult:
    """One run per ``config.train_fraction`` on stratified training subsets (see the module docstring)."""
    from transfer.training.runner import run_plans

    if not config.train_fraction:
        raise OptionError("train_fraction: give one or more fractions in (0, 1], e.g. 0.1,0.3,1.0")
    out = output_folder(config)
    with open_data(config) as source:
        runs, table = run_plans(plan_train_fraction_scan(config, source, out), write_scan_summary)
    return ScanResult(out_dir=out, runs=runs, table=table)
