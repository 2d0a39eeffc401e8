"""Pretraining on simulated events: ``python -m transfer pretrain`` and ``--weights toy-cms``.

ImageNet weights come from photographs and cannot be downloaded on an offline
cluster; the field's answer is to pretrain on plentiful simulation and
fine-tune on the scarce real sample. :func:`pretrain` trains a backbone from
scratch on events of the bundled generator (:mod:`imgen.synth`), rendered in
memory in imgen's default style (:mod:`transfer.data.generated`), or on the
user's own ``data`` (any dataset ``transfer`` reads), and writes

* a normal run folder (model.keras, metrics.json, report.md, ...),
* ``backbone.weights.h5``: the backbone's weights, in the file format
  ``--weights`` takes (a Keras ``.weights.h5`` file), and
* ``pretrained.json``: what it was pretrained on (generator, its version and
  seed, events, task, rendering style, image size, channels) and the command.

Another run then starts from it with ``--weights RUN_FOLDER``
(:mod:`transfer.weights.run`): two-stage fine-tuning, BatchNorm in inference
mode, exactly as from ImageNet weights, and its report says what the backbone
was pretrained on.

``--weights toy-cms`` is the ready-made case: a backbone of the requested
network and image size pretrained with this module's defaults, built once into
the Keras cache (``$KERAS_HOME/models/hepvision-toy-cms/``) on first use and
reused afterwards. On an offline cluster nothing is downloaded: it is built
there (a few minutes on a CPU), or built on one machine and that folder copied
into ``$KERAS_HOME/models`` of the others. The environment variables
``HEPVISION_TOY_CMS_EVENTS`` and ``HEPVISION_TOY_CMS_EPOCHS`` change the
events per process and epochs it is built with (they are part of the cache
folder's name, so a small test build never stands in for the default one).

Example::

    from transfer.experiments.pretrain import pretrain
    result = pretrain("mobilenetv2", image_size=64, out="runs/pretrain-mnv2")
    # then: python -m transfer --data images/ --backbone mobilenetv2 --weights runs/pretrain-mnv2
"""
from __future__ import annotations

import json
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from transfer.errors import TransferError
from transfer.run_folder import BACKBONE_WEIGHTS, MODEL_FILE, PRETRAINED_RECORD
from transfer.weights.run import (describe_record, extract_backbone, read_run_record, resolve_run_weights,
                                  save_backbone_weights)
from transfer.weights.toy_cms import (DEFAULT_EPOCHS, DEFAULT_EVENTS, DEFAULT_IMAGE_SIZE, DEFAULT_SEED,
                                      DEFAULT_TOY_CMS_WAIT, TOY_CMS, TOY_CMS_EPOCHS_ENV, TOY_CMS_EVENTS_ENV,
                                      TOY_CMS_WAIT_ENV, _env_int, toy_cms_built, toy_cms_folder, toy_cms_size)

log = logging.getLogger(__name__)

DEFAULT_TASK = "process"
#: ``config.yaml``'s ``data`` of a run on generated events (no folder: the events were made in memory).
GENERATED_DATA = "generated in memory by imgen.synth (see pretrained.json)"


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns: the run, the backbone weights file and the record."""

    run: object  # transfer.training.runner.RunResult
    weights_file: Path
    record: dict

    @property
    def out_dir(self) -> Path:
        return self.run.out_dir

    def summary_lines(self) -> list[str]:
        return self.run.summary_lines() + [
            f"backbone weights: {self.weights_file}",
            f"pretrained on: {describe_record(self.record)}",
            f"use them with: --backbone {self.record['backbone']} --weights {self.out_dir}"]


def pretrain(backbone: str, image_size: int | tuple = DEFAULT_IMAGE_SIZE, out=None, events: int = DEFAULT_EVENTS,
             task: str = DEFAULT_TASK, data=None, seed: int = DEFAULT_SEED, epochs: int = DEFAULT_EPOCHS,
             overwrite: bool = False, verbose: int = 2, progress: bool = True, command: str | None = None,
             **options) -> PretrainResult:
    """Train ``backbone`` from scratch on generated events (or ``data``) and write its weights for ``--weights``.

    ``events`` per generator process, rendered at ``image_size`` px in imgen's
    default (physics) style, labelled by ``task`` (:data:`transfer.data.generated.TASKS`).
    With ``data`` (an image folder or HDF5 files, as ``--data`` takes them;
    ``options`` such as ``x_key``, ``y_key``, ``classes``, ``scale`` go with
    it) the backbone is trained on those instead, at ``image_size``. Other
    ``options`` are :class:`~transfer.config.TrainConfig` fields (``batch_size``,
    ``lr``, ``patience``...).

    Raises:
        TransferError: bad options or data, an existing ``out`` without ``overwrite``.
    """
    from transfer.config import TrainConfig, parse_image_size
    from transfer.files import check_output_folder, output_lock
    from transfer.models.backbones import get_backbone

    spec = get_backbone(backbone)
    if data is not None and task != DEFAULT_TASK:
        raise TransferError(f"--task {task}: labels generated events; with --data the classes come from the data")
    size = parse_image_size(image_size) or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    out = Path(out or Path("runs") / f"pretrain-{spec.name}-{size[0]}")
    with output_lock(out, "pretraining"):
        check_output_folder(out, overwrite)
        config = TrainConfig(data=data if data is not None else GENERATED_DATA, out=str(out), backbone=spec.name,
                             weights="none", image_size=size, seed=seed, epochs=epochs, overwrite=overwrite,
                             verbose=verbose, **options)
        command = command or _command(backbone, size, out, events, task, data, seed, epochs, options)
        return _pretrain_into(out, config, spec, size, events, task, progress, seed, epochs, command)


def _pretrain_into(out: Path, config, spec, size: tuple, events: int, task: str, progress: bool, seed: int,
                   epochs: int, command: str) -> PretrainResult:
    """Train and write the whole folder (run, backbone weights, pretrained.json) staged, so that it appears
    complete or not at all: ``--weights toy-cms`` and ``--weights RUN`` never find half of one."""
    from transfer.files import staged_folder, write_text_atomic

    started = time.perf_counter()
    with staged_folder(out, config.overwrite, "pretraining") as staging:
        staging.rmdir()  # run_plan writes into a folder it creates itself (into=...)
        if config.data == GENERATED_DATA:
            result, data_record = _pretrain_generated(config, spec, size, events, task, progress, staging)
        else:
            result, data_record = _train_on_data(config, staging), None
        record = _record(staging, out, result, data_record, seed, epochs, command)
        record["seconds"] = time.perf_counter() - started
        save_backbone_weights(extract_backbone(staging / MODEL_FILE), staging / BACKBONE_WEIGHTS)
        write_text_atomic(staging / PRETRAINED_RECORD, json.dumps(record, indent=2) + "\n")
    weights = out / BACKBONE_WEIGHTS
    log.info("backbone weights written to %s (pretrained on %s)", weights, describe_record(record))
    return PretrainResult(run=result, weights_file=weights, record=record)


def _train_on_data(config, into: Path):
    from transfer.data import open_data
    from transfer.training.plan import plan_run
    from transfer.training.runner import run_plan

    with open_data(config) as source:
        return run_plan(plan_run(config, source.view(), Path(config.out)), into=into)


def _pretrain_generated(config, spec, size: tuple, events: int, task: str, progress: bool, into: Path):
    from transfer.data.generated import GeneratedSource, generate_sample
    from transfer.training.plan import plan_run
    from transfer.training.runner import run_plan
    from transfer.weights import resolve_weights

    if size[0] != size[1]:
        raise TransferError(f"--image-size {size[0]}x{size[1]}: generated events are rendered square; "
                            "give one size N")
    sample = generate_sample(events, config.seed, size[0], task, progress=progress)
    view = GeneratedSource(sample, config.split, config.seed).view()
    result = run_plan(plan_run(config, view, Path(config.out), weights=resolve_weights(spec, "none")), into=into)
    return result, sample.record


def _record(folder: Path, out: Path, result, data_record: dict | None, seed: int, epochs: int, command: str) -> dict:
    """pretrained.json: the run's own facts (backbone, shapes, style) plus the generator's record (``folder``:
    where the run is written, ``out``: where it will be)."""
    from imgen._version import __version__

    base = read_run_record(folder, shown=out)  # from config.yaml and classes.json, as for any run
    metrics = result.metrics
    if data_record is not None:
        base["style"] = data_record["render"]["style"]
        base["data"] = data_record
        base.pop("description", None)
    return {**base, "weights_file": BACKBONE_WEIGHTS, "trained": "from scratch", "seed": seed, "epochs": epochs,
            "test_accuracy": metrics["test"]["accuracy"], "collapsed": bool(metrics["health"]["collapsed"]),
            "command": command, "hepvision_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _command(backbone, size, out, events, task, data, seed, epochs, options) -> str:
    parts = ["python", "-m", "transfer", "pretrain", "--backbone", backbone, "--image-size", "x".join(map(str, size)),
             "--out", str(out), "--seed", str(seed), "--epochs", str(epochs)]
    if data is None:
        parts += ["--events", str(events), "--task", task]
    else:
        parts += ["--data", *([data] if isinstance(data, str) else list(data))]
    for name, value in options.items():
        if value not in (None, False):
            parts += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return shlex.join(parts)


# --------------------------------------------------------------------------
# --weights toy-cms
# --------------------------------------------------------------------------

def toy_cms_weights(spec, image_size: tuple | None):
    """``--weights toy-cms``: the cached toy-cms backbone of ``spec`` at ``image_size``, pretrained on first use.

    Several processes may share one Keras cache (nodes of a cluster, a grid's runs): the one that finds the
    backbone missing takes the lock of its folder and builds it; the others wait for it (at most
    ``$HEPVISION_TOY_CMS_WAIT`` seconds) and then use what it built.
    """
    from transfer.files import output_lock

    size = toy_cms_size(image_size)
    events, epochs = _env_int(TOY_CMS_EVENTS_ENV, DEFAULT_EVENTS), _env_int(TOY_CMS_EPOCHS_ENV, DEFAULT_EPOCHS)
    wait = _env_int(TOY_CMS_WAIT_ENV, DEFAULT_TOY_CMS_WAIT, minimum=0)
    folder = toy_cms_folder(spec.name, size, events, epochs)
    if not toy_cms_built(folder):
        def busy(holder: str) -> TransferError:
            return TransferError(
                f"--weights {TOY_CMS}: {holder} has been pretraining the {spec.name} backbone at {size} px in "
                f"{folder} for more than {wait} s, the longest this run waits (${TOY_CMS_WAIT_ENV}); run the "
                "same command again once it has finished, or raise the wait")

        def waiting(holder: str) -> None:
            log.info("--weights %s: %s is pretraining the %s backbone at %d px in %s; waiting for it (at most "
                     "%d s) to use it", TOY_CMS, holder, spec.name, size, folder, wait)

        with output_lock(folder, "toy-cms pretraining", wait=wait, busy=busy, waiting=waiting):
            if not toy_cms_built(folder):     # not built by the process this one waited for
                log.info("--weights %s: no %s backbone pretrained at %d px in the Keras cache yet: pretraining it "
                         "now (%d events per process, %d epochs, once; a few minutes on a CPU) into %s", TOY_CMS,
                         spec.name, size, events, epochs, folder)
                pretrain(spec.name, (size, size), out=folder, events=events, epochs=epochs, overwrite=True,
                         verbose=1)
    log.info("--weights %s: using the cached %s backbone in %s", TOY_CMS, spec.name, folder)
    return resolve_run_weights(spec, str(folder), used=TOY_CMS)


def ensure_toy_cms(config) -> None:
    """Build the toy-cms backbone a run asks for (``config.weights == "toy-cms"``) before it is planned."""
    if getattr(config, "weights", None) == TOY_CMS:
        from transfer.config import parse_image_size
        from transfer.models.backbones import get_backbone

        toy_cms_weights(get_backbone(config.backbone), parse_image_size(config.image_size))


# --------------------------------------------------------------------------
# The command line (python -m transfer pretrain)
# --------------------------------------------------------------------------


