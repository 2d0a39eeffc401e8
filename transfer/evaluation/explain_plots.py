"""The figures of ``python -m transfer explain``: maps per class beside the mean input, the most confidently
right and wrong events, and the sanity check.

Events are drawn as the rest of the project draws them: eta horizontal, phi vertical with +pi on the top
row (the eta-phi extent of images ``imgen`` rendered; cell columns and rows for calorimeter arrays, row 0
on top as ``imgen arrays`` exports them). A calorimeter event is one panel per layer or channel, with one
colour scale across a row, so the panels say which layer the score comes from (its share of the map is in
each title); an event image is one picture. Maps of a magnitude run from zero (``inferno``), signed maps
are centred on zero (red: evidence for the class, blue: against).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from transfer.evaluation.attribution import METHODS
from transfer.evaluation.plot_style import new_styled_figure, save_figure
from transfer.evaluation.plots import short_name

KIND_TITLES = {"input": "mean input", "right": "right", "wrong": "wrong"}


def _panel_size(shape) -> tuple[float, float]:
    rows, cols = shape[:2]
    width = 3.4
    return width, max(1.0, min(width, width * rows / cols)) + 0.55


def _panels(values: np.ndarray, geometry, kind: str) -> list[tuple[str, np.ndarray]]:
    """(title, 2D or RGB image) per panel of one event-shaped array (H, W, C)."""
    if geometry.combined:
        if kind == "input":
            if values.shape[-1] == 1:
                return [("", values[..., 0])]
            rgb = np.zeros((*values.shape[:2], 3), np.float32)
            rgb[..., :values.shape[-1]] = values / 255.0
            return [("", np.clip(rgb, 0.0, 1.0))]
        return [("", values.sum(axis=-1))]
    names = list(geometry.channel_names) or [f"channel {c}" for c in range(values.shape[-1])]
    return [(names[c], values[..., c]) for c in range(values.shape[-1])]


def _input_style(images):
    """Colour map and norm of mean inputs: logarithmic for energies (a core and its halo both show)."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    values = np.concatenate([np.ravel(i) for i in images])
    cmap = colormaps["viridis"]
    top = float(values.max()) if values.size else 1.0
    positive = values[values > 0]
    if values.min() >= 0 and top > 0 and positive.size and top / positive.min() > 100:
        return cmap.with_extremes(bad=cmap(0.0), under=cmap(0.0)), LogNorm(vmin=top * 1e-3, vmax=top)
    return cmap, Normalize(vmin=float(values.min()), vmax=top if top > values.min() else values.min() + 1)


def _map_style(images, signed: bool):
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    top = max((float(np.abs(i).max()) for i in images), default=0.0) or 1.0
    if signed:
        return colormaps["RdBu_r"], Normalize(vmin=-top, vmax=top)
    return colormaps["inferno"], Normalize(vmin=0.0, vmax=top)


#: Calorimeter figures zoom onto the cells where something is (above this fraction of a panel's maximum),
#: with a margin, when that leaves out more than a fifth of the grid: a 10 GeV shower in a 12x96 grid
#: is a few columns wide.
ZOOM_LEVEL, ZOOM_MARGIN = 0.02, 2


def zoom_box(images, geometry) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1) around every cell of ``images`` above :data:`ZOOM_LEVEL` of its own maximum
    (calorimeter arrays only; an eta-phi image is always drawn whole)."""
    if geometry.extent is not None or not images:
        return None
    occupied = np.zeros(np.shape(images[0])[:2], bool)
    for image in images:
        magnitude = np.abs(np.asarray(image, np.float64))
        if magnitude.ndim == 3:
            magnitude = magnitude.sum(axis=-1)
        if magnitude.max() > 0:
            occupied |= magnitude > ZOOM_LEVEL * magnitude.max()
    if not occupied.any():
        return None
    box = []
    for axis in (1, 0):
        where = np.flatnonzero(occupied.any(axis=axis))
        size = occupied.shape[1 - axis]
        lo, hi = max(0, where[0] - ZOOM_MARGIN), min(size, where[-1] + 1 + ZOOM_MARGIN)
        box += [0, size] if hi - lo > 0.8 * size else [lo, hi]
    return tuple(box)


def _show(ax, image, geometry, cmap=None, norm=None, xlabel=True, ylabel=True, box=None):
    """One panel on the eta-phi plane (or its cells, zoomed onto ``box``), axes labelled."""
    from matplotlib.ticker import MaxNLocator

    extent = geometry.extent
    kwargs = {"interpolation": "nearest", "aspect": "auto"}
    if extent is not None:
        kwargs["extent"] = extent
    elif box is not None:
        r0, r1, c0, c1 = box
        image = image[r0:r1, c0:c1]
        kwargs["extent"] = (c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5)
    shown = ax.imshow(image, cmap=None if image.ndim == 3 else cmap, norm=None if image.ndim == 3 else norm,
                      **kwargs)
    if extent is not None:
        ax.set_yticks([-math.pi, 0, math.pi], ["−π", "0", "π"])
        if xlabel:
            ax.set_xlabel("η (pseudorapidity)")
        if ylabel:
            ax.set_ylabel("φ (azimuth, rad)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if xlabel:
            ax.set_xlabel("η cell (column)")
        if ylabel:
            ax.set_ylabel("φ cell (row)")
    ax.tick_params(labelsize=7)
    return shown


def _grid(n_rows: int, n_cols: int, shape):
    width, height = _panel_size(shape)
    figure = new_styled_figure(width * n_cols + 0.9, height * n_rows + 0.4)
    return figure, figure.subplots(n_rows, n_cols, squeeze=False)


def _shares(images) -> list[str]:
    total = sum(float(np.abs(i).sum()) for i in images) or 1.0
    return [f"{float(np.abs(i).sum()) / total:.0%}" for i in images]


def _draw_row(figure, axes, panels, geometry, style, titles, last_row: bool, colorbar_label: str, box=None):
    cmap, norm = style
    shown = None
    for col, ((_, image), ax, title) in enumerate(zip(panels, axes, titles)):
        shown = _show(ax, image, geometry, cmap, norm, xlabel=last_row, ylabel=ax.get_subplotspec().is_first_col(),
                      box=box)
        ax.set_title(title, fontsize=8)
    if shown is not None and panels[0][1].ndim == 2:
        figure.colorbar(shown, ax=list(axes), shrink=0.9, pad=0.01).set_label(colorbar_label, fontsize=7)


def _one_panel(geometry, shape) -> bool:
    """An event is one panel (an event image, or arrays of one channel): its figures go left to right."""
    return geometry.combined or shape[-1] == 1


def _no_events(axes):
    for ax in axes:
        ax.text(0.5, 0.5, "no events", transform=ax.transAxes, ha="center", va="center", color="grey")


def draw_class_maps(path, method: str, explanation, geometry) -> Path:
    """One method's mean maps per true class, over the events the network got right and those it got wrong,
    beside the class's mean input."""
    spec = METHODS[method]
    k = len(explanation.class_names)
    maps = explanation.maps[method]
    shape = explanation.mean_input.shape[1:]
    label = "|∂D/∂x| (mean)" if not spec.signed else "attribution to D (mean)"
    single = _one_panel(geometry, shape)
    figure, axes = _grid(k, 3, shape) if single else _grid(3 * k, shape[-1], shape)
    box = zoom_box([*explanation.mean_input, *maps["right"], *maps["wrong"]], geometry)
    for c, name in enumerate(explanation.class_names):
        right, wrong = explanation.counts[c]
        blocks = (("input", explanation.mean_input[c], right + wrong),
                  ("right", maps["right"][c], right), ("wrong", maps["wrong"][c], wrong))
        map_images = [p for kind, values, _ in blocks[1:] for _, p in _panels(values, geometry, kind)]
        for j, (kind, values, count) in enumerate(blocks):
            row_axes = [axes[c][j]] if single else list(axes[3 * c + j])
            panels = _panels(values, geometry, kind)
            images = [p for _, p in panels]
            prefix = f"{short_name(name)}: {KIND_TITLES[kind]} ({count})"
            if kind == "input":
                style, titles = _input_style(images), [f"{prefix}{' · ' + t if t else ''}" for t, _ in panels]
            else:  # one colour scale for right and wrong of a class, so that they compare
                style = _map_style(map_images, spec.signed)
                shares = _shares(images) if len(panels) > 1 else [""] * len(panels)
                titles = [f"{prefix}{' · ' + t if t else ''}{' · ' + s + ' of the map' if s else ''}"
                          for (t, _), s in zip(panels, shares)]
            last = (c == k - 1) if single else (3 * c + j == 3 * k - 1)
            _draw_row(figure, row_axes, panels, geometry, style, titles, last,
                      "mean input" if kind == "input" else label, box)
            if kind != "input" and count == 0:
                _no_events(row_axes)
    figure.suptitle(f"{spec.title}: where the log-odds D = ln[p(c) / Σ p(other)]\nof the true class c come from",
                    fontsize=9)
    save_figure(figure, path, dpi=110)
    return Path(path)


def _short(event_id) -> str:
    """An event's id without its folders: ``gamma.h5#914``, ``TTjets/TTjets_12.png``."""
    name, sep, row = str(event_id).partition("#")
    return Path(name).name + sep + row if sep else "/".join(Path(name).parts[-2:])


def draw_events(path, which: str, explanation, geometry, ids: list) -> Path:
    """The most confidently right (or wrong) events, each with the map of every method that passed, for
    the class the network chose."""
    methods = [m for m in explanation.shown if m in explanation.event_maps.get(which, {})]
    inputs = explanation.event_inputs[which]
    n = len(inputs)
    shape = inputs.shape[1:]
    names = explanation.class_names
    blocks = [("input", None)] + [(m, METHODS[m]) for m in methods]
    single = _one_panel(geometry, shape)
    if single:
        figure, axes = _grid(n, len(blocks), shape)
        cell = lambda event, b: [axes[event][b]]  # noqa: E731
    else:
        figure, axes = _grid(n * len(blocks), shape[-1], shape)
        cell = lambda event, b: list(axes[event * len(blocks) + b])  # noqa: E731
    box = zoom_box([*inputs, *(v for m in methods for v in explanation.event_maps[which][m])], geometry)
    for e in range(n):
        true, chosen = (short_name(names[explanation.event_labels[which][e]]),
                        short_name(names[explanation.event_classes[which][e]]))
        score = explanation.event_scores[which][e][explanation.event_classes[which][e]]
        head = f"{_short(ids[e])}: true {true}, chosen {chosen} (p = {score:.3f})"
        last = e == n - 1
        for b, (name, spec) in enumerate(blocks):
            values = inputs[e] if spec is None else explanation.event_maps[which][name][e]
            panels = _panels(values, geometry, "input" if spec is None else "map")
            images = [p for _, p in panels]
            if spec is None:
                style, label = _input_style(images), "input"
                titles = [f"{head}{' · ' + t if t else ''}" if single or i == 0 else t for i, (t, _) in enumerate(panels)]
            else:
                style, label = _map_style(images, spec.signed), spec.name
                shares = _shares(images) if len(panels) > 1 else [""] * len(panels)
                titles = [f"{spec.title} for {chosen}{' · ' + t if t else ''}{' · ' + s if s else ''}"
                          for (t, _), s in zip(panels, shares)]
            last_row = last and (single or b == len(blocks) - 1)
            _draw_row(figure, cell(e, b), panels, geometry, style, titles, last_row, label, box)
    figure.suptitle(f"The {n} most confidently {which} events\n(highest p of the "
                    f"{'true' if which == 'right' else 'wrongly chosen'} class)", fontsize=9)
    save_figure(figure, path, dpi=100)
    return Path(path)


def draw_sanity(path, explanation, geometry) -> Path:
    """Each method's map averaged over all explained events, for the network and for the same network with
    re-initialised weights, side by side with their correlation: a method passes when they differ."""
    methods = list(explanation.sanity)
    shape = explanation.mean_input.shape[1:]
    figure, axes = _grid(len(methods), 2, shape)
    counts = explanation.counts.sum(axis=1)
    weights = counts / max(counts.sum(), 1)
    for row, name in enumerate(methods):
        spec, check = METHODS[name], explanation.sanity[name]
        own = (explanation.maps[name]["right"] * explanation.counts[:, 0, None, None, None]
               + explanation.maps[name]["wrong"] * explanation.counts[:, 1, None, None, None]).sum(axis=0) / max(
            counts.sum(), 1)
        other = (explanation.maps[name]["random"] * weights[:, None, None, None]).sum(axis=0)
        images = [own.sum(axis=-1), other.sum(axis=-1)]
        verdict = "passes" if check.passed else "FAILS: not an explanation"
        titles = [f"{spec.title}: this network", f"re-initialised: correlation {check.correlation:.2f} "
                  f"(per event {check.per_event:.2f})\n{verdict}"]
        for col, (image, title) in enumerate(zip(images, titles)):  # own scales: the patterns are compared
            _draw_row(figure, [axes[row][col]], [("", image)], geometry, _map_style([image], spec.signed), [title],
                      row == len(methods) - 1, "mean" + (", summed over channels" if shape[-1] > 1 else ""),
                      zoom_box([explanation.mean_input.sum(axis=0), *images], geometry))
        if not check.passed:
            axes[row][1].title.set_color("crimson")
    figure.suptitle(f"Sanity check (Adebayo et al. 2018): a method must give different maps\nfor random "
                    f"weights (correlation below {check.limit:.2f})", fontsize=9)
    save_figure(figure, path, dpi=110)
    return Path(path)
