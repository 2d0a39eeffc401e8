"""Stratified K-fold cross-validation: one run folder per fold and a summary.

``--folds K`` trains K models on the same configuration. Every event is in
exactly one test fold; the rest of each fold gives up a stratified validation
part (the ``--split`` validation share of train + validation) for early
stopping, so no test event is looked at before the final evaluation
(:func:`transfer.data.folds.stratified_folds`). Anything fitted to the training
events (array standardisation and crop) is fitted again in every fold.

Output, written into a staged folder and renamed into place at the end::

    OUT/fold-1/ ... OUT/fold-K/   complete run folders (report.md, metrics.json, ...)
    OUT/folds_summary.json        mean, std and n over folds of every metric
    OUT/folds_summary.md          the same as a table
    OUT/config.yaml               reproduces the whole cross-validation

Example::

    from transfer.config import TrainConfig
    from transfer.experiments.crossval import run_folds
    result = run_folds(TrainConfig(data=["e=e.h5", "g=g.h5"], x_key="X", backbone="smallcnn",
                                   weights="none", folds=5, out="runs/cv"))
    result.summary["test.roc_auc"]          # {"mean": ..., "std": ..., "n": 5}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transfer.config import TrainConfig
from transfer.data import DataSource, open_data
from transfer.data.folds import stratified_folds, summarize_folds
from transfer.errors import DataError, OptionError
from transfer.run_folder import FOLDS_SUMMARY_JSON, FOLDS_SUMMARY_MD, write_json
from transfer.training.plan import ExperimentPlan, Part, output_folder, plan_experiment


@dataclass
class FoldsResult:
    """What :func:`run_folds` returns; everything is also in ``out_dir``."""

    out_dir: Path
    runs: list  # RunResult per fold
    summary: dict

    def summary_lines(self) -> list[str]:
        lines = [f"{len(self.runs)}-fold cross-validation: {self.out_dir}"]
        for name in ("validation.accuracy", "test.accuracy", "test.roc_auc", "test.roc_auc.macro",
                     "baseline.test.accuracy", "baseline.test.roc_auc", "baseline.test.roc_auc.macro"):
            if name in self.summary:
                s = self.summary[name]
                lines.append(f"{name}: {s['mean']:.3f} +- {s['std']:.3f} (n = {s['n']})")
        collapsed = [i for i, r in enumerate(self.runs, start=1) if r.metrics.get("health", {}).get("collapsed")]
        if collapsed:
            lines.append(f"COLLAPSED folds (learned nothing): {', '.join(map(str, collapsed))}; their numbers are "
                         "not a result")
        return lines


def fold_figures(metrics: dict) -> dict:
    """What a fold contributes to the summary: the network's and the baseline's figures, and its health."""
    figures = {"validation": metrics["validation"], "test": metrics["test"]}
    if metrics.get("baseline"):
        figures["baseline"] = {"validation": metrics["baseline"]["validation"], "test": metrics["baseline"]["test"]}
    if "health" in metrics:
        figures["health"] = {"collapsed": float(metrics["health"]["collapsed"])}
    return figures


def summary_markdown(summary: dict, k: int) -> str:
    """The summary as a markdown table: metric, mean, std, folds used."""
    lines = [f"# {k}-fold cross-validation", "", "Mean and sample standard deviation over the folds "
             "(n: folds where the metric is finite).", "", "| metric | mean | std | n |", "|---|---|---|---|"]
    for name, values in summary.items():
        lines.append(f"| {name} | {values['mean']:.4g} | {values['std']:.4g} | {values['n']} |")
    return "\n".join(lines) + "\n"


def plan_folds(config: TrainConfig, source: DataSource, out: Path) -> ExperimentPlan:
    """One plan per stratified fold of ``source``'s events, all checked before any training."""
    k = config.folds
    if k < 2:
        raise OptionError(f"folds {k}: cross-validation needs at least 2 folds")
    source.check_folds()
    train_share, validation_share, _ = config.split
    try:
        folds = stratified_folds(source.labels_all, k, config.seed,
                                 validation_fraction=validation_share / (train_share + validation_share))
    except ValueError as exc:
        raise DataError(f"--folds {k}: {exc}") from None
    parts = []
    for number, fold in enumerate(folds, start=1):
        view = source.view({"train": fold.train, "validation": fold.validation, "test": fold.test})
        view.split_source = f"stratified {k}-fold cross-validation (fold {number}, seed {config.seed})"
        parts.append(Part(f"fold-{number}", view, facts={"fold": f"{number} of {k}"},
                          info={"fold": number, "folds": k}))
    return plan_experiment(config, out, parts)


def write_folds_summary(staging: Path, plan: ExperimentPlan, runs: list) -> dict:
    """folds_summary.json and .md of the fold runs; returns the summary."""
    k, config = len(runs), plan.record
    summary = summarize_folds(fold_figures(r.metrics) for r in runs)
    write_json(staging, FOLDS_SUMMARY_JSON, {"folds": k, "seed": config.seed, "runs": [run.name for run in plan.runs],
                                       "backbone": plan.runs[0].spec.name, "classes": runs[0].class_names,
                                       "summary": summary})
    (staging / FOLDS_SUMMARY_MD).write_text(summary_markdown(summary, k), encoding="utf-8")
    return summary


def run_folds(config: TrainConfig) -> FoldsResult:
    """Train ``config.folds`` models, one per stratified fold, and summarise them (see the module docstring)."""
    from transfer.training.runner import run_plans

    if config.folds < 2:
        raise OptionError(f"folds {config.folds}: cross-validation needs at least 2 folds")
    out = output_folder(config)
    with open_data(config) as source:
        runs, summary = run_plans(plan_folds(config, source, out), write_folds_summary)
    return FoldsResult(out_dir=out, runs=runs, summary=summary)
