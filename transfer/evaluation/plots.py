"""The figures of a run folder: confusion matrix, ROC curves with rejection, the discriminant and the training
curves (matplotlib's Agg canvas: no display needed, safe in worker processes).

Each is made and saved through :mod:`transfer.evaluation.plot_style`, so it takes the look of the
``--plot-style`` active around the call (``with plot_style("cms"): plot_roc(...)``; plain by default).
Class names are cut to :data:`NAME_CHARS` on axes and in legends (the full names stay in metrics.json
and report.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from transfer.evaluation.metrics import SplitScores, signal_classes, signal_index
from transfer.evaluation.physics import likelihood_ratio_discriminant
from transfer.evaluation.plot_style import new_styled_figure, save_figure


#: Characters of a class name shown in legends and on axes (a longer one is cut, with an ellipsis).
NAME_CHARS = 24


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    """``name`` cut to ``limit`` characters (the middle dropped) so that legends and axes stay in the figure."""
    name = str(name)
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return f"{name[:head]}\u2026{name[-(limit - 1 - head):]}"


def unmeasured_rejection(fpr, tpr, n_background: int) -> int | None:
    """``n_background`` when no background event passes any cut that keeps signal below 100 % efficiency (the
    rejection curve is then empty: it is only known to exceed the number of background events), else None."""
    fpr, tpr = np.asarray(fpr), np.asarray(tpr)
    return None if np.any((fpr > 0) & (tpr < 1)) else int(n_background)


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 5.0):
    """``ncols`` panels side by side, each ``width`` x ``height`` inches in the active plot style."""
    figure = new_styled_figure(width * ncols, height)
    return figure, figure.subplots(1, ncols, squeeze=False)[0]


def confusion_panel_size(n_classes: int) -> tuple[float, float]:
    """Width and height (in) of one confusion-matrix panel: room for the cells' numbers and the class names
    on both axes, growing with the number of classes."""
    return max(5.5, 2.6 + 0.55 * n_classes), max(4.8, 2.4 + 0.5 * n_classes)


def plot_confusion_matrix(y_true, y_pred, class_names, path, title: str = "Confusion matrix") -> Path:
    """Counts and fractions of the true class side by side, class names on both axes."""
    from matplotlib import rcParams
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(y_true, y_pred, labels=list(range(len(class_names))))
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = new_figure(2, *confusion_panel_size(len(class_names)))
    cell_font = None if len(class_names) <= 8 else rcParams["font.size"] * 8 / len(class_names)  # smaller cells
    for ax, matrix, label, fmt in ((axes[0], counts, "events", "{:d}"),
                                   (axes[1], fractions, "fraction of true class", "{:.2f}")):
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(matrix.max(), 1e-9))
        figure.colorbar(image, ax=ax, label=label)
        ticks = range(len(class_names))
        ax.set_xticks(ticks, [short_name(c) for c in class_names], rotation=30, ha="right")
        ax.set_yticks(ticks, [short_name(c) for c in class_names])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{title} ({label})")
        for i in ticks:
            for j in ticks:
                value = matrix[i, j]
                ax.text(j, i, fmt.format(int(value) if fmt == "{:d}" else value), ha="center", va="center",
                        fontsize=cell_font, color="white" if value > matrix.max() / 2 else "black")
    save_figure(figure, path, dpi=120)
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
    figure, axes = new_figure(2 if binary else 1)
    ax = axes[0]
    for k, name in enumerate(class_names):
        truth = y_true == k
        if not 0 < truth.sum() < len(truth):
            continue
        fpr, tpr, _ = roc_curve(truth, scores[:, k])
        who = "" if baseline is None else ", network"
        shown = short_name(name)
        line, = ax.plot(fpr, tpr, label=f"{shown}{who} (AUC = {roc_auc_score(truth, scores[:, k]):.3f})")
        if baseline is not None:
            b_truth = np.asarray(baseline.y_true) == k
            b_fpr, b_tpr, _ = roc_curve(b_truth, baseline.scores[:, k])
            ax.plot(b_fpr, b_tpr, ls="--", lw=1, color=line.get_color(),
                    label=f"{shown}, baseline (AUC = {roc_auc_score(b_truth, baseline.scores[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC = 0.5)")
    ax.set(xlabel="false positive rate (fraction of other-class events accepted)",
           ylabel="true positive rate (fraction of class events accepted)", title=title,
           xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    if binary:
        ax = axes[1]
        s = signal_index(class_names, signal)
        truth = y_true == s
        n_background = int((~truth).sum())
        if 0 < truth.sum() < len(truth):
            fpr, tpr, _ = roc_curve(truth, scores[:, s])
            keep = fpr > 0
            ax.plot(tpr[keep], 1.0 / fpr[keep], label=f"signal: {short_name(class_names[s])}\n"
                                                       f"background: {short_name(class_names[1 - s])}")
            if unmeasured_rejection(fpr, tpr, n_background) is not None:   # every signal event passes first
                ax.axhline(n_background, color="grey", ls=":", label=f"rejection > {n_background} (no background passes)")
                ax.set_ylim(0.8, 2.0 * n_background)
                ax.text(0.5, 0.5, f"no background event of the {n_background} in the test split passes\n"
                        "any cut that keeps signal below 100 % efficiency:\nthe rejection there is more than "
                        f"{n_background} (too few events to measure it)", transform=ax.transAxes, ha="center",
                        va="center", fontsize=8, color="dimgrey")
            if baseline is not None:
                b_fpr, b_tpr, _ = roc_curve(np.asarray(baseline.y_true) == s, baseline.scores[:, s])
                keep = b_fpr > 0
                ax.plot(b_tpr[keep], 1.0 / b_fpr[keep], ls="--", lw=1, label="baseline (gradient-boosted trees)")
            ax.legend(loc="lower left", fontsize="small")
        else:
            missing = class_names[s] if not truth.any() else class_names[1 - s]
            ax.text(0.5, 0.5, f"no {short_name(missing)} events in this split:\nno rejection can be computed",
                    transform=ax.transAxes, ha="center", va="center", fontsize=9, color="dimgrey")
        ax.set_yscale("log")
        ax.set(xlabel=f"signal efficiency (fraction of {short_name(class_names[s], 16)} accepted)",
               ylabel="background rejection 1 / FPR", title="Background rejection vs signal efficiency",
               xlim=(0, 1))
        ax.grid(alpha=0.3, which="both")
    save_figure(figure, path, dpi=120)
    return Path(path)


def plot_discriminant(y_true, scores, class_names, path, signal: str | None = None,
                      title: str = "Likelihood-ratio discriminant") -> Path:
    """Histograms of ln(p_s / sum p_b) per true class, one panel per signal class (see :func:`signal_classes`),
    drawn with ``mplhep.histplot`` (binned first, as HEP histograms are)."""
    import mplhep

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    signals = signal_classes(class_names, signal)
    figure, axes = new_figure(len(signals), 5.5, 4.5)
    for ax, k in zip(axes, signals):
        values = likelihood_ratio_discriminant(scores, k)
        bins = np.linspace(values.min(), values.max(), 41) if values.max() > values.min() else 40
        for j, name in enumerate(class_names):
            chosen = values[y_true == j]
            if len(chosen):
                counts, edges = np.histogram(chosen, bins=bins)
                mplhep.histplot(counts, edges, ax=ax, histtype="step", lw=1.5, density=True, flow="none",
                                label=f"true {short_name(name)} ({len(chosen)})")
        others = [f"p({short_name(c, 12)})" for j, c in enumerate(class_names) if j != k]
        background = " + ".join(others) if len(others) <= 2 else "\u03a3 p(other classes)"
        ax.set(xlabel=f"ln[p({short_name(class_names[k], 12)}) / ({background})]", ylabel="events (normalised)",
               title=f"{title}: signal {short_name(class_names[k])}")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(figure, path, dpi=120)
    return Path(path)


def plot_training_curves(history, path, title: str = "Training curves") -> Path:
    """Loss and accuracy per epoch, training and validation; the start of fine-tuning and the kept epoch marked."""
    figure, axes = new_figure(2, 6.0, 4.5)
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
    save_figure(figure, path, dpi=120)
    return Path(path)
