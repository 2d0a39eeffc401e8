"""Health checks: a run that learned nothing says so, at the epoch it happens and in its report.

The failure this toolkit exists to remove: a network whose predictions are
the same for every event (a validation loss stuck at the chance value, one
predicted class), reported as if it were a result. Three places check it:

* before training, :func:`input_warnings` looks at the inputs as the network
  will see them (constant channels, values far from unit scale where nothing
  rescales them);
* during training, the validation callback (:func:`transfer.training.callbacks.keras_callbacks`) checks
  every epoch's validation predictions and loss, and logs a warning with the likely
  causes for this run the first time it sees a collapse;
* after training, :func:`assess` decides ``collapsed`` from the kept model's
  validation and test scores and collects every warning, including a network
  worse than the matched baseline (:mod:`transfer.evaluation.baseline`), a
  collapse during training that the run left (reported as transient) and
  memorising (:func:`overfitting`: training accuracy far above validation).

The chance value of the loss is the entropy of the validation classes (ln K
for K balanced classes): a network that predicts the class fractions for
every event gets exactly that.
"""
from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

#: Predictions whose spread over events (mean over classes of the std of the score) is below this are constant.
CONSTANT_SPREAD = 1e-3
#: A validation loss within this fraction of the chance value counts as "at chance".
CHANCE_TOLERANCE = 0.02
#: Epochs in a row at chance before the monitor warns.
CHANCE_EPOCHS = 3
#: AUC at or below which a run at the chance loss learned nothing.
CHANCE_AUC = 0.55
#: Validation events below which a loss at the chance value (and an AUC near 0.5) are too noisy to call a
#: collapse: the AUC of 10 events has a spread of about 0.2. Constant or non-finite predictions count always.
MIN_EVENTS_FOR_CHANCE = 30
#: Training minus validation accuracy above which a run is called overfitting, at the kept epoch or at the last.
#: Training accuracy is measured with dropout and augmentation on, so it reads low: a healthy run on the
#: realistic towers (imgen.arrays.synth.write_realistic_towers, 2,000 events) ends within 0.05 of validation,
#: a memorising one at 0.99 against 0.6-0.85.
OVERFIT_GAP = 0.10
#: What helps a network that memorises a small sample, for the overfitting warning.
OVERFIT_REMEDIES = (("augmentation (--augment-on-the-fly: HDF5 files whose dims attribute names a phi axis, or "
                     "imgen's event images)"), "a smaller network (--backbone smallcnn)",
                    "fewer epochs or a lower --patience", "more training events",
                    "for arrays spanning decades, --scale log")


def chance_loss(labels, num_classes: int, weights=None) -> float:
    """Cross-entropy of predicting the class fractions of ``labels`` for every event (with ``weights``,
    ``--event-weight``: the fractions of the summed weights, what the weighted loss is compared with)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), weights=weights, minlength=num_classes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def prediction_spread(scores) -> float:
    """Mean over classes of the standard deviation of the score over events."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(scores.std(axis=0).mean()) if len(scores) > 1 else 0.0


def symptoms(scores, labels, num_classes: int, loss: float | None = None, weights=None) -> list[str]:
    """What is wrong with one split's predictions, in words (empty when nothing is); ``weights``: those of
    ``loss`` (``--event-weight``), for its chance value."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    found = []
    if not np.isfinite(scores).all():
        return ["the network's outputs are not finite (NaN or inf): training diverged"]
    spread = prediction_spread(scores)
    if spread < CONSTANT_SPREAD:
        found.append(f"the predictions are (nearly) the same for every event (spread {spread:.1e})")
    predicted = np.unique(scores.argmax(axis=1))
    if len(predicted) == 1 and len(np.unique(labels)) > 1:
        found.append(f"every event is predicted as class {int(predicted[0])}")
    chance = chance_loss(labels, num_classes, weights)
    if loss is not None and math.isfinite(loss) and loss >= chance * (1 - CHANCE_TOLERANCE):
        found.append(f"the loss {loss:.3f} is at the chance value {chance:.3f} (entropy of the classes)")
    return found


def likely_causes(context: dict) -> list[str]:
    """The likely causes of a collapse for this run's settings (``context`` from the trainer)."""
    causes = []
    if context.get("random_frozen_backbone"):
        causes.append("a frozen backbone with random weights gives features that carry little information")
    if context.get("data_kind") == "arrays" and context.get("scale") == "none":
        causes.append("input scale: raw values span orders of magnitude; try --scale log or --scale standardize")
    if context.get("optimizer") == "sgd" or (context.get("lr") or 0) > 1e-2:
        causes.append(f"learning rate {context.get('lr'):g} with {context.get('optimizer')} is too high; "
                      "try --lr 1e-3 (adam) or run python -m transfer lr-find")
    if context.get("batch_norm"):
        causes.append("BatchNorm statistics: with small batches or few steps the moving statistics differ from "
                      "the batch statistics; try a larger --batch-size or more epochs")
    causes.append("too few events or too few epochs for this network; compare with the baseline")
    return causes


def input_warnings(stats: list[dict] | None) -> list[str]:
    """Warnings about the inputs before training (``stats``: :meth:`DataView.input_statistics`).

    Networks trained from scratch standardise their inputs inside the model
    and pretrained backbones map them onto pixel values, so scale itself is
    never the problem; a channel without any variation is.
    """
    return [f"input channel {s['channel']} is constant in the training events ({s['mean']:.3g}): it carries "
            "no information" for s in stats or [] if s["std"] == 0]


def overfitting(history, best: dict | None = None) -> dict | None:
    """Training against validation accuracy of a run's ``history`` (history.csv's columns ``accuracy``,
    ``val_accuracy``, ``stage``, ``stage_epoch``) at the kept epoch (``best``: metrics.json's ``best``, its
    ``stage`` and stage ``epoch``; the lowest validation loss when absent) and at the last epoch.

    ``{"kept_epoch", "train_accuracy_kept", "val_accuracy_kept", "gap_kept", "train_accuracy_last",
    "val_accuracy_last", "gap_last", "overfitting"}``; ``overfitting`` when the gap at the kept epoch is above
    :data:`OVERFIT_GAP`, or the one at the last epoch is while the training accuracy has not fallen since the
    kept epoch (memorising; a validation accuracy that drops alone, with the training one flat, is something
    else: BatchNorm statistics, a noisy epoch). None without both accuracy columns.
    """
    if history is None or len(history) == 0 or not {"accuracy", "val_accuracy"} <= set(history.columns):
        return None
    rows = history.reset_index(drop=True)
    kept = None
    if best and "stage" in rows.columns and "stage_epoch" in rows.columns:
        match = rows.index[(rows["stage"] == best.get("stage")) & (rows["stage_epoch"] == best.get("epoch"))]
        kept = int(match[0]) if len(match) else None
    if kept is None and "val_loss" in rows.columns and rows["val_loss"].notna().any():
        kept = int(rows["val_loss"].astype(float).idxmin())
    kept = len(rows) - 1 if kept is None else kept
    out = {"kept_epoch": int(rows["epoch"][kept]) if "epoch" in rows.columns else kept + 1}
    for where, i in (("kept", kept), ("last", len(rows) - 1)):
        train, val = float(rows["accuracy"][i]), float(rows["val_accuracy"][i])
        out.update({f"train_accuracy_{where}": train, f"val_accuracy_{where}": val, f"gap_{where}": train - val})
    still_learning = out["train_accuracy_last"] >= out["train_accuracy_kept"]
    out["overfitting"] = bool(out["gap_kept"] > OVERFIT_GAP or (out["gap_last"] > OVERFIT_GAP and still_learning))
    return out


def overfitting_warning(found: dict) -> str:
    """The words of the overfitting warning for :func:`overfitting`'s ``found``."""
    kept = (f"at the kept epoch {found['kept_epoch']}: training accuracy {found['train_accuracy_kept']:.3f} "
            f"against validation {found['val_accuracy_kept']:.3f} (gap {found['gap_kept']:.3f})")
    last = (f"at the last epoch: {found['train_accuracy_last']:.3f} against {found['val_accuracy_last']:.3f} "
            f"(gap {found['gap_last']:.3f})")
    verdict = ("the kept model itself is affected" if found["gap_kept"] > OVERFIT_GAP else
               "the kept model (lowest validation loss) comes before most of it")
    return (f"OVERFITTING: the network memorises its training events ({kept}; {last}; gaps above "
            f"{OVERFIT_GAP:.2f} count); {verdict}. Likely remedies: " + "; ".join(OVERFIT_REMEDIES))


def transient_collapse(monitor_events: list[dict], history) -> dict | None:
    """The first collapse the training monitor saw, when the run left it: ``{"stage", "epoch", "symptoms",
    "left_at"}`` (the first later epoch of that stage without symptoms); None when it never left or nothing
    was seen."""
    if not monitor_events or history is None or not {"stage", "stage_epoch"} <= set(history.columns):
        return None
    seen = {(e["stage"], int(e["epoch"])) for e in monitor_events}
    first = monitor_events[0]
    rows = list(zip(history["stage"], history["stage_epoch"].astype(int)))
    start = rows.index((first["stage"], int(first["epoch"]))) if (first["stage"], int(first["epoch"])) in rows else 0
    left = [r for r in rows[start + 1:] if r not in seen]
    if not left or rows[-1] in seen:
        return None
    return {**first, "left_at": {"stage": left[0][0], "epoch": int(left[0][1])}}


def assess(validation, test, num_classes: int, val_loss: float | None, monitor_events: list[dict],
           network_auc_val: float | None = None, baseline_auc_val: float | None = None,
           network_acc_val: float | None = None, baseline_acc_val: float | None = None,
           extra_warnings: list[str] | None = None, history=None, best: dict | None = None) -> dict:
    """The ``health`` section of metrics.json: ``collapsed``, ``warnings`` and (with ``history``) ``fit``, the
    training and validation accuracy of :func:`overfitting`.

    ``validation`` and ``test`` are :class:`~transfer.evaluation.metrics.SplitScores` of
    the kept model. Collapsed: outputs not finite, or (nearly) constant
    predictions, or a validation loss at the chance value with a validation
    AUC at or below :data:`CHANCE_AUC` on at least :data:`MIN_EVENTS_FOR_CHANCE` validation events.
    """
    warnings = list(extra_warnings or [])
    found = symptoms(validation.scores, validation.y_true, num_classes, val_loss, getattr(validation, "weights", None))
    constant = any("same for every event" in s or "not finite" in s for s in found)
    at_chance = any("chance value" in s for s in found)
    no_skill = network_auc_val is None or network_auc_val <= CHANCE_AUC
    enough = len(validation.y_true) >= MIN_EVENTS_FOR_CHANCE
    collapsed = constant or (at_chance and no_skill and enough)
    if at_chance and no_skill and not enough:
        warnings.append(f"only {len(validation.y_true)} validation events: too few to tell whether the network "
                        f"learned anything (its loss is at the chance value; a collapse is called from "
                        f"{MIN_EVENTS_FOR_CHANCE} events on, or from constant predictions)")
    if collapsed:
        warnings.insert(0, "COLLAPSED: the network learned nothing (" + "; ".join(found)
                        + "); its numbers are not a result")
    elif found:
        warnings.extend(f"validation: {s}" for s in found)
    test_found = symptoms(test.scores, test.y_true, num_classes)
    if not collapsed and test_found:
        warnings.extend(f"test: {s}" for s in test_found)
    transient = None if collapsed else transient_collapse(monitor_events, history)
    for event in monitor_events[:1]:
        if transient is not None:
            left = transient["left_at"]
            warnings.append(f"transient collapse during training ({event['stage']} stage, epoch {event['epoch']}: "
                            + "; ".join(event["symptoms"]) + f"), left at {left['stage']} epoch {left['epoch']}; "
                            "the kept model is not collapsed")
        else:
            warnings.append(f"during training ({event['stage']} stage, epoch {event['epoch']}): "
                            + "; ".join(event["symptoms"]))
    if baseline_auc_val is not None and network_auc_val is not None and network_auc_val < baseline_auc_val:
        warnings.append(f"the network is worse than the baseline on the validation split (ROC AUC "
                        f"{network_auc_val:.3f} against {baseline_auc_val:.3f}"
                        + (f", accuracy {network_acc_val:.3f} against {baseline_acc_val:.3f}"
                           if network_acc_val is not None and baseline_acc_val is not None else "") + ")")
    fit = overfitting(history, best)
    if fit is not None and fit["overfitting"] and not collapsed:
        warnings.append(overfitting_warning(fit))
    out = {"collapsed": bool(collapsed), "warnings": warnings}
    if fit is not None:
        out["fit"] = fit
    if transient is not None:
        out["transient_collapse"] = transient
    return out
