"""Learning-rate range test: ``python -m transfer lr-find``.

Trains the part of the model that ``--lr`` applies to (the head on the frozen
backbone's cached features for pretrained backbones, the whole network for
compact networks trained from scratch), one batch per step, with the learning
rate growing exponentially from ``start_lr`` to ``end_lr``. The loss of every
batch is recorded and smoothed (exponential moving average with bias
correction); the test stops early once the smoothed loss exceeds
``divergence`` times its minimum, or is not finite.

Suggestions (from the smoothed loss):

* ``min_loss_lr / 10``: one decade below the learning rate of the lowest
  loss, the printed ``suggested`` value (the lowest loss is already near the
  edge of stability);
* ``steepest_lr``: where the loss falls fastest against log(learning rate),
  before its minimum (the first tenth of the steps, where the average is still
  settling, left out).

Files, written into ``--out`` (default ``runs/lr-find-<backbone>``):
``lr_find.csv`` (step, lr, loss, smoothed_loss), ``lr_find.png`` (loss
against learning rate, log x, the suggestions marked), ``lr_find.json`` (the
suggestions) and ``config.yaml``. The model is thrown away.

Example::

    from transfer.config import TrainConfig
    from transfer.experiments.lr_find import lr_find
    result = lr_find(TrainConfig(data=["e=e.h5", "g=g.h5"], x_key="X", backbone="cnn", weights="none"))
    result.suggested_lr
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer.config import TrainConfig
from transfer.data import open_data
from transfer.errors import OptionError, TransferError
from transfer.evaluation.plot_style import plot_style
from transfer.files import output_lock, staged_folder
from transfer.models.backbones import get_backbone
from transfer.run_folder import run_facts, write_config, write_json
from transfer.training.plan import output_folder, plan_run, recorded_config

LR_FIND_CSV = "lr_find.csv"
LR_FIND_PNG = "lr_find.png"
LR_FIND_JSON = "lr_find.json"
#: Steps before divergence may stop the test (the smoothed loss needs a few to settle).
MIN_STEPS = 5


@dataclass
class LRFindResult:
    """The range test: its table (``lr_find.csv``) and the suggested learning rates."""

    out_dir: Path
    table: "object"  # pandas.DataFrame
    suggested_lr: float | None
    min_loss_lr: float
    steepest_lr: float
    diverged: bool
    stage: str

    #: why no rate is suggested (the loss still falling at the end of the scan), else None
    no_suggestion: str | None = None

    def summary_lines(self) -> list[str]:
        lines = [f"learning-rate range test ({self.stage} stage, {len(self.table)} steps"
                 + (", stopped at divergence" if self.diverged else "") + f"): {self.out_dir}",
                 f"lowest smoothed loss at lr {self.min_loss_lr:.3g}; steepest descent at lr {self.steepest_lr:.3g}"]
        if self.suggested_lr is None:
            return lines + [f"no learning rate suggested: {self.no_suggestion}"]
        return lines + [f"suggested learning rate (lowest loss / 10): {self.suggested_lr:.3g}  "
                        f"(--lr {self.suggested_lr:.2g})"]


def lr_schedule(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """``steps`` learning rates growing exponentially from ``start_lr`` to ``end_lr``."""
    return start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(1, steps - 1))


def smooth_losses(losses, beta: float = 0.98) -> np.ndarray:
    """Exponential moving average of ``losses`` with bias correction (the first values are not pulled to 0)."""
    out, average = [], 0.0
    for i, loss in enumerate(np.asarray(losses, dtype=np.float64)):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return np.asarray(out)


def suggest_learning_rates(lrs, smoothed) -> dict[str, float]:
    """``min_loss_lr``, ``suggested_lr`` (= min_loss_lr / 10) and ``steepest_lr`` from a smoothed curve.

    No ``suggested_lr`` (None, and ``no_suggestion`` says why) when the lowest loss is in the last steps of the
    scan (the last 5 %): the loss was still falling, and one decade below its end is no rule then."""
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    finite = np.isfinite(smoothed)
    if not finite.any():
        raise TransferError("lr-find: the loss was never finite; lower --start-lr")
    lrs, smoothed = lrs[finite], smoothed[finite]
    lowest = int(np.argmin(smoothed))
    # The first steps only show the moving average settling: leave them out of the slope.
    skip = min(max(MIN_STEPS, len(lrs) // 10), lowest)
    steepest = lowest
    if lowest - skip >= 2:
        slope = np.gradient(smoothed[skip:lowest + 1], np.log(lrs[skip:lowest + 1]))
        steepest = skip + int(np.argmin(slope))
    found = {"suggested_lr": float(lrs[lowest] / 10), "min_loss_lr": float(lrs[lowest]),
             "steepest_lr": float(lrs[steepest]), "no_suggestion": None}
    if lowest >= len(lrs) - max(1, len(lrs) // 20):   # the last steps: the loss may still be falling there
        found["suggested_lr"] = None
        found["no_suggestion"] = (f"the loss was still falling at the end of the scan (lowest at step {lowest + 1} "
                                  f"of {len(lrs)}, lr {lrs[lowest]:.3g}), so where it turns up is not known; "
                                  "scan on to higher rates (--end-lr) or with more --steps")
    return found


def plot_lr_find(table, suggestions: dict, path, title: str = "Learning-rate range test") -> Path:
    """Loss and smoothed loss against the learning rate (log x), suggestions as vertical lines."""
    from transfer.evaluation.plot_style import save_figure
    from transfer.evaluation.plots import new_figure

    figure, axes = new_figure(1, 6.5, 4.5)
    ax = axes[0]
    ax.plot(table["lr"], table["loss"], color="lightgrey", lw=1, label="batch loss")
    ax.plot(table["lr"], table["smoothed_loss"], color="C0", lw=2, label="smoothed loss")
    for key, color, label in (("suggested_lr", "crimson", "suggested (lowest / 10)"),
                              ("steepest_lr", "darkorange", "steepest descent"),
                              ("min_loss_lr", "grey", "lowest loss")):
        if suggestions.get(key) is not None:
            ax.axvline(suggestions[key], color=color, ls="--", label=f"{label}: {suggestions[key]:.2g}")
    if suggestions.get("no_suggestion"):
        ax.text(0.02, 0.02, "no rate suggested: the loss was still falling at the end of the scan",
                transform=ax.transAxes, fontsize=8, color="crimson")
    ax.set_xscale("log")
    finite = table["smoothed_loss"][np.isfinite(table["smoothed_loss"])]
    if len(finite):
        low, high = finite.min(), min(finite.max(), 4 * finite.min() if finite.min() > 0 else finite.max())
        ax.set_ylim(low - 0.05 * abs(low), high + 0.05 * abs(high) + 1e-9)
    ax.set(xlabel="learning rate", ylabel="training loss", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(figure, path, dpi=120)
    return Path(path)


def _cycle(batches, steps: int):
    """``steps`` batches, going round the epochs of ``batches`` (reshuffled each time) as often as needed."""
    step = 0
    while len(batches):
        for batch in batches:
            if step == steps:
                return
            yield batch
            step += 1
        batches.on_epoch_end()


def lr_find(config: TrainConfig, start_lr: float = 1e-7, end_lr: float = 1.0, steps: int = 100,
            divergence: float = 4.0, beta: float = 0.98) -> LRFindResult:
    """Run the range test for ``config`` (see the module docstring); ``config.lr`` is not used."""
    if not 0 < start_lr < end_lr:
        raise OptionError(f"lr-find: need 0 < --start-lr < --end-lr, got {start_lr:g} and {end_lr:g}")
    if steps < MIN_STEPS + 1:
        raise OptionError(f"lr-find: --steps {steps}: need at least {MIN_STEPS + 1}")
    if divergence <= 1:
        raise OptionError(f"lr-find: --divergence {divergence:g}: must be > 1")
    if config.distribute != "none":
        raise OptionError(f"lr-find: --distribute {config.distribute}: the range test runs on one device")
    out = Path(config.out or Path("runs") / f"lr-find-{get_backbone(config.backbone).name}")
    with output_lock(out, "lr-find"):   # one test per folder, from the start
        return _lr_find(config, output_folder(config, out), start_lr, end_lr, steps, divergence, beta)


def _lr_find(config: TrainConfig, out: Path, start_lr: float, end_lr: float, steps: int, divergence: float,
             beta: float) -> LRFindResult:
    import keras
    import pandas as pd

    from transfer.optimizers import make_optimizer
    from transfer.training.features import extract_features, feature_dataset
    from transfer.data.event_weights import loss_weights
    from transfer.training.inputs import resolve_class_weight
    from transfer.training.devices import keras_session, use_backend
    from transfer.training.runner import build_run_model
    from transfer.training.stages import LOSS, start_head_stage

    use_backend(config.backend)
    with open_data(config) as source:
        plan = plan_run(config, source.view(), out)
        view = plan.view
        with keras_session(config):
            keras.utils.set_random_seed(config.seed)
            parts, _ = build_run_model(plan)
            labels = view.labels("train")
            events = view.weights("train")  # --event-weight: the loss weights of training, class weights inside
            class_weight = resolve_class_weight(config.class_weight, labels, len(view.class_names), events)
            weights = None if events is None else loss_weights(events, labels, class_weight)
            class_weight = class_weight if weights is None else None
            if not plan.from_scratch:
                stage = "head"
                features = start_head_stage(parts, lambda: extract_features(
                    lambda batches: parts.features.predict(batches, verbose=0), view.dataset("train", config.batch_size)))
                target = parts.head
                batches = feature_dataset(features, labels, config.batch_size, True, config.seed, sample_weight=weights)
            else:
                stage, target = "from-scratch", parts.model
                batches = view.dataset("train", config.batch_size, shuffle=True, seed=config.seed, sample_weight=weights)
            target.compile(optimizer=make_optimizer(config.optimizer, start_lr), loss=LOSS)
            rates = lr_schedule(start_lr, end_lr, steps)
            rows, average, best, diverged = [], 0.0, math.inf, False
            for step, (x, y, *w) in enumerate(_cycle(batches, steps)):
                target.optimizer.learning_rate = float(rates[step])
                loss = float(target.train_on_batch(x, y, sample_weight=w[0] if w else None, class_weight=class_weight))
                average = beta * average + (1 - beta) * loss
                smoothed = average / (1 - beta ** (step + 1))
                rows.append({"step": step + 1, "lr": float(rates[step]), "loss": loss, "smoothed_loss": smoothed})
                if not math.isfinite(loss) or (step >= MIN_STEPS and smoothed > divergence * best):
                    diverged = True
                    break
                best = min(best, smoothed)
    table = pd.DataFrame(rows)
    suggestions = suggest_learning_rates(table["lr"], table["smoothed_loss"])
    name = plan.spec.name
    with staged_folder(out, config.overwrite) as staging:
        table.to_csv(staging / LR_FIND_CSV, index=False, float_format="%.6g")
        with plot_style(config.plot_style, config.plot_energy):
            plot_lr_find(table, suggestions, staging / LR_FIND_PNG, f"Learning-rate range test: {name} ({stage})")
        write_json(staging, LR_FIND_JSON, {
            **suggestions, "stage": stage, "diverged": diverged, "steps_run": len(table), "start_lr": start_lr,
            "end_lr": end_lr, "steps": steps, "divergence": divergence, "smoothing": beta,
            "backbone": name, "optimizer": config.optimizer, "weights_used": plan.weights.used})
        write_config(staging, recorded_config(config, out), run_facts(plan.weights))
    return LRFindResult(out_dir=out, table=table, stage=stage, diverged=diverged, **suggestions)
