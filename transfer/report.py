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
(:func:`transfer.physics_metrics.rejection_at_efficiency`; ``None`` where no
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

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer import run_folder as rf
from transfer.physics_metrics import DEFAULT_EFFICIENCIES, likelihood_ratio_discriminant, rejection_at_efficiency

#: Score columns of predictions.csv are ``score_<class>``.
SCORE_PREFIX = "score_"


@dataclass
class SplitScores:
    """Model scores on one split: image paths, true labels, ``(n, classes)`` scores."""

    paths: list
    y_true: np.ndarray
    scores: np.ndarray


def _finite(value):
    return None if value is None or not math.isfinite(value) else float(value)


def roc_auc(y_true, scores, class_names):
    """ROC AUC: one number for two classes (signal = second class); else one-vs-rest per class, macro, micro.

    A class without both positive and negative events in ``y_true`` has AUC
    ``None`` and is left out of the macro average.
    """
    from sklearn.metrics import roc_auc_score

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    n = len(class_names)

    def auc(truth, score):
        return float(roc_auc_score(truth, score)) if 0 < truth.sum() < len(truth) else None

    if n == 2:
        return auc(y_true == 1, scores[:, 1])
    per_class = {name: auc(y_true == k, scores[:, k]) for k, name in enumerate(class_names)}
    defined = [v for v in per_class.values() if v is not None]
    onehot = np.eye(n)[y_true]
    micro = auc(onehot.ravel().astype(bool), scores.ravel())
    return {"per_class": per_class, "macro": float(np.mean(defined)) if defined else None, "micro": micro}


def signal_index(class_names, signal: str | None = None) -> int | None:
    """Index of the signal class: two classes: ``signal`` or the second; more: ``signal`` or ``None`` (each in turn)."""
    if signal is not None:
        if signal not in class_names:
            raise ValueError(f"signal class {signal!r} is not one of the classes {list(class_names)}")
        return list(class_names).index(signal)
    return 1 if len(class_names) == 2 else None


def signal_classes(class_names, signal: str | None = None) -> list[int]:
    """The classes taken as signal in turn: the one signal for two classes, every class for more."""
    return [signal_index(class_names, signal)] if len(class_names) == 2 else list(range(len(class_names)))


def rejection_table(y_true, scores, class_names, signal: str | None = None,
                    efficiencies=DEFAULT_EFFICIENCIES) -> dict:
    """``{signal class: {"0.5": 1/FPR, "0.8": ..., "0.9": ...}}``, the signal's score as discriminant.

    Two classes: one entry, the signal class; more: one per class (one vs
    rest). ``None`` marks an infinite rejection (no background passes) and a
    class without both signal and background events in ``y_true``.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    table = {}
    for k in signal_classes(class_names, signal):
        truth = (y_true == k).astype(int)
        if 0 < truth.sum() < len(truth):
            values = rejection_at_efficiency(truth, scores[:, k], efficiencies)
        else:
            values = dict.fromkeys(map(float, efficiencies))
        table[class_names[k]] = {f"{eff:g}": _finite(value) for eff, value in values.items()}
    return table


def classification_metrics(y_true, scores, class_names, signal: str | None = None) -> dict:
    """Accuracy, loss, ROC AUC, rejection at fixed efficiency, precision/recall/F1, events per class, confusion."""
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    labels = list(range(len(class_names)))
    y_pred = scores.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n_events": int(len(y_true)),
        "events_per_class": dict(zip(class_names, map(int, support))),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # softmax outputs in float32 sum to 1 only to ~1e-7; sklearn wants them exact
        "loss": _finite(log_loss(y_true, scores / scores.sum(axis=1, keepdims=True), labels=labels)),
        "roc_auc": roc_auc(y_true, scores, class_names),
        "rejection": rejection_table(y_true, scores, class_names, signal),
        "precision": dict(zip(class_names, map(float, precision))),
        "recall": dict(zip(class_names, map(float, recall))),
        "f1": dict(zip(class_names, map(float, f1))),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def predictions_table(paths, scores, class_names, y_true=None):
    """Rows of ``predictions.csv``: path, true_class (when ``y_true`` is given), ``score_<class>``, predicted_class."""
    import pandas as pd

    scores = np.asarray(scores)
    table = pd.DataFrame({"path": [str(p) for p in paths]})
    if y_true is not None:
        table["true_class"] = [class_names[i] for i in y_true]
    for k, name in enumerate(class_names):
        table[SCORE_PREFIX + name] = scores[:, k]
    table["predicted_class"] = [class_names[i] for i in scores.argmax(axis=1)]
    return table


def confusion_table(y_true, y_pred, class_names):
    """Confusion matrix as a table: rows ``kind`` = count / fraction (of the true class) x true class."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(y_true, y_pred, labels=list(range(len(class_names))))
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    rows = []
    for kind, matrix in (("count", counts), ("fraction_of_true_class", fractions)):
        for name, values in zip(class_names, matrix):
            rows.append({"kind": kind, "true_class": name,
                         **{f"predicted_{c}": v for c, v in zip(class_names, values)}})
    return pd.DataFrame(rows)


def _figure(ncols: int = 1, width: float = 6.0, height: float = 5.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, ncols, squeeze=False)[0]


def plot_confusion_matrix(y_true, y_pred, class_names, path, title: str = "Confusion matrix") -> Path:
    """Counts and fractions of the true class side by side, class names on both axes."""
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(y_true, y_pred, labels=list(range(len(class_names))))
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = _figure(2, 5.5, 4.8)
    for ax, matrix, label, fmt in ((axes[0], counts, "events", "{:d}"),
                                   (axes[1], fractions, "fraction of true class", "{:.2f}")):
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(matrix.max(), 1e-9))
        figure.colorbar(image, ax=ax, label=label)
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=30, ha="right")
        ax.set_yticks(ticks, class_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{title} ({label})")
        for i in ticks:
            for j in ticks:
                value = matrix[i, j]
                ax.text(j, i, fmt.format(int(value) if fmt == "{:d}" else value), ha="center", va="center",
                        color="white" if value > matrix.max() / 2 else "black")
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_roc(y_true, scores, class_names, path, title: str = "ROC curves (one class vs the rest)",
             signal: str | None = None, baseline: SplitScores | None = None) -> Path:
    """One ROC curve per class with its AUC; for two classes also rejection vs signal efficiency.

    ``baseline`` (the matched baseline's scores on the same events) adds its
    curves, dashed in the same colours.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    binary = len(class_names) == 2
    figure, axes = _figure(2 if binary else 1)
    ax = axes[0]
    for k, name in enumerate(class_names):
        truth = y_true == k
        if not 0 < truth.sum() < len(truth):
            continue
        fpr, tpr, _ = roc_curve(truth, scores[:, k])
        who = "" if baseline is None else ", network"
        line, = ax.plot(fpr, tpr, label=f"{name}{who} (AUC = {roc_auc_score(truth, scores[:, k]):.3f})")
        if baseline is not None:
            b_truth = np.asarray(baseline.y_true) == k
            b_fpr, b_tpr, _ = roc_curve(b_truth, baseline.scores[:, k])
            ax.plot(b_fpr, b_tpr, ls="--", lw=1, color=line.get_color(),
                    label=f"{name}, baseline (AUC = {roc_auc_score(b_truth, baseline.scores[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC = 0.5)")
    ax.set(xlabel="false positive rate (fraction of other-class events accepted)",
           ylabel="true positive rate (fraction of class events accepted)", title=title,
           xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if binary:
        ax = axes[1]
        s = signal_index(class_names, signal)
        truth = y_true == s
        if 0 < truth.sum() < len(truth):
            fpr, tpr, _ = roc_curve(truth, scores[:, s])
            keep = fpr > 0
            ax.plot(tpr[keep], 1.0 / fpr[keep], label=f"signal = {class_names[s]}, "
                                                       f"background = {class_names[1 - s]}")
            if baseline is not None:
                b_fpr, b_tpr, _ = roc_curve(np.asarray(baseline.y_true) == s, baseline.scores[:, s])
                keep = b_fpr > 0
                ax.plot(b_tpr[keep], 1.0 / b_fpr[keep], ls="--", lw=1, label="baseline (gradient-boosted trees)")
            ax.legend(loc="upper right")
        ax.set_yscale("log")
        ax.set(xlabel=f"signal efficiency (fraction of {class_names[s]} events accepted)",
               ylabel="background rejection 1 / FPR", title="Background rejection vs signal efficiency",
               xlim=(0, 1))
        ax.grid(alpha=0.3, which="both")
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_discriminant(y_true, scores, class_names, path, signal: str | None = None,
                      title: str = "Likelihood-ratio discriminant") -> Path:
    """Histograms of ln(p_s / sum p_b) per true class, one panel per signal class (see :func:`signal_classes`)."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    signals = signal_classes(class_names, signal)
    figure, axes = _figure(len(signals), 5.5, 4.5)
    for ax, k in zip(axes, signals):
        values = likelihood_ratio_discriminant(scores, k)
        bins = np.linspace(values.min(), values.max(), 41) if values.max() > values.min() else 40
        for j, name in enumerate(class_names):
            chosen = values[y_true == j]
            if len(chosen):
                ax.hist(chosen, bins=bins, histtype="step", lw=1.5, density=True,
                        label=f"true {name} ({len(chosen)})")
        background = " + ".join(f"p({c})" for j, c in enumerate(class_names) if j != k)
        ax.set(xlabel=f"ln[p({class_names[k]}) / ({background})]", ylabel="events (normalised)",
               title=f"{title}: signal {class_names[k]}")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_training_curves(history, path, title: str = "Training curves") -> Path:
    """Loss and accuracy per epoch, training and validation; the start of fine-tuning and the kept epoch marked."""
    figure, axes = _figure(2, 6.0, 4.5)
    epochs = history["epoch"].to_numpy()
    stages = history["stage"].to_numpy()
    boundary = next((e for e, s in zip(epochs, stages) if s == "fine-tune"), None)
    for ax, metric, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, name, style in (("", "training", "-"), ("val_", "validation", "--")):
            if prefix + metric in history:
                ax.plot(epochs, history[prefix + metric], style, marker="o", ms=3, label=name)
        if boundary is not None:
            ax.axvline(boundary - 0.5, color="grey", ls=":", label="fine-tuning starts")
        if "val_loss" in history and history["val_loss"].notna().any() and "val_" + metric in history:
            best = int(history["val_loss"].to_numpy().argmin())
            ax.plot(epochs[best], history["val_" + metric].iloc[best], "*", ms=14, color="crimson",
                    label="kept: lowest validation loss")
        ax.set(xlabel="epoch (both stages)", ylabel=label, title=f"{title}: {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=120)
    return Path(path)


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
    if metrics.get("class_weight"):
        lines.append("| class weights (balanced) | " + ", ".join(
            f"{c} {w:.3g}" for c, w in metrics["class_weight"].items()) + " |")
    if metrics.get("signal"):
        lines.append(f"| signal class | {metrics['signal']} |")
    lines += [
        f"| best epoch (lowest validation loss) | {metrics['best']['stage']} stage, epoch {metrics['best']['epoch']} |",
        f"| time | {timing.get('total_s', 0):.0f} s in all |",
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
    from transfer.intervals import format_interval

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
    from transfer.intervals import format_interval

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


def write_evaluation(folder, class_names: list[str], test: SplitScores, signal: str | None = None,
                     title: str = "Test split", baseline: SplitScores | None = None) -> None:
    """predictions.csv, confusion_matrix.csv/.png, roc.png and discriminant.png of the test scores."""
    folder = Path(folder)
    predictions_table(test.paths, test.scores, class_names, test.y_true).to_csv(
        folder / rf.PREDICTIONS_FILE, index=False, float_format="%.9g")
    y_pred = np.asarray(test.scores).argmax(axis=1)
    confusion_table(test.y_true, y_pred, class_names).to_csv(folder / rf.CONFUSION_CSV, index=False,
                                                            float_format="%.6g")
    plot_confusion_matrix(test.y_true, y_pred, class_names, folder / rf.CONFUSION_PNG, title)
    plot_roc(test.y_true, test.scores, class_names, folder / rf.ROC_PNG, f"{title} ROC (one vs rest)", signal,
             baseline)
    plot_discriminant(test.y_true, test.scores, class_names, folder / rf.DISCRIMINANT_PNG, signal,
                      f"{title} discriminant")


def _finite_scores(scores) -> np.ndarray:
    """Scores with non-finite rows (a diverged network) replaced by equal class scores, so that the
    metrics can be computed; the health section says the run diverged."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores).all(axis=1)
    if bad.any():
        scores = scores.copy()
        scores[bad] = 1.0 / scores.shape[1]
    return scores


def evaluate_splits(splits: dict[str, SplitScores], class_names: list[str], signal: str | None = None,
                    seed: int = 0) -> dict:
    """``{"validation": metrics, "test": metrics + intervals}`` for one model's scores."""
    from transfer.intervals import bootstrap_intervals

    out = {}
    for split, s in splits.items():
        out[split] = classification_metrics(s.y_true, _finite_scores(s.scores), class_names, signal)
    test = splits["test"]
    out["test"]["intervals"] = bootstrap_intervals(test.y_true, _finite_scores(test.scores), class_names,
                                                   signal_classes(class_names, signal), seed=seed)
    return out


def write_run_report(folder, class_names: list[str], splits: dict[str, SplitScores], history, info: dict,
                     signal: str | None = None, baseline=None, health_inputs: dict | None = None,
                     seed: int = 0) -> dict:
    """Write every report file of a run into ``folder``; return the metrics (``metrics.json``).

    ``splits`` holds the ``validation`` and ``test`` scores; ``info`` is
    merged into the metrics (backbone, weights_used, timing, ...); ``signal``
    is the signal class of two (see :func:`signal_index`). ``baseline`` (a
    :class:`transfer.baseline.BaselineResult` on the same events) becomes the
    ``baseline`` section; the ``health`` section (:func:`transfer.health.assess`)
    uses it, the training monitor's events and the input warnings
    (``health_inputs``). Test figures get bootstrap intervals (``intervals``).
    """
    from transfer.health import assess

    folder = Path(folder)
    metrics = {**info, "classes": list(class_names)}
    if len(class_names) == 2:
        metrics["signal"] = class_names[signal_index(class_names, signal)]
    metrics.update(evaluate_splits(splits, class_names, signal, seed))
    if baseline is not None:
        scored = {split: SplitScores(paths=[], y_true=baseline.labels[split], scores=baseline.scores[split])
                  for split in ("validation", "test")}
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
        extra_warnings=health_inputs.get("input_warnings"))
    write_evaluation(folder, class_names, SplitScores(splits["test"].paths, splits["test"].y_true,
                                                      _finite_scores(splits["test"].scores)), signal,
                     baseline=None if baseline is None else
                     SplitScores([], baseline.labels["test"], baseline.scores["test"]))
    history.to_csv(folder / rf.HISTORY_FILE, index=False, float_format="%.6g")
    plot_training_curves(history, folder / rf.CURVES_PNG, f"{info.get('backbone', '')} training")
    rf.write_metrics(folder, metrics)
    (folder / rf.REPORT_FILE).write_text(report_markdown(metrics, class_names), encoding="utf-8")
    return metrics
