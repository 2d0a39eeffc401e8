"""Metrics, plots and the one-page report of a run.

The metric and plot functions are pure functions of ``(y_true, scores,
class_names)`` (integer labels, an ``(n, classes)`` array of class scores,
names in label order), so they serve image runs, HDF5 arrays and ensembles
alike. For two classes the second one is the *signal* (positive) class unless
``signal`` names the other: order the classes ``background,signal`` with
``--classes`` or pass ``--signal CLASS``. With more classes, each class in
turn is the signal against all the others (one vs rest).

Besides accuracy and ROC AUC, the figures a physicist quotes: background
rejection 1/FPR at signal efficiencies of 50, 80 and 90 %
(:func:`transfer.evaluation.physics.rejection_at_efficiency`; ``None`` where no
background passes, i.e. infinite), and the likelihood-ratio discriminant
ln(p_signal / sum of p_background) per true class (``discriminant.png``).

Plots use matplotlib's Agg canvas directly (no pyplot, no global backend
change), so they work headless and inside notebooks alike.

Files written by :func:`write_run_report` into a run folder: ``metrics.json``,
``predictions.csv`` (test split), ``confusion_matrix.csv``/``.png``,
``roc.png``, ``discriminant.png``, ``history.csv``, ``training_curves.png``,
``report.md``. :func:`write_evaluation` writes the part that needs scores only
(what ``python -m transfer ensemble`` writes as well).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from transfer import run_folder as rf
from transfer.evaluation.metrics import (WEIGHT_COLUMN, SplitScores, _finite_scores, confusion_table,
                                         evaluate_splits, predictions_table, signal_index)
from transfer.evaluation.plots import plot_confusion_matrix, plot_discriminant, plot_roc, plot_training_curves


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _macro_auc(auc) -> float | None:
    return auc.get("macro") if isinstance(auc, dict) else auc


def _rejection_lines(metrics: dict, split: str = "test") -> list[str]:
    """Markdown table of background rejection at fixed signal efficiency (empty without it)."""
    table = metrics.get(split, {}).get("rejection")
    if not table:
        return []
    efficiencies = list(next(iter(table.values())))
    counts = metrics[split].get("events_per_class", {})
    lines = ["", f"Background rejection 1/FPR at fixed signal efficiency ({split} split; "
             "inf: no background event passes; n/a: the split lacks signal or background events):", "",
             "| signal class | " + " | ".join(f"eff. {float(e):.0%}" for e in efficiencies) + " |",
             "|---|" + "---|" * len(efficiencies)]
    for name, values in table.items():
        computable = not counts or 0 < counts.get(name, 0) < sum(counts.values())
        lines.append(f"| {name} | " + " | ".join(_rejection_text(values[e], computable) for e in efficiencies)
                     + " |")
    return lines


def _rejection_text(value, computable: bool) -> str:
    """``None`` is infinite where signal and background events exist, otherwise not computable."""
    if value is None:
        return "inf" if computable else "n/a"
    return f"{value:.3g}"


def _data_row(metrics: dict) -> str:
    shape = "x".join(map(str, metrics.get("image_shape", metrics.get("input_shape", []))))
    size = "x".join(map(str, metrics.get("image_size", [])))
    if metrics.get("data_kind") == "arrays":
        channels = ", ".join(metrics.get("channel_names", []))
        return (f"| input | HDF5 arrays {shape} float32 ({channels}), --scale {metrics.get('scale')}, "
                f"seen by the backbone at {size} |")
    return f"| images | {shape} px, seen by the backbone at {size} |"


def _hardware_rows(metrics: dict) -> list[str]:
    """Where the run computed: Keras backend and devices, data parallelism, float policy, batch size."""
    if not metrics.get("backend"):
        return []  # runs written before the backends were recorded
    policy = metrics.get("dtype_policy", "float32")
    compute = "float32" if policy == "float32" else f"{policy} (16-bit compute, float32 weights; saved in float32)"
    return [f"| computed on | {metrics.get('hardware', metrics['backend'])}, {metrics.get('distribution', 'one device')}"
            f", global batch {metrics.get('batch_size', '?')} |", f"| precision | {compute} |"]


def report_markdown(metrics: dict, class_names: list[str]) -> str:
    """The one-page ``report.md``: settings, data, numbers and the figures."""
    weights = metrics["weights_used"]
    if metrics.get("weights_reason"):
        weights += f" (**random initialisation, not transfer learning**: {metrics['weights_reason']})"
    if metrics.get("weights_pretrained_on"):
        weights += f", pretrained on {metrics['weights_pretrained_on']}"
    timing = metrics.get("timing", {})
    schedules = metrics.get("lr_schedule") or {}
    schedule = f", {'/'.join(dict.fromkeys(schedules.values()))} schedule" if schedules else ""
    if metrics.get("training") == "from scratch":
        why = f" (**{metrics['training_reason']}**)" if metrics.get("training_reason") else ""
        training = (f"| training | from scratch, all layers, one stage{why} |",
                    f"| optimizer | {metrics['optimizer']}, lr {metrics['lr']:g}{schedule} |")
    else:
        training = (f"| fine-tuning | {metrics['fine_tune']} ({len(metrics.get('opened_layers', []))} backbone "
                    "layers opened) |",
                    f"| optimizer | {metrics['optimizer']}, lr {metrics['lr']:g} (head), "
                    f"{metrics['fine_tune_lr']:g} (fine-tuning){schedule} |")
    lines = [f"# Transfer-learning run: {metrics['backbone']}", ""]
    lines += health_lines(metrics)
    lines += [
        "| setting | value |", "|---|---|",
        f"| backbone | {metrics['backbone']} |",
        f"| weights | {weights} |",
        *training,
        _data_row(metrics),
    ]
    if metrics.get("augmented_stages"):
        lines.append("| augmented on the fly | phi roll and eta, phi flips in the "
                     + ", ".join(metrics["augmented_stages"]) + " stage(s) |")
    if metrics.get("class_weight"):
        lines.append("| class weights (balanced) | " + ", ".join(
            f"{c} {w:.3g}" for c, w in metrics["class_weight"].items()) + " |")
    if metrics.get("event_weights"):
        ew = metrics["event_weights"]
        lines.append(f"| event weights | --event-weight {ew['choice']} ({ew['read_from']}): every figure below uses "
                     f"{ew['figures']}; the loss {ew['loss']}; negative weights in test: "
                     f"{ew['negative_fraction']['test']:.1%} of the events |")
    if metrics.get("signal"):
        lines.append(f"| signal class | {metrics['signal']} |")
    lines += [
        f"| best epoch (lowest validation loss) | {metrics['best']['stage']} stage, epoch {metrics['best']['epoch']} |",
        f"| time | {timing.get('total_s', 0):.0f} s in all |",
        *_hardware_rows(metrics),
        "",
        "## Data (events per class)", "",
        "| split | " + " | ".join(class_names) + " | all |", "|---|" + "---|" * (len(class_names) + 1),
    ]
    for split, counts in metrics["events_per_class"].items():
        lines.append(f"| {split} | " + " | ".join(str(counts[c]) for c in class_names)
                     + f" | {sum(counts[c] for c in class_names)} |")
    lines += ["", "## Results", ""] + results_lines(metrics, class_names)
    test = metrics["test"]
    lines += ["", "Test split, per class:", "", "| class | events | precision | recall |", "|---|---|---|---|"]
    for name in class_names:
        lines.append(f"| {name} | {test['events_per_class'][name]} | {_fmt(test['precision'][name])} | "
                     f"{_fmt(test['recall'][name])} |")
    lines += _rejection_lines(metrics)
    model_input = "float32 arrays, read and scaled as `arrays.json` says" if metrics.get("data_kind") == "arrays" \
        else "raw uint8 images"
    lines += ["", "## Figures", "",
              "![Confusion matrix (test split)](confusion_matrix.png)", "",
              "![ROC curves (test split)](roc.png)", "",
              "![Likelihood-ratio discriminant (test split)](discriminant.png)", "",
              "![Training curves](training_curves.png)", "",
              "Files: `metrics.json`, `predictions.csv` (test split), `confusion_matrix.csv`, `history.csv`, "
              f"`model.keras` (takes {model_input}), `classes.json`, `config.yaml` (reproduce with "
              "`python -m transfer --config config.yaml --out NEW`).", ""]
    return "\n".join(lines)


def health_lines(metrics: dict) -> list[str]:
    """The report's first lines: the health verdict and every warning, in bold."""
    health = metrics.get("health")
    if not health:
        return []
    if health["collapsed"]:
        lines = ["**COLLAPSED: this network learned nothing. Its numbers below are not a result.**", ""]
    else:
        lines = ["Health: no collapse detected." + ("" if health["warnings"] else " No warnings."), ""]
    lines += [f"- **{w}**" for w in health["warnings"] if not w.startswith("COLLAPSED")]
    return lines + ([""] if health["warnings"] else [])


def results_lines(metrics: dict, class_names: list[str]) -> list[str]:
    """Network and baseline side by side: validation, and test with 68 % bootstrap intervals."""
    from transfer.evaluation.intervals import format_interval

    auc_name = "ROC AUC" + (" (macro)" if len(class_names) > 2 else "")
    rows = [("network", metrics)]
    if metrics.get("baseline"):
        rows.append(("baseline (gradient-boosted trees)", metrics["baseline"]))
    lines = [f"| model | split | accuracy | loss | {auc_name} |", "|---|---|---|---|---|"]
    for name, m in rows:
        val, test = m["validation"], m["test"]
        intervals = test.get("intervals") or {}
        lines.append(f"| {name} | validation | {_fmt(val['accuracy'])} | {_fmt(val['loss'])} | "
                     f"{_fmt(_macro_auc(val['roc_auc']))} |")
        lines.append(f"| {name} | test | {format_interval(test['accuracy'], intervals.get('accuracy'))} | "
                     f"{_fmt(test['loss'])} | "
                     f"{format_interval(_macro_auc(test['roc_auc']), intervals.get('roc_auc'))} |")
    level = (metrics["test"].get("intervals") or {}).get("level", 0.68)
    lines += ["", f"Test intervals: central {level:.0%} of {(metrics['test'].get('intervals') or {}).get('n_resamples', 0)}"
              " bootstrap resamples of the test events."]
    if metrics.get("baseline"):
        lines.append(f"Baseline inputs: {metrics['baseline']['inputs']}; trained on the same "
                     f"{metrics['baseline']['n_train']} training events, stopped early on the same validation "
                     "events.")
    return lines


def console_lines(metrics: dict) -> list[str]:
    """What the CLI prints about a run's results: network, baseline and health."""
    from transfer.evaluation.intervals import format_interval

    lines = []
    for name, m in (("network", metrics), ("baseline", metrics.get("baseline"))):
        if not m:
            continue
        for split in ("validation", "test"):
            s = m[split]
            intervals = (s.get("intervals") or {}) if split == "test" else {}
            lines.append(f"{name} {split}: accuracy {format_interval(s['accuracy'], intervals.get('accuracy'))}, "
                         f"ROC AUC {format_interval(_macro_auc(s['roc_auc']), intervals.get('roc_auc'))}"
                         + (f", loss {s['loss']:.3f}" if s.get("loss") is not None else ""))
    health = metrics.get("health")
    if health:
        if health["collapsed"]:
            lines.append("COLLAPSED: this network learned nothing; do not use its numbers (see report.md)")
        lines += [f"warning: {w}" for w in health["warnings"] if not w.startswith("COLLAPSED")]
    return lines


def ensemble_markdown(metrics: dict, class_names: list[str]) -> str:
    """``report.md`` of an ensemble: its members, their test AUC and accuracy, and the ensemble's."""
    lines = [f"# Ensemble of {len(metrics['members'])} runs", "",
             "Test-split scores of each run averaged event by event (same test events, same classes).", "",
             *_ensemble_weight_lines(metrics),
             "| run | accuracy | ROC AUC" + (" (macro)" if len(class_names) > 2 else "") + " |", "|---|---|---|"]
    for member in metrics["members"]:
        lines.append(f"| {member['run']} | {_fmt(member['accuracy'])} | {_fmt(_macro_auc(member['roc_auc']))} |")
    test = metrics["test"]
    lines.append(f"| **ensemble** | **{_fmt(test['accuracy'])}** | **{_fmt(_macro_auc(test['roc_auc']))}** |")
    lines += ["", "## Data (test events per class)", "", "| " + " | ".join(class_names) + " |",
              "|" + "---|" * len(class_names), "| " + " | ".join(str(test["events_per_class"][c]) for c in class_names)
              + " |"]
    lines += _rejection_lines(metrics)
    lines += ["", "## Figures", "", "![Confusion matrix (test split)](confusion_matrix.png)", "",
              "![ROC curves (test split)](roc.png)", "",
              "![Likelihood-ratio discriminant (test split)](discriminant.png)", "",
              "Files: `metrics.json`, `predictions.csv` (averaged scores), `confusion_matrix.csv`.", ""]
    return "\n".join(lines)


def weighting_note(metrics: dict) -> str | None:
    """One line on the ensemble's event weights (None when neither it nor its runs are weighted)."""
    ew = metrics.get("event_weights")
    if not ew:
        return None
    if ew.get("unweighted_because"):
        return f"figures UNWEIGHTED: {ew['unweighted_because']}"
    return (f"figures weighted with --event-weight {ew['choice']} (signed), the test events' weights recorded by "
            + ", ".join(ew["from"]))


def _ensemble_weight_lines(metrics: dict) -> list[str]:
    """The ensemble report's line on event weights (none when no run is weighted)."""
    note = weighting_note(metrics)
    return [] if note is None else [f"**{note[0].upper() + note[1:]}.**", ""]


def write_evaluation(folder, class_names: list[str], test: SplitScores, signal: str | None = None,
                     title: str = "Test split", baseline: SplitScores | None = None,
                     weight_name: str | None = None) -> None:
    """predictions.csv, confusion_matrix.csv/.png, roc.png and discriminant.png of the test scores; with
    ``test.weights`` (``--event-weight weight_name``) every figure is of the weighted events and predictions.csv
    gets each event's ``weight`` (what ``ensemble`` weighs its figures with)."""
    folder = Path(folder)
    table = predictions_table(test.paths, test.scores, class_names, test.y_true)
    if test.weights is not None:
        table[WEIGHT_COLUMN] = np.asarray(test.weights, dtype=np.float64)
    table.to_csv(folder / rf.PREDICTIONS_FILE, index=False, float_format="%.9g")
    y_pred = np.asarray(test.scores).argmax(axis=1)
    confusion_table(test.y_true, y_pred, class_names, test.weights).to_csv(folder / rf.CONFUSION_CSV, index=False,
                                                            float_format="%.6g")
    weighted = dict(weights=test.weights, weight_name=weight_name)
    plot_confusion_matrix(test.y_true, y_pred, class_names, folder / rf.CONFUSION_PNG, title, **weighted)
    plot_roc(test.y_true, test.scores, class_names, folder / rf.ROC_PNG, f"{title} ROC (one vs rest)", signal,
             baseline, **weighted)
    plot_discriminant(test.y_true, test.scores, class_names, folder / rf.DISCRIMINANT_PNG, signal,
                      f"{title} discriminant", **weighted)


def write_run_report(folder, class_names: list[str], splits: dict[str, SplitScores], history, info: dict,
                     signal: str | None = None, baseline=None, health_inputs: dict | None = None,
                     seed: int = 0) -> dict:
    """Write every report file of a run into ``folder``; return the metrics (``metrics.json``).

    ``splits`` holds the ``validation`` and ``test`` scores; ``info`` is
    merged into the metrics (backbone, weights_used, timing, ...); ``signal``
    is the signal class of two (see :func:`signal_index`). ``baseline`` (a
    :class:`transfer.evaluation.baseline.BaselineResult` on the same events) becomes the
    ``baseline`` section; the ``health`` section (:func:`transfer.evaluation.health.assess`)
    uses it, the training monitor's events and the input warnings
    (``health_inputs``). Test figures get bootstrap intervals (``intervals``).
    """
    from transfer.evaluation.health import assess

    folder = Path(folder)
    metrics = {**info, "classes": list(class_names)}
    if len(class_names) == 2:
        metrics["signal"] = class_names[signal_index(class_names, signal)]
    metrics.update(evaluate_splits(splits, class_names, signal, seed))
    scored = {}   # the baseline's validation and test scores, with their weights (none without a baseline)
    if baseline is not None:
        weights = baseline.weights or {}
        scored = {split: SplitScores(paths=[], y_true=baseline.labels[split], scores=baseline.scores[split],
                                     weights=weights.get(split)) for split in ("validation", "test")}
        metrics["baseline"] = {"model": "HistGradientBoostingClassifier (scikit-learn), early stopping on the "
                                        "validation split", "inputs": baseline.description,
                               "n_features": baseline.n_features, "n_train": baseline.n_train,
                               "iterations": baseline.iterations, "seconds": baseline.seconds,
                               **evaluate_splits(scored, class_names, signal, seed)}
    health_inputs = health_inputs or {}
    base = metrics.get("baseline", {}).get("validation", {})
    metrics["health"] = assess(
        splits["validation"], splits["test"], len(class_names), metrics["validation"]["loss"],
        health_inputs.get("monitor_events", []),
        network_auc_val=_macro_auc(metrics["validation"]["roc_auc"]), baseline_auc_val=_macro_auc(base.get("roc_auc")),
        network_acc_val=metrics["validation"]["accuracy"], baseline_acc_val=base.get("accuracy"),
        extra_warnings=health_inputs.get("input_warnings"), history=history, best=info.get("best"))
    write_evaluation(folder, class_names, SplitScores(splits["test"].paths, splits["test"].y_true,
                                                      _finite_scores(splits["test"].scores), splits["test"].weights),
                     signal, baseline=scored.get("test"), weight_name=info.get("event_weight"))
    history.to_csv(folder / rf.HISTORY_FILE, index=False, float_format="%.6g")
    plot_training_curves(history, folder / rf.CURVES_PNG, f"{info.get('backbone', '')} training")
    rf.write_metrics(folder, metrics)
    (folder / rf.REPORT_FILE).write_text(report_markdown(metrics, class_names), encoding="utf-8")
    return metrics


def replace_section(path, key: str, lines: list[str]) -> Path:
    """Put ``lines`` into ``report.md`` at ``path`` as the section ``key``, replacing that section where an
    earlier command wrote it (between ``<!-- hepvision:KEY -->`` markers), else at the end.

    For what commands run later on a finished run add to its report (``python -m transfer explain``), so
    that running one again updates its section instead of appending another.
    """
    from transfer.files import write_text_atomic

    path = Path(path)
    start, end = f"<!-- hepvision:{key} -->", f"<!-- /hepvision:{key} -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = "\n".join([start, *lines, end]) + "\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block
    write_text_atomic(path, text)
    return path
