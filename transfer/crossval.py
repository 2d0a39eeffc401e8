"""Stratified K-fold cross-validation: one run folder per fold and a summary.

``--folds K`` trains K models on the same configuration. Every event is in
exactly one test fold; the rest of each fold gives up a stratified validation
part (the ``--split`` validation share of train + validation) for early
stopping, so no test event is looked at before the final evaluation
(:func:`transfer.folds.stratified_folds`). Anything fitted to the training
events (array standardisation and crop) is fitted again in every fold.

Output, written into a staged folder and renamed into place at the end::

    OUT/fold-1/ ... OUT/fold-K/   complete run folders (report.md, metrics.json, ...)
    OUT/folds_summary.json        mean, std and n over folds of every metric
    OUT/folds_summary.md          the same as a table
    OUT/config.yaml               reproduces the whole cross-validation

Example::

    from transfer.config import TrainConfig
    from transfer.crossval import run_folds
    result = run_folds(TrainConfig(data=["e=e.h5", "g=g.h5"], x_key="X", backbone="smallcnn",
                                   weights="none", folds=5, out="runs/cv"))
    result.summary["test.roc_auc"]          # {"mean": ..., "std": ..., "n": 5}
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from transfer.backbones import get_backbone
from transfer.config import TrainConfig, save_config
from transfer.errors import TransferError
from transfer.files import check_output_folder, staged_folder
from transfer.folds import stratified_folds, summarize_folds
from transfer.sources import open_data
from transfer.weights import resolve_weights

SUMMARY_JSON = "folds_summary.json"
SUMMARY_MD = "folds_summary.md"


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


def run_folds(config: TrainConfig) -> FoldsResult:
    """Train ``config.folds`` models, one per stratified fold, and summarise them (see the module docstring)."""
    from transfer.train import check_view, train_view

    k = config.folds
    if k < 2:
        raise TransferError(f"folds {k}: cross-validation needs at least 2 folds")
    spec = get_backbone(config.backbone)
    out = Path(config.out or config.default_out())
    check_output_folder(out, config.overwrite)
    with open_data(config) as source:
        source.check_folds()
        train_share, validation_share, _ = config.split
        try:
            folds = stratified_folds(source.labels_all, k, config.seed,
                                     validation_fraction=validation_share / (train_share + validation_share))
        except ValueError as exc:
            raise TransferError(f"--folds {k}: {exc}") from None
        views = [source.view({"train": f.train, "validation": f.validation, "test": f.test}) for f in folds]
        for number, view in enumerate(views, start=1):
            view.split_source = f"stratified {k}-fold cross-validation (fold {number}, seed {config.seed})"
        image_size = check_view(spec, views[0], config)
        weights = resolve_weights(spec, config.weights, image_size, config.on_missing_weights)
        record = TrainConfig(**{**config.to_dict(), "out": str(out), "overwrite": False})
        runs = []
        with staged_folder(out, config.overwrite) as staging:
            for number, view in enumerate(views, start=1):
                name = f"fold-{number}"
                runs.append(train_view(config, spec, view, weights, out / name, into=staging / name,
                                       record=record, recorded={"fold": f"{number} of {k}"},
                                       extra_info={"fold": number, "folds": k}))
            summary = summarize_folds(fold_figures(r.metrics) for r in runs)
            (staging / SUMMARY_JSON).write_text(json.dumps(
                {"folds": k, "seed": config.seed, "runs": [f"fold-{i}" for i in range(1, k + 1)],
                 "backbone": spec.name, "classes": runs[0].class_names, "summary": summary}, indent=2) + "\n",
                encoding="utf-8")
            (staging / SUMMARY_MD).write_text(summary_markdown(summary, k), encoding="utf-8")
            save_config(record, staging / "config.yaml", {
                "weights_used": weights.used, "weights_reason": weights.reason, "weights_file": weights.file,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return FoldsResult(out_dir=out, runs=runs, summary=summary)
