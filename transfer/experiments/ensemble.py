"""Ensembles of finished runs: ``python -m transfer ensemble RUN... --out DIR``.

Averages, event by event, the test-split class scores that several runs
wrote to their ``predictions.csv``. The runs must have scored the same test
events (same ``path`` ids, same true classes) with the same classes in the
same order; anything else is refused, naming the runs and the difference. The
ensemble folder gets the report of a run's evaluation: ``metrics.json``
(test split, with the members' own test accuracy and AUC),
``predictions.csv``, ``confusion_matrix.csv``/``.png``, ``roc.png``,
``discriminant.png`` and ``report.md``.

Event weights: a run trained with ``--event-weight`` writes each test event's weight in its predictions.csv
(``weight``), and the ensemble's figures (metrics, plots) use those weights, signed, as the run's did, when the
runs that record weights agree on them (runs trained without weights score the same events and take them too).
Where they disagree (``genWeight`` against ``xsec``), or a run's config.yaml records ``event_weight`` but its
predictions.csv has no weights (written before they were recorded), the ensemble's figures are unweighted, and
metrics.json (``event_weights.unweighted_because``), report.md and the console say so.

Example::

    from transfer.experiments.ensemble import ensemble_runs
    result = ensemble_runs(["runs/cnn", "runs/resnet15"], "runs/ensemble")
    result.metrics["test"]["roc_auc"]
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer.errors import RunFolderError, TransferError
from transfer.evaluation.metrics import (SCORE_PREFIX, WEIGHT_COLUMN, SplitScores, classification_metrics,
                                         signal_index)
from transfer.evaluation.plot_style import plot_style as styled
from transfer.evaluation.report import ensemble_markdown, weighting_note, write_evaluation
from transfer.files import staged_folder
from transfer.run_folder import (CONFIG_FILE, PREDICTIONS_FILE, REPORT_FILE, read_config, recorded_class_names,
                                 write_metrics)


@dataclass
class EnsembleResult:
    out_dir: Path
    metrics: dict
    class_names: list[str]

    def summary_lines(self) -> list[str]:
        test = self.metrics["test"]
        auc = test["roc_auc"]
        auc = auc.get("macro") if isinstance(auc, dict) else auc
        lines = [f"ensemble of {len(self.metrics['members'])} runs: {self.out_dir}"]
        for member in self.metrics["members"]:
            member_auc = member["roc_auc"]
            member_auc = member_auc.get("macro") if isinstance(member_auc, dict) else member_auc
            lines.append(f"  {member['run']}: test accuracy {member['accuracy']:.3f}, ROC AUC "
                         + ("n/a" if member_auc is None else f"{member_auc:.3f}"))
        lines.append(f"ensemble: test accuracy {test['accuracy']:.3f}, ROC AUC "
                     + ("n/a" if auc is None else f"{auc:.3f}"))
        note = weighting_note(self.metrics)
        return lines + ([note] if note else [])


def ensemble_weights(runs: list, members: list) -> tuple[np.ndarray | None, dict | None]:
    """(the test events' weights, metrics.json's ``event_weights``) of the ensemble of ``runs``: the weights the
    members' predictions.csv record (module docstring); (None, None) when no run is weighted, (None, reason)
    when the weights cannot be trusted."""
    from transfer.data.event_weights import FIGURES_RULE, NONE

    choices = [str(read_config(Path(run) / CONFIG_FILE, missing_ok=True).get("event_weight") or NONE) for run in runs]
    recorded = [(run, choice, m[WEIGHT_COLUMN].to_numpy(dtype=np.float64))
                for run, choice, m in zip(runs, choices, members) if WEIGHT_COLUMN in m]
    lost = [f"{run} (--event-weight {choice})" for run, choice, m in zip(runs, choices, members)
            if choice != NONE and WEIGHT_COLUMN not in m]
    if not recorded and not lost:
        return None, None
    why = None
    if lost:
        why = (f"{', '.join(lost)} trained with event weights, but its predictions.csv records none (written before "
               "runs recorded them); train it again to weigh the ensemble")
    else:
        first_run, first_choice, first = recorded[0]
        for run, choice, values in recorded[1:]:
            if choice != first_choice or not np.allclose(values, first, rtol=1e-6, atol=0, equal_nan=True):
                why = (f"{run} (--event-weight {choice}) and {first_run} (--event-weight {first_choice}) weigh the "
                       "test events differently")
                break
    if why:
        return None, {"choice": NONE, "unweighted_because": why}
    unweighted = [str(r) for r, c in zip(runs, choices) if c == NONE]
    return first, {"choice": first_choice, "from": [str(r) for r, _, _ in recorded], "figures": FIGURES_RULE,
                   "trained_unweighted": unweighted}


def read_run_predictions(run: str | os.PathLike):
    """(class names, predictions table) of a run folder, checked."""
    import pandas as pd

    run = Path(run)
    path = run / PREDICTIONS_FILE
    if not run.is_dir():
        raise RunFolderError(f"{run}: no such run folder")
    try:
        table = pd.read_csv(path, dtype={"path": str, "true_class": str, "predicted_class": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunFolderError(f"{path}: cannot read the run's test predictions ({exc})") from None
    class_names = recorded_class_names(run)
    if not class_names:
        class_names = [c[len(SCORE_PREFIX):] for c in table.columns if c.startswith(SCORE_PREFIX)]
    missing = [c for c in ["path", "true_class"] + [SCORE_PREFIX + n for n in class_names] if c not in table]
    if missing:
        raise RunFolderError(f"{path}: missing column(s) {', '.join(missing)}")
    if table["path"].duplicated().any():
        raise RunFolderError(f"{path}: event {table['path'][table['path'].duplicated()].iloc[0]} appears twice")
    return list(class_names), table


def average_predictions(runs: list) -> tuple[list[str], "object", list]:
    """Check that ``runs`` share classes and test events; return (classes, averaged table, member tables)."""
    if len(runs) < 2:
        raise TransferError("ensemble: give at least two run folders")
    seen: dict[Path, object] = {}
    for run in runs:
        key = Path(run).resolve()
        if key in seen:
            raise TransferError(f"ensemble: {run} is given twice (also as {seen[key]}); an ensemble of a run with "
                                "itself is that run: give two or more different runs")
        seen[key] = run
    first_classes, first = read_run_predictions(runs[0])
    members = [first]
    for run in runs[1:]:
        classes, table = read_run_predictions(run)
        if classes != first_classes:
            raise TransferError(f"ensemble: {run} has classes {classes}, but {runs[0]} has {first_classes} "
                                "(same classes in the same order needed)")
        only_here = sorted(set(table["path"]) - set(first["path"]))
        only_first = sorted(set(first["path"]) - set(table["path"]))
        if only_here or only_first:
            example = (only_here or only_first)[0]
            raise TransferError(
                f"ensemble: {run} and {runs[0]} were tested on different events ({len(only_here)} only in "
                f"the first, {len(only_first)} only in the second, e.g. {example}); an ensemble needs the "
                "same test set (same data, --split and --seed, no --folds)")
        table = table.set_index("path").loc[first["path"]].reset_index()
        differ = (table["true_class"].to_numpy() != first["true_class"].to_numpy())
        if differ.any():
            raise TransferError(f"ensemble: {run} and {runs[0]} give event {first['path'][np.argmax(differ)]} "
                                "different true classes")
        members.append(table)
    columns = [SCORE_PREFIX + n for n in first_classes]
    for i, j in itertools.combinations(range(len(members)), 2):
        if np.array_equal(members[i][columns].to_numpy(dtype=np.float64), members[j][columns].to_numpy(dtype=np.float64)):
            raise TransferError(f"ensemble: {runs[j]} and {runs[i]} give identical scores to every test event: copies "
                                "of one run, and an ensemble of a run with itself is that run; give different runs")
    averaged = first[["path", "true_class"]].copy()
    averaged[columns] = np.mean([m[columns].to_numpy(dtype=np.float64) for m in members], axis=0)
    return first_classes, averaged, members


def ensemble_runs(runs: list, out: str | os.PathLike, signal: str | None = None,
                  overwrite: bool = False, plot_style: str | None = None) -> EnsembleResult:
    """Average the test scores of ``runs`` and write the ensemble's report into ``out``; its figures in
    ``plot_style`` (default: the first run's ``--plot-style`` and ``--plot-energy``)."""
    class_names, averaged, members = average_predictions([Path(r) for r in runs])
    if signal is not None and signal not in class_names:
        raise TransferError(f"--signal {signal}: not one of the classes {', '.join(class_names)}")
    columns = [SCORE_PREFIX + n for n in class_names]
    y_true = averaged["true_class"].map({c: i for i, c in enumerate(class_names)})
    if y_true.isna().any():
        raise TransferError(f"ensemble: {runs[0]}/predictions.csv names a true class outside {class_names}")
    y_true = y_true.to_numpy(dtype=np.int64)
    scores = averaged[columns].to_numpy()
    weights, weighting = ensemble_weights(runs, members)
    metrics = {"ensemble_of": [str(r) for r in runs], "classes": class_names,
               "members": [{"run": str(run), **{k: v for k, v in classification_metrics(
                   y_true, m[columns].to_numpy(dtype=np.float64), class_names, signal, weights).items()
                   if k in ("accuracy", "roc_auc", "loss")}} for run, m in zip(runs, members)],
               "test": classification_metrics(y_true, scores, class_names, signal, weights),
               "events_per_class": {"test": dict(zip(class_names, map(int, np.bincount(y_true,
                                                                                      minlength=len(class_names)))))}}
    if weighting:
        metrics["event_weights"] = weighting
    if len(class_names) == 2:
        metrics["signal"] = class_names[signal_index(class_names, signal)]
    first = read_config(Path(runs[0]) / CONFIG_FILE, missing_ok=True)
    with staged_folder(out, overwrite) as staging, styled(plot_style or first.get("plot_style"),
                                                          first.get("plot_energy")):
        write_evaluation(staging, class_names, SplitScores(list(averaged["path"]), y_true, scores, weights), signal,
                         "Ensemble, test split", weight_name=None if weights is None else weighting["choice"])
        write_metrics(staging, metrics)
        (staging / REPORT_FILE).write_text(ensemble_markdown(metrics, class_names), encoding="utf-8")
    return EnsembleResult(out_dir=Path(out), metrics=metrics, class_names=class_names)
