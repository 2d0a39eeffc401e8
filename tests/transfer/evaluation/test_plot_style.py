"""``--plot-style`` (issue 25): every figure in every style, the experiment label honest, long class names
inside the figure. Real matplotlib figures written to PNG."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mplhep")

from transfer.errors import OptionError  # noqa: E402
from transfer.evaluation.plot_style import PLOT_STYLE_NAMES, check_energy, get_plot_style, plot_style  # noqa: E402
from transfer.evaluation.plots import (plot_confusion_matrix, plot_discriminant, plot_roc,  # noqa: E402
                                       plot_training_curves)
from transfer.experiments.lr_find import plot_lr_find  # noqa: E402
from transfer.experiments.scan import plot_scan  # noqa: E402

LONG = ["signal " + "W" * 113, "background " + "Q" * 109, "third " + "Z" * 114]   # 120 characters each


def _scores(n_classes: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = np.arange(n) % n_classes
    logits = rng.normal(0, 1, (n, n_classes)) + 2.0 * np.eye(n_classes)[y]
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _draw_all(folder, class_names) -> list:
    """Every plot function of a run and of the scans, into ``folder``."""
    y, scores = _scores(len(class_names))
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "stage": ["head", "head", "fine-tune", "fine-tune"],
                            "loss": [1.0, 0.8, 0.7, 0.6], "val_loss": [1.1, 0.9, 0.8, 0.85],
                            "accuracy": [0.5, 0.6, 0.7, 0.75], "val_accuracy": [0.5, 0.55, 0.65, 0.6]})
    scan = pd.DataFrame({"n_train": [20, 80], "validation_auc": [0.7, 0.8], "validation_accuracy": [0.6, 0.7],
                         "test_auc": [0.72, 0.79], "test_accuracy": [0.61, 0.69]})
    lrs = np.logspace(-5, 0, 30)
    lr_table = pd.DataFrame({"lr": lrs, "loss": 1 + (np.log10(lrs) + 2) ** 2 / 10,
                             "smoothed_loss": 1 + (np.log10(lrs) + 2) ** 2 / 10})
    return [plot_confusion_matrix(y, scores.argmax(axis=1), class_names, folder / "confusion_matrix.png"),
            plot_roc(y, scores, class_names, folder / "roc.png"),
            plot_discriminant(y, scores, class_names, folder / "discriminant.png"),
            plot_training_curves(history, folder / "training_curves.png"),
            plot_scan(scan, folder / "scan.png"),
            plot_lr_find(lr_table, {"suggested_lr": 1e-3, "min_loss_lr": 1e-2, "steepest_lr": 3e-3},
                         folder / "lr_find.png")]


def _texts_outside(figure) -> list[str]:
    """The visible texts (titles, axis labels, legend entries, annotations, tick labels) that reach beyond
    the figure, once drawn."""
    from matplotlib.text import Text

    figure.set_dpi(30)   # a small canvas: the same layout in inches, drawn quickly
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    inside = figure.bbox.padded(1.0)   # a pixel of rounding
    ticks = {id(label) for ax in figure.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in (*axis.majorTicks, *axis.minorTicks) for label in (tick.label1, tick.label2)}
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
    outside = []
    for text in texts:
        if id(text) in ticks:
            continue   # tick labels: only those drawn (a tick outside the view keeps a stale place), below
        box = text.get_window_extent(renderer)
        if not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)):
            outside.append(text.get_text())
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            box = axis.get_tightbbox(renderer)
            if box is not None and not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)):
                outside.append(f"tick labels of {ax.get_title() or ax.get_label()!r}")
    return outside


#: Every figure in plain and one experiment style; the other experiment styles draw one figure (an experiment
#: style's label redraws the figure, a few seconds per style for the whole set).
EVERY_FIGURE_STYLES = ("plain", "cms")


@pytest.mark.parametrize("name", PLOT_STYLE_NAMES)
def test_every_style_draws_every_figure_and_long_class_names_stay_inside(name, tmp_path):
    with plot_style(name) as active:
        if name in EVERY_FIGURE_STYLES:   # and three classes: the bigger confusion matrix, Σ in the discriminant
            paths = _draw_all(tmp_path, LONG[:2])
            paths += [plot_confusion_matrix(*_cm(), LONG, tmp_path / "cm3.png"),
                      plot_discriminant(*_scores(3), LONG, tmp_path / "d3.png")]
        else:
            paths = [plot_roc(*_scores(2), LONG[:2], tmp_path / "roc.png")]
    assert [p for p, _ in active.saved] == paths
    for path, figure in active.saved:
        assert path.stat().st_size > 5_000, path
        assert _texts_outside(figure) == [], path.name
        shown = " ".join(t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text")))
        assert LONG[0] not in shown   # cut on the figure (the full name stays in metrics.json and report.md)


def _cm():
    y, scores = _scores(3)
    return y, scores.argmax(axis=1)


def test_the_cms_style_labels_every_panel_as_cms_simulation_at_the_energy(tmp_path):
    with plot_style("cms", energy=13.6) as active:
        plot_roc(*_scores(2), ["background", "signal"], tmp_path / "roc.png")
    (path, figure), = active.saved
    for ax in figure.axes:   # ROC and rejection
        texts = [t.get_text() for t in ax.texts]
        assert "CMS" in texts and "Simulation" in texts, texts
        assert any("13.6 TeV" in t for t in texts), texts
        assert ax.get_title()   # kept, above the label
    from PIL import Image

    with Image.open(path) as picture:
        assert picture.text["Description"] == "hepvision figure, plot style cms"


def test_plain_is_matplotlibs_look_and_leaves_no_style_behind(tmp_path):
    import matplotlib

    before = dict(matplotlib.rcParams)
    with plot_style("plain") as active:
        plot_roc(*_scores(2), ["background", "signal"], tmp_path / "roc.png")
    (_, figure), = active.saved
    assert not any(t.get_text() in ("CMS", "ATLAS", "LHCb", "Simulation") for ax in figure.axes for t in ax.texts)
    assert tuple(figure.get_size_inches()) == (12.0, 5.0)
    with plot_style("atlas"):
        assert matplotlib.rcParams["font.size"] != before["font.size"]
    assert dict(matplotlib.rcParams) == before


def test_unknown_styles_and_energies_are_refused_by_name():
    with pytest.raises(OptionError, match="plot_style 'alice': unknown plot style; choose one of plain, cms"):
        get_plot_style("alice")
    for bad in (0, -13, "lots", None):
        with pytest.raises(OptionError, match="plot_energy .*: the centre-of-mass energy in TeV"):
            check_energy(bad)
    assert check_energy("13.6") == 13.6
