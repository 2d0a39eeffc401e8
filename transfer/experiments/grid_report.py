"""The summary of a grid: every cell's figures read back from its run folder, a table, a heat map.

``grid_summary.csv`` has one row per requested cell (backbone, optimizer,
fine-tuning regime): its run folder, status (``done``, ``failed`` with the
message, ``not run``), test and validation accuracy and ROC AUC with the test
intervals, the matched baseline's, health, wall time and parameter count. The
numbers are those of the cell's ``metrics.json`` (``folds_summary.json`` for
``--folds``: the mean, with mean +- std as its interval), so the summary can
always be rebuilt from the folders.

``grid_summary.png`` is a heat map of the test ROC AUC (two classes) or
accuracy (more), backbone x optimizer, one panel per fine-tuning regime (and one
for the runs trained from scratch), the colour centred on the baseline (blue
above it, red below), the interval and the wall time and size in each cell,
collapsed cells hatched and the best cell (by the *validation* figure, among
cells that did not collapse) framed. ``grid_summary.md`` says the same in words.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from transfer.files import write_text_atomic
from transfer.run_folder import FOLDS_SUMMARY_JSON, METRICS_FILE

SUMMARY_CSV = "grid_summary.csv"
SUMMARY_MD = "grid_summary.md"
SUMMARY_PNG = "grid_summary.png"


def _macro(auc):
    return auc.get("macro") if isinstance(auc, dict) else auc


def _interval(values: dict | None, name: str):
    pair = (values or {}).get(name)
    return (pair[0], pair[1]) if pair else (None, None)


def _single_figures(m: dict) -> dict:
    """The figures of one run's metrics.json."""
    test, val = m["test"], m["validation"]
    base = m.get("baseline") or {}
    intervals = test.get("intervals") or {}
    counts = list(test.get("events_per_class", {}).values())
    figures = {
        "n_classes": len(m["classes"]), "training": m.get("training"), "weights_used": m.get("weights_used"),
        "weights_reason": m.get("weights_reason"),
        "test_accuracy": test["accuracy"], "test_auc": _macro(test["roc_auc"]),
        "validation_accuracy": val["accuracy"], "validation_auc": _macro(val["roc_auc"]),
        "collapsed": bool(m.get("health", {}).get("collapsed")), "warnings": len(m.get("health", {}).get("warnings", [])),
        "wall_s": m.get("timing", {}).get("total_s"), "parameters": m.get("parameters"),
        "majority_fraction": max(counts) / sum(counts) if counts and sum(counts) else None,
        "interval": f"{intervals.get('level', 0.68):.0%} bootstrap",
    }
    figures["test_accuracy_low"], figures["test_accuracy_high"] = _interval(intervals, "accuracy")
    figures["test_auc_low"], figures["test_auc_high"] = _interval(intervals, "roc_auc")
    if base:
        b_intervals = base["test"].get("intervals") or {}
        figures.update({"baseline_test_accuracy": base["test"]["accuracy"],
                        "baseline_test_auc": _macro(base["test"]["roc_auc"]),
                        "baseline_validation_auc": _macro(base["validation"]["roc_auc"])})
        figures["baseline_test_accuracy_low"], figures["baseline_test_accuracy_high"] = _interval(b_intervals, "accuracy")
        figures["baseline_test_auc_low"], figures["baseline_test_auc_high"] = _interval(b_intervals, "roc_auc")
    return figures


def _folds_figures(folder: Path) -> dict:
    """A ``--folds`` cell: means over folds, mean +- std as the interval; time summed, size of fold 1."""
    info = json.loads((folder / FOLDS_SUMMARY_JSON).read_text(encoding="utf-8"))
    summary = info["summary"]
    folds = [json.loads((folder / run / METRICS_FILE).read_text(encoding="utf-8")) for run in info["runs"]]
    figures = _single_figures(folds[0])
    auc = "roc_auc" if len(info["classes"]) == 2 else "roc_auc.macro"
    for column, key in (("test_accuracy", "test.accuracy"), ("test_auc", f"test.{auc}"),
                        ("validation_accuracy", "validation.accuracy"), ("validation_auc", f"validation.{auc}"),
                        ("baseline_test_accuracy", "baseline.test.accuracy"),
                        ("baseline_test_auc", f"baseline.test.{auc}")):
        entry = summary.get(key)
        if entry is None:
            continue
        figures[column] = entry["mean"]
        if column.startswith(("test", "baseline_test")):
            figures[f"{column}_low"], figures[f"{column}_high"] = entry["mean"] - entry["std"], entry["mean"] + entry["std"]
    figures["collapsed"] = any(bool(m.get("health", {}).get("collapsed")) for m in folds)
    figures["warnings"] = sum(len(m.get("health", {}).get("warnings", [])) for m in folds)
    figures["wall_s"] = sum(m.get("timing", {}).get("total_s", 0.0) for m in folds)
    figures["interval"] = f"mean +- std over {len(folds)} folds"
    return figures


#: What a complete run folder holds -> how its figures are read.
RUN_READERS = {
    METRICS_FILE: lambda folder: _single_figures(json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))),
    FOLDS_SUMMARY_JSON: _folds_figures,
}


def read_run_figures(folder) -> dict | None:
    """The figures of a complete run folder (a run or a cross-validation); ``None`` when there is none."""
    folder = Path(folder)
    for marker, reader in RUN_READERS.items():
        if (folder / marker).is_file():
            return reader(folder)
    return None


def _text(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _with_interval(value, low, high) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return _text(value)
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def figures_text(figures: dict | None) -> str:
    """One line: test accuracy and AUC with intervals, health (the grid's per-cell log line)."""
    if not figures:
        return "no results"
    f = figures
    health = ("COLLAPSED" if f["collapsed"] else "healthy" if not f["warnings"]
              else f"healthy, {int(f['warnings'])} warning(s)")
    return (f"test accuracy {_with_interval(f['test_accuracy'], f.get('test_accuracy_low'), f.get('test_accuracy_high'))}, "
            f"ROC AUC {_with_interval(f['test_auc'], f.get('test_auc_low'), f.get('test_auc_high'))}, {health}")


def grid_table(plan, failures: dict[str, str]):
    """One row per requested cell, its figures read from its run folder (see the module docstring)."""
    import pandas as pd

    rows = []
    for cell in plan.cells:
        figures = read_run_figures(plan.run_folder(cell.run))
        status = "done" if figures is not None else "failed" if cell.run in failures else "not run"
        row = {"cell": cell.name, "backbone": cell.backbone, "optimizer": cell.optimizer, "fine_tune": cell.fine_tune,
               "run": cell.run, "regime": "scratch" if cell.from_scratch else cell.fine_tune, "status": status,
               "error": failures.get(cell.run) if status == "failed" else None}
        row.update(figures or {})
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("collapsed",):
        if column not in table:
            table[column] = False
    table["collapsed"] = table["collapsed"].fillna(False).astype(bool)
    return table


def heat_metric(table) -> str:
    """``auc`` for two classes, ``accuracy`` for more (the figure the heat map shows)."""
    done = table[table["status"] == "done"]
    classes = done["n_classes"].dropna() if "n_classes" in done else []
    return "auc" if len(classes) and int(classes.iloc[0]) == 2 else "accuracy"


def best_cell(table) -> dict | None:
    """The cell with the highest validation figure among the done cells that did not collapse (first on ties)."""
    if "status" not in table:
        return None
    metric = heat_metric(table)
    done = table[(table["status"] == "done") & ~table["collapsed"]].drop_duplicates("run")
    done = done[done[f"validation_{metric}"].notna()] if f"validation_{metric}" in done else done.iloc[0:0]
    if done.empty:
        return None
    return done.loc[done[f"validation_{metric}"].idxmax()].to_dict()


def baseline_figures(table, metric: str) -> tuple | None:
    """``(value, low, high)`` of the baseline's test figure (the same events in every cell: the first done cell's)."""
    column = f"baseline_test_{metric}"
    if column not in table:
        return None
    done = table[(table["status"] == "done") & table[column].notna()]
    if done.empty:
        return None
    row = done.iloc[0]
    return row[column], row.get(f"{column}_low"), row.get(f"{column}_high")


METRIC_NAMES = {"auc": "test ROC AUC", "accuracy": "test accuracy"}


def _panels(plan) -> list[str]:
    """The regimes with a panel: the requested ones some cell trains in, then ``scratch`` if any run does."""
    used = {c.fine_tune for c in plan.cells if not c.from_scratch}
    panels = [mode for mode in plan.axes["fine_tune"] if mode in used]
    return panels + (["scratch"] if any(c.from_scratch for c in plan.cells) else [])


def _size(parameters) -> str:
    if parameters is None or (isinstance(parameters, float) and not math.isfinite(parameters)):
        return ""
    p = float(parameters)
    return f"{p / 1e6:.1f}M par." if p >= 1e5 else f"{p / 1e3:.0f}k par."


def duration_text(seconds) -> str:
    """``42 s``, ``12 min``, ``2.5 h``; empty for no value."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


#: The colour saturates this far from the baseline at least (further where a healthy cell lies further away).
COLOUR_SPAN = 0.1


def values_of_healthy(done, metric: str) -> list[float]:
    if f"test_{metric}" not in done:
        return []
    return done.loc[~done["collapsed"], f"test_{metric}"].dropna().tolist()


def colour_scale(baseline, values: list[float], chance: float):
    """Diverging around the baseline, saturated at the healthy cell furthest from it (at least
    :data:`COLOUR_SPAN`); collapsed cells, far below, are simply the deepest red. Without a baseline,
    chance .. 1."""
    from matplotlib import colors

    if baseline is None or not 0.0 < baseline < 1.0:
        return colors.Normalize(vmin=min([chance, *values]), vmax=1.0)
    span = max([COLOUR_SPAN, *(abs(v - baseline) for v in values)])
    return colors.TwoSlopeNorm(vcenter=float(baseline), vmin=baseline - span, vmax=min(1.0, baseline + span))


def plot_grid(plan, table, path) -> Path:
    """The heat map (see the module docstring)."""
    from matplotlib import colors, patches

    from transfer.evaluation.plot_style import new_styled_figure, save_figure

    metric = heat_metric(table)
    backbones, optimizers = list(plan.axes["backbones"]), list(plan.axes["optimizers"])
    panels = _panels(plan)
    rows = {(r["backbone"], r["optimizer"], r["regime"]): r for r in table.to_dict("records")}
    done = table[table["status"] == "done"]
    chance = 0.5 if metric == "auc" else float(done["majority_fraction"].dropna().min()) \
        if "majority_fraction" in done and done["majority_fraction"].notna().any() else 0.0
    base = baseline_figures(table, metric)
    norm = colour_scale(base[0] if base is not None else None, values_of_healthy(done, metric), chance)
    cmap = colors.LinearSegmentedColormap.from_list("grid", ["#b2182b", "#f4a582", "#f7f7f7", "#92c5de", "#2166ac"])
    best = best_cell(table)

    width = 1.45 * len(optimizers) + 0.9
    figure = new_styled_figure(max(6.5, width * len(panels) + 2.2), 1.05 * len(backbones) + 2.4)
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    image = None
    for ax, panel in zip(axes, panels):
        grid = np.full((len(backbones), len(optimizers)), np.nan)
        for i, b in enumerate(backbones):
            for j, o in enumerate(optimizers):
                row = rows.get((b, o, panel))
                if row is not None and row["status"] == "done":
                    grid[i, j] = row[f"test_{metric}"]
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        ax.set_facecolor("#eeeeee")
        for i, b in enumerate(backbones):
            for j, o in enumerate(optimizers):
                _draw_cell(ax, i, j, rows.get((b, o, panel)), metric, norm, cmap, best, patches)
        ax.set_xticks(range(len(optimizers)), optimizers)
        ax.set_yticks(range(len(backbones)), backbones)
        ax.tick_params(which="both", length=0)
        ax.set_xticks(np.arange(-0.5, len(optimizers)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(backbones)), minor=True)
        ax.grid(which="minor", color="white", linewidth=2)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title("trained from scratch (one stage)" if panel == "scratch" else f"fine-tuning: {panel}",
                     fontsize=11)
    colorbar = figure.colorbar(image, ax=list(axes), shrink=0.9, pad=0.02)
    colorbar.set_label(METRIC_NAMES[metric])
    if base is not None:
        colorbar.ax.axhline(base[0], color="black", linewidth=2)
        colorbar.ax.text(-0.3, base[0], "baseline ", ha="right", va="center", fontsize=8,
                         transform=colorbar.ax.get_yaxis_transform())
    lines = [f"{METRIC_NAMES[metric].capitalize()} per backbone x optimizer, 68 % intervals"]
    if base is not None:
        lines.append(f"colour centred on the baseline (trees, same events): {_with_interval(*base)}")
    if best is not None:
        lines.append(f"best cell (by validation): {best['run']}, "
                     f"{_with_interval(best[f'test_{metric}'], best.get(f'test_{metric}_low'), best.get(f'test_{metric}_high'))}")
    if "weights_reason" in done and done["weights_reason"].notna().any():
        random = sorted(set(done.loc[done["weights_reason"].notna(), "backbone"]))
        lines.append(f"no ImageNet weights for {', '.join(random)}: random initialisation, not transfer learning")
    figure.suptitle("\n".join(lines), fontsize=10)
    legend = ["each cell: test figure, its interval, wall time and parameters", "hatched: collapsed",
              "grey: failed or not run", "frame: best cell"]
    if any(panel == "scratch" for panel in panels) and len(panels) > 1:
        legend.append("-: trained from scratch, see its own panel")
    import textwrap

    per_line = max(60, int(figure.get_figwidth() * 15))
    figure.supxlabel("\n".join(textwrap.wrap("   |   ".join(legend), per_line)), fontsize=8, color="#555555")
    with _atomic_png(path) as tmp:
        save_figure(figure, tmp, dpi=130, format="png")
    return Path(path)


def _draw_cell(ax, i, j, row, metric, norm, cmap, best, patches) -> None:
    if row is None:
        ax.text(j, i, "-", ha="center", va="center", color="#999999", fontsize=12)
        return
    if row["status"] != "done":
        ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#555555" if row["status"] == "failed"
                                       else "#eeeeee", edgecolor="white"))
        ax.text(j, i, "FAILED" if row["status"] == "failed" else "not run", ha="center", va="center", fontsize=9,
                color="white" if row["status"] == "failed" else "#777777", fontweight="bold")
        return
    value = row[f"test_{metric}"]
    face = cmap(norm(value))
    dark = 0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2] < 0.5
    ink = "white" if dark else "black"
    ax.text(j, i - 0.2, f"{value:.3f}", ha="center", va="center", fontsize=12, fontweight="bold", color=ink)
    lo, hi = row.get(f"test_{metric}_low"), row.get(f"test_{metric}_high")
    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
        ax.text(j, i + 0.05, f"[{lo:.3f}, {hi:.3f}]", ha="center", va="center", fontsize=8, color=ink)
    ax.text(j, i + 0.3, "  ".join(t for t in (duration_text(row.get("wall_s")), _size(row.get("parameters"))) if t),
            ha="center", va="center", fontsize=7, color=ink, alpha=0.8)
    if row["collapsed"]:
        ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#333333",
                                       linewidth=0))
        ax.text(j, i - 0.38, "COLLAPSED", ha="center", va="center", fontsize=7, fontweight="bold", color="white",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "black", "edgecolor": "none"})
    if best is not None and row["run"] == best["run"]:
        ax.add_patch(patches.Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False, edgecolor="black", linewidth=2.5))
        ax.text(j, i - 0.4, "best", ha="center", va="center", fontsize=7, fontweight="bold", color=ink)


def _atomic_png(path):
    from imgen.atomic import atomic_path

    path = Path(path)
    return atomic_path(path, prefix=f".{path.name}-", suffix=".png")


def grid_markdown(plan, table) -> str:
    """``grid_summary.md``: what was trained, the best cell against the baseline, every cell's figures."""
    metric = heat_metric(table)
    axes = plan.axes
    runs = table.drop_duplicates("run")
    counts = runs["status"].value_counts().to_dict()
    lines = [f"# Grid: {' x '.join(str(len(v)) for v in axes.values())} cells", "",
             f"Backbones {', '.join(axes['backbones'])}; optimizers {', '.join(axes['optimizers'])}; fine-tuning "
             f"{', '.join(axes['fine_tune'])}: {len(table)} cells in {len(runs)} runs "
             f"({counts.get('done', 0)} done, {counts.get('failed', 0)} failed, {counts.get('not run', 0)} not run). "
             "Every cell has the same data, options and seed, so the same train/validation/test split.", ""]
    scratch = table[table["regime"] == "scratch"]
    if len(scratch):
        lines += ["Cells trained from scratch (compact networks, or no pretrained weights) have one stage and no "
                  "frozen backbone, so their fine-tuning regimes are identical by construction: each backbone x "
                  "optimizer is trained once, in `BACKBONE-OPTIMIZER-scratch`, which answers every regime.", ""]
    reasons = sorted({r for r in table.get("weights_reason", []) if isinstance(r, str) and r})
    for reason in reasons:
        lines += [f"**Random initialisation, not transfer learning**: {reason}.", ""]
    best = best_cell(table)
    base = baseline_figures(table, metric)
    name = METRIC_NAMES[metric]
    if best is not None:
        lines.append(f"**Best cell** (highest validation {name.split(' ', 1)[1]}, among cells that did not collapse): "
                     f"**{best['run']}**, {name} {_with_interval(best[f'test_{metric}'], best.get(f'test_{metric}_low'), best.get(f'test_{metric}_high'))}.")
    if base is not None:
        lines.append(f"Baseline (gradient-boosted trees on the same events): {name} {_with_interval(*base)}.")
    collapsed = sorted(set(runs.loc[runs["collapsed"] & (runs["status"] == "done"), "run"]))
    lines.append(f"Collapsed runs (learned nothing; their numbers are not a result): "
                 f"{', '.join(collapsed) if collapsed else 'none'}.")
    lines += ["", f"![{name} per cell]({SUMMARY_PNG})", "",
              "| cell | run | status | weights | test accuracy | test ROC AUC | validation accuracy | validation ROC AUC "
              "| baseline test accuracy | baseline test ROC AUC | health | time | parameters |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        done = row["status"] == "done"
        cell = f"**{row['cell']}**" if best is not None and row["run"] == best["run"] else row["cell"]
        if not done:
            lines.append(f"| {cell} | {row['run']} | {row['status']} |" + " |" * 10)
            continue
        health = "**COLLAPSED**" if row["collapsed"] else "ok" if not row.get("warnings") else f"{int(row['warnings'])} warning(s)"
        lines.append(
            f"| {cell} | {row['run']} | done | {row.get('weights_used')} | "
            f"{_with_interval(row['test_accuracy'], row.get('test_accuracy_low'), row.get('test_accuracy_high'))} | "
            f"{_with_interval(row['test_auc'], row.get('test_auc_low'), row.get('test_auc_high'))} | "
            f"{_text(row['validation_accuracy'])} | {_text(row['validation_auc'])} | "
            f"{_text(row.get('baseline_test_accuracy'))} | {_text(row.get('baseline_test_auc'))} | {health} | "
            f"{duration_text(row.get('wall_s'))} | {_size(row.get('parameters')) or 'n/a'} |")
    failed = runs[runs["status"] == "failed"]
    if len(failed):
        lines += ["", "## Failed runs", ""] + [f"- `{r['run']}`: {r['error']}" for r in failed.to_dict("records")]
        lines += ["", "Run the same command again to retry them (complete runs are skipped)."]
    intervals = sorted({i for i in table.get("interval", []) if isinstance(i, str)})
    lines += ["", f"Intervals: {', '.join(intervals) or 'none'} (test events). Each run folder holds its own "
              "report.md; `grid.yaml` reproduces or resumes the grid (`python -m transfer grid --config grid.yaml`).", ""]
    return "\n".join(lines)


def write_grid_summary(plan, failures: dict[str, str], plot: bool = True):
    """Write grid_summary.csv and .md (and .png when ``plot``) from the run folders; returns the table."""
    table = grid_table(plan, failures)
    write_text_atomic(plan.out / SUMMARY_CSV, table.to_csv(index=False))
    write_text_atomic(plan.out / SUMMARY_MD, grid_markdown(plan, table))
    if plot and (table["status"] == "done").any():
        from transfer.evaluation.plot_style import plot_style

        style = plan.runs[0].config   # every cell has the same plot options
        with plot_style(style.plot_style, style.plot_energy):
            plot_grid(plan, table, plan.out / SUMMARY_PNG)
    return table


def console_summary(result) -> list[str]:
    """What ``python -m transfer grid`` prints at the end."""
    table = result.table
    metric = heat_metric(table)
    runs = table.drop_duplicates("run")
    lines = [f"grid folder: {result.out_dir} ({len(table)} cells in {len(runs)} runs: {len(result.trained)} trained "
             f"now, {len(result.skipped)} already complete, {len(result.failures)} failed)"]
    best = result.best
    if best is not None:
        lines.append(f"best cell (by validation): {best['run']}: {figures_text(best)}")
    base = baseline_figures(table, metric)
    if base is not None:
        lines.append(f"baseline (trees, same events): {METRIC_NAMES[metric]} {_with_interval(*base)}")
    if result.collapsed:
        lines.append(f"COLLAPSED runs (learned nothing): {', '.join(result.collapsed)}")
    for name, message in result.failures.items():
        lines.append(f"FAILED {name}: {message.splitlines()[0]}")
    lines.append(f"summary: {result.out_dir / SUMMARY_MD}, {SUMMARY_CSV}, {SUMMARY_PNG}")
    return lines
