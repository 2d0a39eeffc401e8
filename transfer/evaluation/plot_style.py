"""How every figure looks (``--plot-style``): one registry of styles, applied by one context manager.

``plain`` is matplotlib's own look (the figures as they always were). ``cms``, ``atlas`` and ``lhcb``
apply mplhep's style sheet of that experiment and put its label above every panel of a figure's top row:
the experiment, "Simulation" (the samples are simulated, never recorded data) and the centre-of-mass
energy, ``--plot-energy`` (default :data:`DEFAULT_ENERGY_TEV`; the bundled toy generator of ``imgen`` is
7 TeV-like, so say ``--plot-energy 7`` for it). The label is a look, not an endorsement by the experiment.

Every figure of the package is made and saved through this module, inside the style::

    with plot_style("cms", energy=13):
        figure = new_styled_figure(6.0, 5.0)   # the style's scale applied; Agg canvas, no pyplot
        ...
        save_figure(figure, "roc.png", dpi=120)  # label added, same pixel size as plain

The experiments' sheets set fonts for larger figures (CMS: 26 pt on 10 x 10 in), so a styled figure
grows by the sheet's axis-label size over matplotlib's (10 pt) and is saved at a dpi lowered by as much:
the PNG keeps its pixel size and the texts take the share of it they take in a plain figure, so that the
long descriptive labels of these figures fit. A title, axis label or legend entry too long for its panel
is wrapped (:func:`fit_texts`).
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from transfer.errors import OptionError

DEFAULT_STYLE = "plain"
#: Centre-of-mass energy (TeV) in the experiment label unless ``--plot-energy`` says otherwise: the LHC's Run 2.
DEFAULT_ENERGY_TEV = 13.0
#: matplotlib's default axis-label size (pt): a sheet's over this is how much its figures grow.
MATPLOTLIB_LABEL_PT = 10.0
#: Width of an average character over the font size: how many characters a line of a panel holds.
CHAR_WIDTH = 0.6


@dataclass(frozen=True)
class PlotStyle:
    """One ``--plot-style``: mplhep's style sheet (an attribute of ``mplhep.style``) and the mplhep module
    whose ``label`` draws the experiment's label; both None for matplotlib's own look."""

    name: str
    description: str
    sheet: str | None = None
    experiment: str | None = None

    def rc(self) -> dict:
        """The rcParams of the sheet ({} for plain)."""
        if self.sheet is None:
            return {}
        import mplhep

        return dict(getattr(mplhep.style, self.sheet))

    def label(self, ax, energy: float):
        """Draw "<EXPERIMENT> Simulation" and the energy above ``ax`` (loc 0: above the axes, never on the
        curves, which fill the top-left corner of a ROC or rejection plot)."""
        if self.experiment is None:
            return ()
        import mplhep

        return getattr(mplhep, self.experiment).label(ax=ax, data=False, com=f"{energy:g}", loc=0,
                                                      scilocator_adjust=False)


#: ``--plot-style`` name -> style. A new experiment is one entry.
PLOT_STYLES = {s.name: s for s in (
    PlotStyle("plain", "matplotlib's own look"),
    PlotStyle("cms", "CMS (mplhep.style.CMS, mplhep.cms.label)", "CMS", "cms"),
    PlotStyle("atlas", "ATLAS (mplhep.style.ATLAS, mplhep.atlas.label)", "ATLAS", "atlas"),
    PlotStyle("lhcb", "LHCb (mplhep.style.LHCb2, mplhep.lhcb.label)", "LHCb2", "lhcb"),
)}
PLOT_STYLE_NAMES = tuple(PLOT_STYLES)


@dataclass
class ActiveStyle:
    """The style figures are made in now: the style, its label's energy, the figure scale, and the figures
    saved in the block, as (path, figure) in order (what a check of the figures, e.g. a test, inspects)."""

    style: PlotStyle
    energy: float = DEFAULT_ENERGY_TEV
    scale: float = 1.0
    saved: list = field(default_factory=list)


#: Outside any :func:`plot_style` block: plain, and nothing recorded.
_ACTIVE: ContextVar[ActiveStyle | None] = ContextVar("plot_style", default=None)
_PLAIN = PLOT_STYLES[DEFAULT_STYLE]


def get_plot_style(name: str) -> PlotStyle:
    try:
        return PLOT_STYLES[name]
    except (KeyError, TypeError):
        raise OptionError(f"plot_style {name!r}: unknown plot style; choose one of "
                          f"{', '.join(PLOT_STYLE_NAMES)}") from None


def check_energy(value) -> float:
    """The label's centre-of-mass energy in TeV: a positive number."""
    try:
        energy = float(value)
    except (TypeError, ValueError):
        energy = float("nan")
    if not energy > 0 or energy == float("inf"):
        raise OptionError(f"plot_energy {value!r}: the centre-of-mass energy in TeV must be a positive number, "
                          "e.g. 13 or 13.6")
    return energy


def active_style() -> ActiveStyle:
    """The style of the innermost :func:`plot_style` block (plain outside one)."""
    return _ACTIVE.get() or ActiveStyle(_PLAIN)


@contextmanager
def plot_style(name: str | None = None, energy=None):
    """Make and save figures in the style ``name`` (default plain) inside the block, which gets the
    :class:`ActiveStyle`; the rcParams and the previous style are restored after it (also on error)."""
    import matplotlib

    style = get_plot_style(name or DEFAULT_STYLE)
    energy = DEFAULT_ENERGY_TEV if energy is None else check_energy(energy)
    with matplotlib.rc_context(style.rc()):
        scale = 1.0 if style.sheet is None else _label_points() / MATPLOTLIB_LABEL_PT
        active = ActiveStyle(style, energy, scale)
        token = _ACTIVE.set(active)
        try:
            yield active
        finally:
            _ACTIVE.reset(token)


def _label_points() -> float:
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=rcParams["axes.labelsize"]).get_size_in_points()


def new_styled_figure(width: float, height: float, layout: str = "constrained"):
    """A matplotlib Figure of ``width`` x ``height`` inches (times the active style's scale) on an Agg
    canvas: no display, no pyplot state, safe in worker processes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from matplotlib import rcParams

    scale = active_style().scale
    figure = Figure(figsize=(width * scale, height * scale), dpi=rcParams["figure.dpi"] / scale, layout=layout)
    # (the dpi lowered as the size grows: the canvas mplhep's label draws on keeps the plain figure's pixels)
    FigureCanvasAgg(figure)
    return figure


def label_axes(figure) -> list:
    """The panels that get the experiment's label: the top row's, colour bars left out."""
    chosen = []
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>" or not ax.get_visible():
            continue
        spec = ax.get_subplotspec()
        if spec is None or spec.is_first_row():
            chosen.append(ax)
    return chosen


def add_labels(figure) -> None:
    """The active style's experiment label on :func:`label_axes`; an axes title moves up above it."""
    import matplotlib

    active = active_style()
    if active.style.experiment is None:
        return
    for ax in label_axes(figure):
        title = ax.get_title()
        texts = [t for t in active.style.label(ax, active.energy) if t is not None]
        if title and texts:
            size = max(t.get_fontsize() for t in texts)
            ax.set_title(title, pad=matplotlib.rcParams["axes.titlepad"] + 1.4 * size,
                         fontsize=ax.title.get_fontsize(), color=ax.title.get_color())


def _panel_points(ax) -> tuple[float, float]:
    """Width and height (pt) of the figure's share that ``ax`` sits in (its cell of the subplot grid)."""
    width, height = ax.figure.get_size_inches() * 72
    spec = ax.get_subplotspec()
    if spec is None:
        return width, height
    grid = spec.get_gridspec()
    return width / grid.ncols, height / grid.nrows


def _wrap(text, room_pt: float) -> None:
    """Wrap the Text ``text`` onto lines that fit ``room_pt`` points (a line short enough stays as it is)."""
    import textwrap

    chars = max(12, int(room_pt / (CHAR_WIDTH * text.get_fontsize())))
    value = text.get_text()
    if any(len(line) > chars for line in value.split("\n")):
        text.set_text("\n".join(textwrap.fill(line, chars) for line in value.split("\n")))


def fit_texts(figure) -> None:
    """Wrap titles, axis labels and legend entries longer than their panel allows (long class names are
    cut before, :func:`transfer.evaluation.plots.short_name`; this catches what a big font still pushes out)."""
    for ax in figure.axes:
        width, height = _panel_points(ax)
        _wrap(ax.title, 0.7 * width)   # centred on the axes, which leave room for tick labels and colour bars
        _wrap(ax.xaxis.label, 0.9 * width)
        _wrap(ax.yaxis.label, 0.9 * height)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                _wrap(text, 0.6 * width)


def save_figure(figure, path, dpi: float = 120, **kwargs):
    """Label ``figure`` in the active style and write it; the dpi is divided by the style's scale so that
    the file has the pixel size the plain figure has. A PNG names its style in its metadata (Description)."""
    active = active_style()
    fit_texts(figure)
    add_labels(figure)
    if str(kwargs.get("format") or Path(path).suffix.lstrip(".")).lower() == "png":
        kwargs.setdefault("metadata", {"Description": f"hepvision figure, plot style {active.style.name}"})
    figure.savefig(path, dpi=dpi / active.scale, **kwargs)
    if _ACTIVE.get() is not None:
        active.saved.append((Path(path), figure))
    return path
