"""``python -m transfer grid``: backbones x optimizers x fine-tuning regimes in one command.

The study this project grows from is such a grid, once run as hand-edited
notebooks. Here a grid is a list of per-cell :class:`~transfer.config.TrainConfig`
objects (the same options, the same data and seed, so the same
train/validation/test split in every cell) handed one by one to
:func:`transfer.experiments.run_experiment`, plus a summary::

    OUT/grid.yaml                       the grid's options (--config OUT/grid.yaml resumes it)
    OUT/grid_split.csv                  the train/validation/test split every cell trains on
    OUT/<backbone>-<optimizer>-<mode>/  one complete run folder per cell
    OUT/<backbone>-<optimizer>-scratch/ one run for the cells that train from scratch (see below)
    OUT/grid_summary.csv/.md/.png       every cell's figures, read back from its run folder

* **Same split, shared features.** Every cell reads the same data with the
  same options and seed, so every cell has the same split (its ``split.csv``).
  The frozen-stage features of a pretrained backbone do not depend on the
  optimizer or the regime: the first cell computes them, the others read them
  (:mod:`transfer.training.features`, ``OUT/.feature-cache``, removed once every
  cell is done).
* **Cells that are identical by construction train once.** A network trained
  from scratch (a compact network, or a pretrained backbone without pretrained
  weights) has one stage and no frozen backbone: the fine-tuning regime does not
  change it. Its cells of every regime share one run,
  ``<backbone>-<optimizer>-scratch``, and the summary says so.
* **Checked before training.** Every cell's options, every backbone's image
  size and channels and its weights are checked before the first cell trains;
  unavailable ImageNet weights stop the grid with the same error as a single
  run, unless ``on_missing_weights="random"`` (then every such cell trains from
  random initialisation and says so).
* **Resumable.** Run folders are written atomically (staged, then renamed), so
  a folder that exists is complete: a grid run again skips them and trains the
  rest. ``cells`` selects a subset (names or shell patterns). A cell that fails
  is recorded in the summary with its message and the others go on.
  ``OUT/grid.yaml`` holds the options of the grid and ``OUT/grid_split.csv``
  its split: running into the same folder with other training options or on
  other events is refused (``overwrite`` retrains every cell).

Example::

    from transfer.experiments.grid import run_grid
    grid = run_grid(data="images/", backbones=["vgg19", "resnet50"], optimizers=["adam", "rmsprop"],
                    fine_tune=["frozen", "partial", "full"], out="runs/grid", epochs=15)
    grid.table            # the content of grid_summary.csv
    grid.best             # the best cell by validation figure
"""
from __future__ import annotations

import fnmatch
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from transfer.config import FINE_TUNE_MODES, TrainConfig, option_names
from transfer.errors import TransferError
from transfer.files import write_text_atomic
from transfer.models.backbones import BACKBONES, get_backbone
from transfer.optimizers import OPTIMIZERS
from transfer.run_folder import FOLDS_SUMMARY_JSON, METRICS_FILE

log = logging.getLogger(__name__)

#: The grid's axes: name -> (the TrainConfig field each cell sets, its choices).
AXES = {
    "backbones": ("backbone", lambda: sorted(BACKBONES)),
    "optimizers": ("optimizer", lambda: list(OPTIMIZERS)),
    "fine_tune": ("fine_tune", lambda: list(FINE_TUNE_MODES)),
}
#: Keys of a grid's YAML file besides the training options.
GRID_KEYS = (*AXES, "cells")
GRID_FILE = "grid.yaml"
#: The one train/validation/test split of every cell, written when the grid starts; a resume on other events is refused.
SPLIT_FILE = "grid_split.csv"
FEATURE_CACHE = ".feature-cache"
#: The regime name of a run trained from scratch (one stage: the fine-tuning regime does not apply).
SCRATCH = "scratch"
#: Options that do not change a cell's result: a resumed grid may give them other values.
UNCHECKED_OPTIONS = ("verbose", "overwrite", "out", "plot_style", "plot_energy")
#: A folder holding one of these is a complete run (run folders are renamed into place when complete).
COMPLETE_MARKERS = (METRICS_FILE, FOLDS_SUMMARY_JSON)


@dataclass(frozen=True)
class GridCell:
    """One requested combination; ``run`` is the run folder (in the grid's folder) that holds its result."""

    backbone: str
    optimizer: str
    fine_tune: str
    run: str
    from_scratch: bool

    @property
    def name(self) -> str:
        return f"{self.backbone}-{self.optimizer}-{self.fine_tune}"


@dataclass
class GridRun:
    """One training of the grid: its configuration and the cells it answers."""

    name: str
    config: TrainConfig
    cells: list[GridCell]


@dataclass
class GridPlan:
    """Everything decided before the first cell trains."""

    out: Path
    options: dict
    axes: dict[str, tuple[str, ...]]
    cells: list[GridCell]
    runs: list[GridRun]
    selected: list[str]
    weights: dict = field(default_factory=dict)  # backbone -> ResolvedWeights
    split_table: str = ""  # the split every cell trains on (split.csv of each run folder)

    def run_folder(self, run: str) -> Path:
        return self.out / run


@dataclass
class GridResult:
    """What :func:`run_grid` returns; everything is also in ``out_dir``."""

    out_dir: Path
    table: "object"  # pandas.DataFrame: grid_summary.csv
    plan: GridPlan
    trained: list[str]
    skipped: list[str]
    failures: dict[str, str]

    @property
    def best(self) -> dict | None:
        from transfer.experiments.grid_report import best_cell

        return best_cell(self.table)

    @property
    def collapsed(self) -> list[str]:
        done = self.table[self.table["status"] == "done"]
        return sorted(set(done.loc[done["collapsed"].astype(bool), "run"]))

    def summary_lines(self) -> list[str]:
        from transfer.experiments.grid_report import console_summary

        return console_summary(self)


def parse_axis(name: str, value) -> tuple[str, ...]:
    """``"a,b"`` or a list -> distinct names, each one of the axis's choices."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    items = [str(item).strip() for item in items if str(item).strip()]
    choices = AXES[name][1]()
    flag = "--" + name.replace("_", "-")
    if not items:
        raise TransferError(f"{flag}: give one or more of {', '.join(choices)}, separated by commas")
    unknown = [item for item in items if item not in choices]
    if unknown:
        raise TransferError(f"{flag} {','.join(items)}: unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
    if len(set(items)) != len(items):
        raise TransferError(f"{flag} {','.join(items)}: a name is given twice")
    return tuple(items)


def cell_config(options: dict, backbone: str, optimizer: str, fine_tune: str, out: Path) -> TrainConfig:
    """The configuration of one cell: the grid's options with this cell's backbone, optimizer and regime.

    Built from the options as given (not from a resolved configuration), so that
    per-kind defaults (weights, lr, epochs, patience) are those of this cell's backbone.
    """
    return TrainConfig(**{**options, "backbone": backbone, "optimizer": optimizer, "fine_tune": fine_tune,
                          "out": str(out)})


def _check_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(option_names()))
    if unknown:
        raise TransferError(f"grid: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(option_names())}")
    if options.get("train_fraction"):
        raise TransferError("grid: --train-fraction is not for a grid (each cell would be a scan); run the scan "
                            "on the cell you choose: python -m transfer --config OUT/CELL/config.yaml "
                            "--train-fraction ...")
    return options


def _weights_and_checks(configs: dict[str, TrainConfig]) -> tuple[dict, str]:
    """Per backbone, its resolved weights, and the split of every cell; every data, size and channel problem
    raised before any training."""
    from transfer.data import open_data
    from transfer.experiments.pretrain import ensure_toy_cms
    from transfer.training.plan import check_view
    from transfer.weights import resolve_weights

    for config in configs.values():  # --weights toy-cms: each backbone pretrained once, before any cell
        ensure_toy_cms(config)
    first = next(iter(configs.values()))
    resolved = {}
    with open_data(first) as source:
        view = source.view()
        for backbone, config in configs.items():
            spec = get_backbone(backbone)
            image_size = check_view(spec, view, config)
            resolved[backbone] = resolve_weights(spec, config.weights, image_size, config.on_missing_weights)
        return resolved, view.split_table()


def _select(runs: list[GridRun], patterns) -> list[str]:
    """The run names that ``--cells`` (cell or run names, or shell patterns) picks; all without it."""
    if not patterns:
        return [run.name for run in runs]
    items = patterns.split(",") if isinstance(patterns, str) else list(patterns)
    items = [p.strip() for p in items if p.strip()]
    chosen, unmatched = [], []
    for pattern in items:
        hits = [run.name for run in runs
                if fnmatch.fnmatchcase(run.name, pattern) or any(fnmatch.fnmatchcase(c.name, pattern) for c in run.cells)]
        if not hits:
            unmatched.append(pattern)
        chosen += [h for h in hits if h not in chosen]
    if unmatched:
        names = sorted({c.name for run in runs for c in run.cells} | {run.name for run in runs})
        raise TransferError(f"--cells {','.join(items)}: {', '.join(unmatched)} matches no cell of this grid; "
                            f"its cells: {', '.join(names)}")
    return [run.name for run in runs if run.name in chosen]


def plan_grid(options: dict, backbones, optimizers, fine_tune, out, cells=None) -> GridPlan:
    """Check everything and decide the runs (see the module docstring); trains nothing."""
    from transfer.training.plan import trains_from_scratch

    options = _check_options(dict(options))
    out = Path(out)
    axes = {"backbones": parse_axis("backbones", backbones), "optimizers": parse_axis("optimizers", optimizers),
            "fine_tune": parse_axis("fine_tune", fine_tune)}
    # every cell's options checked (TrainConfig raises on a bad value) before anything is opened
    configs = {(b, o, f): cell_config(options, b, o, f, out / f"{b}-{o}-{f}")
               for b in axes["backbones"] for o in axes["optimizers"] for f in axes["fine_tune"]}
    weights, split_table = _weights_and_checks({b: configs[(b, axes["optimizers"][0], axes["fine_tune"][0])]
                                                for b in axes["backbones"]})
    runs: dict[str, GridRun] = {}
    grid_cells = []
    for (b, o, f), config in configs.items():
        scratch = trains_from_scratch(get_backbone(b), weights[b])
        name = f"{b}-{o}-{SCRATCH}" if scratch else f"{b}-{o}-{f}"
        cell = GridCell(b, o, f, name, scratch)
        grid_cells.append(cell)
        if name not in runs:
            config.out = str(out / name)
            runs[name] = GridRun(name, config, [])
        runs[name].cells.append(cell)
    run_list = list(runs.values())
    return GridPlan(out=out, options=options, axes=axes, cells=grid_cells, runs=run_list,
                    selected=_select(run_list, cells), weights=weights, split_table=split_table)


def is_complete(folder: Path) -> bool:
    """A run folder that exists and holds its results (folders are renamed into place only when complete)."""
    return folder.is_dir() and any((folder / marker).is_file() for marker in COMPLETE_MARKERS)


def _grid_record(plan: GridPlan) -> dict:
    """What grid.yaml holds: the axes, the grid's folder and the training options."""
    return {**{k: list(v) for k, v in plan.axes.items()}, "out": str(plan.out), **plan.options}


def _check_resume(plan: GridPlan, overwrite: bool) -> None:
    """Refuse a folder holding a grid with other training options (unless ``overwrite``)."""
    import yaml

    path = plan.out / GRID_FILE
    if plan.out.exists() and not plan.out.is_dir():
        raise TransferError(f"--out {plan.out}: exists and is not a folder")
    if not path.is_file():
        strays = [p.name for p in plan.out.iterdir() if not p.name.startswith(".")] if plan.out.is_dir() else []
        if strays and not overwrite:
            raise TransferError(f"--out {plan.out}: holds files but no {GRID_FILE} ({', '.join(sorted(strays)[:5])}): "
                                "not a grid folder; choose another --out")
        return
    if overwrite:
        return
    split = plan.out / SPLIT_FILE
    if split.is_file() and split.read_text(encoding="utf-8") != plan.split_table:
        raise TransferError(f"--out {plan.out}: its cells were trained on other events or another split than --data "
                            f"gives now ({split} differs): they would not be comparable. Use another --out, or "
                            "--overwrite to retrain every cell")
    try:
        before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TransferError(f"{path}: cannot read the grid's options ({exc})") from None
    cell = plan.cells[0]
    now = _resolved(plan.options, cell)
    try:
        then = _resolved({k: v for k, v in before.items() if k not in AXES and k != "out"}, cell)
    except (TransferError, TypeError) as exc:
        raise TransferError(f"{path}: not the options of a grid ({exc})") from None
    changed = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
    if changed:
        shown = "; ".join(f"{k}: {then.get(k)!r} then, {now.get(k)!r} now" for k in changed)
        raise TransferError(f"--out {plan.out}: holds a grid trained with other options ({shown}); its cells would "
                            "not be comparable. Use another --out, the same options, or --overwrite to retrain "
                            "every cell")


def _resolved(options: dict, cell: GridCell) -> dict:
    """The options as one cell resolves them (so that ``"32"`` and ``32`` compare equal), minus those that
    do not change a result."""
    values = cell_config(options, cell.backbone, cell.optimizer, cell.fine_tune, Path(".")).to_dict()
    return {k: v for k, v in values.items() if k not in UNCHECKED_OPTIONS}


def _write_grid_file(plan: GridPlan) -> None:
    import yaml

    text = ("# hepvision transfer grid: its axes, its folder and the training options of every cell. Resume or\n"
            "# extend it (other axes, the same options) with\n"
            "#   python -m transfer grid --config THIS_FILE\n"
            + yaml.safe_dump(_grid_record(plan), sort_keys=False))
    plan.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(plan.out / GRID_FILE, text)
    write_text_atomic(plan.out / SPLIT_FILE, plan.split_table)


def _yaml_ready(options: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v) for k, v in options.items()}


def _time_left(durations: list[float], remaining: int) -> str:
    if not durations or not remaining:
        return "0 s" if not remaining else "unknown"
    from transfer.experiments.grid_report import duration_text

    return duration_text(sum(durations) / len(durations) * remaining)


def run_grid(data=None, *, backbones=None, optimizers=None, fine_tune=None, out="runs/grid", cells=None,
             progress: bool = True, **options) -> GridResult:
    """Train every cell of the grid that is not already complete, and write the summary.

    ``backbones``, ``optimizers`` and ``fine_tune`` are lists (or comma-separated
    strings); ``options`` are the :class:`~transfer.config.TrainConfig` options of
    every cell (``epochs``, ``image_size``, ``weights``, ``on_missing_weights``,
    ``seed``, ``folds``...; ``verbose`` defaults to 0). ``cells`` trains a subset
    (cell or run names, shell patterns). ``overwrite=True`` retrains every
    selected cell. Returns a :class:`GridResult`. The grid's folder is locked while it runs: a second grid
    on the same ``out`` is refused, naming the first.
    """
    from transfer.training.devices import use_backend

    options = {k: v for k, v in options.items() if v is not None}
    options["backend"] = use_backend(options.get("backend"))  # before anything imports Keras
    if options.get("distribute") == "multiworker":
        raise TransferError("grid: --distribute multiworker trains one run (or --folds, --train-fraction) across "
                            "processes; train a grid's cells one by one, or each with --distribute mirrored")
    if data is not None:
        options["data"] = data
    options.setdefault("verbose", 0)
    overwrite = bool(options.pop("overwrite", False))
    options.pop("out", None)
    for axis, single, given in (("backbones", "backbone", backbones), ("optimizers", "optimizer", optimizers)):
        if single in options and given is not None:
            raise TransferError(f"grid: give --{axis} (one or more) or --{single}, not both")
    backbones = backbones if backbones is not None else options.pop("backbone", TrainConfig.backbone)
    optimizers = optimizers if optimizers is not None else options.pop("optimizer", TrainConfig.optimizer)
    fine_tune = fine_tune if fine_tune is not None else TrainConfig.fine_tune
    from transfer.files import output_lock

    with output_lock(Path(out or "runs/grid"), "transfer grid"):   # one grid per folder, from the start
        plan = plan_grid(_yaml_ready(options), backbones, optimizers, fine_tune, out or "runs/grid", cells)
        _check_resume(plan, overwrite)
        _write_grid_file(plan)
        return _train_cells(plan, overwrite, progress)


def _train_cells(plan: GridPlan, overwrite: bool, progress: bool) -> GridResult:
    """Train the selected cells that are not complete, one line per cell, then the summary."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from imgen.cli_guard import is_disk_full
    from transfer.experiments import run_experiment
    from transfer.experiments.grid_report import figures_text, read_run_figures, write_grid_summary
    from transfer.training.features import sharing_features

    by_name = {run.name: run for run in plan.runs}
    todo, skipped = [], []
    for name in plan.selected:
        if is_complete(plan.run_folder(name)) and not overwrite:
            skipped.append(name)
        else:
            todo.append(by_name[name])
    if skipped:
        log.info("grid %s: %d run(s) already complete, skipped: %s", plan.out, len(skipped), ", ".join(skipped))
    log.info("grid %s: %d cell(s) in %d run(s); training %d now", plan.out, len(plan.cells), len(plan.runs), len(todo))
    for backbone, weights in plan.weights.items():
        if weights.reason:
            log.warning("grid: %s cells train from random initialisation, not transfer learning (%s)", backbone,
                        weights.reason)

    failures: dict[str, str] = {}
    trained: list[str] = []
    durations: list[float] = []
    with sharing_features(plan.out / FEATURE_CACHE), logging_redirect_tqdm(), \
            tqdm(total=len(todo), desc="grid", unit="run", disable=not progress) as bar:
        for number, run in enumerate(todo, start=1):
            config = run.config
            if overwrite:
                config.overwrite = True
            shared = f" (also answers {', '.join(c.name for c in run.cells[1:])})" if len(run.cells) > 1 else ""
            log.info("[%d/%d] %s: started%s", number, len(todo), run.name, shared)
            started = time.perf_counter()
            try:
                run_experiment(config)
            except Exception as exc:  # a failing cell is recorded; the others go on (not on a full disk)
                if is_disk_full(exc):
                    raise
                failures[run.name] = str(exc) if isinstance(exc, TransferError) else f"{type(exc).__name__}: {exc}"
                log.debug("cell %s failed", run.name, exc_info=True)
            durations.append(time.perf_counter() - started)
            remaining = len(todo) - number
            left = _time_left(durations, remaining)
            if run.name in failures:
                log.error("[%d/%d] %s: FAILED after %.0f s: %s", number, len(todo), run.name, durations[-1],
                          failures[run.name])
            else:
                trained.append(run.name)
                log.info("[%d/%d] %s: done in %.0f s: %s", number, len(todo), run.name, durations[-1],
                         figures_text(read_run_figures(plan.run_folder(run.name))))
            if remaining:
                log.info("grid: %d run(s) left, about %s", remaining, left)
            bar.set_postfix_str(f"~{left} left")
            bar.update(1)
            write_grid_summary(plan, failures, plot=False)
    table = write_grid_summary(plan, failures, plot=True)
    if all(is_complete(plan.run_folder(run.name)) for run in plan.runs):
        shutil.rmtree(plan.out / FEATURE_CACHE, ignore_errors=True)  # every cell done: the shared features served
    return GridResult(out_dir=plan.out, table=table, plan=plan, trained=trained, skipped=skipped, failures=failures)
