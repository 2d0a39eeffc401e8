"""The figures of a run folder: confusion matrix, ROC curves with rejection, the discriminant and the training
curves (matplotlib's Agg canvas: no display needed, safe in worker processes).

Each is made and saved through :mod:`transfer.evaluation.plot_style`, so it takes the look of the
``--plot-style`` active around the call (``with plot_style("cms"): plot_roc(...)``; plain by default).
Class names are cut to :data:`NAME_CHARS` on axes and in legends (the full names stay in metrics.json
and report.md).

``weights`` (``--event-weight``, signed, one per event; None: unweighted, drawn as before) make the confusion
matrix, ROC and rejection curves and the discriminant those of the weighted events, as metrics.json's figures
are (the ROC curve is :func:`~transfer.evaluation.physics.weighted_roc`, so the AUC in the legend is metrics.json's);
``weight_name`` (the ``--event-weight`` choice) is said in the titles and axis labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from transfer.evaluation.metrics import SplitScores, signal_classes, signal_index, true_class_fractions
from transfer.evaluation.physics import likelihood_ratio_discriminant, weighted_auc, weighted_roc
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


def weighted_note(weights, weight_name: str | None) -> str:
    """``" weighted (genWeight)"`` for titles and labels of weighted figures, ``""`` for unweighted ones."""
    if weights is None:
        return ""
    return f" weighted ({weight_name})" if weight_name else " weighted"


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 5.0):
    """``ncols`` panels side by side, each ``width`` x ``height`` inches in the active plot style."""
    figure = new_styled_figure(width * ncols, height)
    return figure, figure.subplots(1, ncols, squeeze=False)[0]


def confusion_panel_size(n_classes: int) -> tuple[float, float]:
    """Width and height (in) of one confusion-matrix panel: room for the cells' numbers and the class names
    on both axes, growing with the number of classes."""
    return max(5.5, 2.6 + 0.55 * n_classes), max(4.8, 2.4 + 0.5 * n_classes)


def plot_confusion_matrix(y_true, y_pred, class_names, path, title: str = "Confusion matrix", weights=None,
                          weight_name: str | None = None) -> Path:
    """Counts (with ``weights``: summed weights, as confusion_matrix.csv) and fractions of the true class side by
    side, class names on both axes."""
    from matplotlib import rcParams
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(y_true, y_pred, labels=list(range(len(class_names))), sample_weight=weights)
    fractions = true_class_fractions(counts)
    figure, axes = new_figure(2, *confusion_panel_size(len(class_names)))
    cell_font = None if len(class_names) <= 8 else rcParams["font.size"] * 8 / len(class_names)  # smaller cells
    name = weight_name or "weights"
    panels = ((axes[0], counts, "events", "events", "{:d}"),
              (axes[1], fractions, "fraction of true class", "fraction of true class", "{:.2f}"))
    if weights is not None:   # short titles: a second title line would leave the figure
        panels = ((axes[0], counts, f"\u03a3 {name}", f"summed weights ({name})", "{:.3g}"),
                  (axes[1], fractions, "fraction of true class", "fraction of true class (weighted)", "{:.2f}"))
    for ax, matrix, heading, label, fmt in panels:
        image = ax.imshow(matrix, cmap="Blues", vmin=min(matrix.min(), 0), vmax=max(matrix.max(), 1e-9))
        figure.colorbar(image, ax=ax, label=label)
        ticks = range(len(class_names))
        ax.set_xticks(ticks, [short_name(c) for c in class_names], rotation=30, ha="right")
        ax.set_yticks(ticks, [short_name(c) for c in class_names])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{title} ({heading})")
        for i in ticks:
            for j in ticks:
                value = matrix[i, j]
                ax.text(j, i, fmt.format(int(value) if fmt == "{:d}" else value), ha="center", va="center",
                        fontsize=cell_font, color="white" if value > matrix.max() / 2 else "black")
    save_figure(figure, path, dpi=120)
    return Path(path)


def roc_points(truth, score, weights=None) -> tuple[np.ndarray, np.ndarray, float]:
    """(FPR, TPR, AUC) of one class against the rest: scikit-learn's for unweighted events, else the weighted
    curve and area of metrics.json (:func:`~transfer.evaluation.physics.weighted_roc`)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if weights is None:
        fpr, tpr, _ = roc_curve(truth, score)
        return fpr, tpr, float(roc_auc_score(truth, score))
    fpr, tpr = weighted_roc(truth, score, weights)
    return fpr, tpr, weighted_auc(truth, score, weights)


def plot_roc(y_true, scores, class_names, path, title: str = "ROC curves (one class vs the rest)",
             signal: str | None = None, baseline: SplitScores | None = None, weights=None,
             weight_name: str | None = None) -> Path:
    """One ROC curve per class with its AUC; for two classes also rejection vs signal efficiency.

    ``baseline`` (the matched baseline's scores on the same events) adds its
    curves, dashed in the same colours (weighted with its own ``weights``, the same events').
    ``weights``: the curves of the weighted events (module docstring).
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    note = weighted_note(weights, weight_name)
    fraction = "fraction" if weights is None else "weighted fraction"
    b_weights = None if baseline is None or weights is None else baseline.weights
    binary = len(class_names) == 2
    figure, axes = new_figure(2 if binary else 1)
    ax = axes[0]
    for k, name in enumerate(class_names):
        truth = y_true == k
        if not 0 < truth.sum() < len(truth):
            continue
        fpr, tpr, auc = roc_points(truth, scores[:, k], weights)
        who = "" if baseline is None else ", network"
        shown = short_name(name)
        line, = ax.plot(fpr, tpr, label=f"{shown}{who} (AUC = {auc:.3f})")
        if baseline is not None:
            b_fpr, b_tpr, b_auc = roc_points(np.asarray(baseline.y_true) == k, baseline.scores[:, k], b_weights)
            ax.plot(b_fpr, b_tpr, ls="--", lw=1, color=line.get_color(),
                    label=f"{shown}, baseline (AUC = {b_auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC = 0.5)")
    ax.set(xlabel=f"false positive rate ({fraction} of other-class events accepted)",
           ylabel=f"true positive rate ({fraction} of class events accepted)", title=title + note,
           xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    if binary:
        ax = axes[1]
        s = signal_index(class_names, signal)
        truth = y_true == s
        n_background = int((~truth).sum())
        if 0 < truth.sum() < len(truth):
            fpr, tpr, _ = roc_points(truth, scores[:, s], weights)
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
                b_fpr, b_tpr, _ = roc_points(np.asarray(baseline.y_true) == s, baseline.scores[:, s], b_weights)
                keep = b_fpr > 0
                ax.plot(b_tpr[keep], 1.0 / b_fpr[keep], ls="--", lw=1, label="baseline (gradient-boosted trees)")
            ax.legend(loc="lower left", fontsize="small")
        else:
            missing = class_names[s] if not truth.any() else class_names[1 - s]
            ax.text(0.5, 0.5, f"no {short_name(missing)} events in this split:\nno rejection can be computed",
                    transform=ax.transAxes, ha="center", va="center", fontsize=9, color="dimgrey")
        ax.set_yscale("log")
        ax.set(xlabel=f"signal efficiency ({fraction} of {short_name(class_names[s], 16)} accepted)",
               ylabel="background rejection 1 / FPR", title="Background rejection vs signal efficiency" + note,
               xlim=(0, 1))
        ax.grid(alpha=0.3, which="both")
    save_figure(figure, path, dpi=120)
    return Path(path)


def plot_discriminant(y_true, scores, class_names, path, signal: str | None = None,
                      title: str = "Likelihood-ratio discriminant", weights=None,
                      weight_name: str | None = None) -> Path:
    """Histograms of ln(p_s / sum p_b) per true class, one panel per signal class (see :func:`signal_classes`),
    drawn with ``mplhep.histplot`` (binned first, as HEP histograms are), each normalised to unit area; with
    ``weights`` the histograms of the weighted events (a class whose weights do not sum above zero cannot be
    normalised: its legend says so and it is not drawn)."""
    import mplhep

    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    note = weighted_note(weights, weight_name)
    signals = signal_classes(class_names, signal)
    figure, axes = new_figure(len(signals), 5.5, 4.5)
    for ax, k in zip(axes, signals):
        values = likelihood_ratio_discriminant(scores, k)
        bins = np.linspace(values.min(), values.max(), 41) if values.max() > values.min() else 40
        for j, name in enumerate(class_names):
            mask = y_true == j
            chosen = values[mask]
            if not len(chosen):
                continue
            if w is None:
                counts, edges = np.histogram(chosen, bins=bins)
                label = f"true {short_name(name)} ({len(chosen)})"
            else:
                total = float(w[mask].sum())
                if total <= 0:
                    ax.plot([], [], " ", label=f"true {short_name(name)}: weights sum to {total:.3g}, not drawn")
                    continue
                counts, edges = np.histogram(chosen, bins=bins, weights=w[mask])
                label = f"true {short_name(name)} ({len(chosen)}, \u03a3w = {total:.3g})"
            mplhep.histplot(counts, edges, ax=ax, histtype="step", lw=1.5, density=True, flow="none", label=label)
        others = [f"p({short_name(c, 12)})" for j, c in enumerate(class_names) if j != k]
        background = " + ".join(others) if len(others) <= 2 else "\u03a3 p(other classes)"
        ax.set(xlabel=f"ln[p({short_name(class_names[k], 12)}) / ({background})]",
               ylabel="events (normalised)" if w is None else f"{note.strip()} events (normalised)",
               title=f"{title}: signal {short_name(class_names[k])}" + note)
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
