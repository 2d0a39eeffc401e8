"""``python -m transfer`` (and ``python -m transfer train``): train one configuration, ``--folds`` or ``--train-fraction``.

The parser is generated from :class:`transfer.config.TrainConfig`'s fields (one flag per field); the work is
:func:`transfer.experiments.run_experiment`.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from imgen._version import __version__
from transfer.cli import PROG
from transfer.config import OPTION_GROUPS, TrainConfig, cli_options, load_config, read_config_file
from transfer.models.backbones import BACKBONES, format_backbone_table

#: Exit status of a training run whose network collapsed (learned nothing): results were written, but are not one.
EXIT_COLLAPSED = 3
COMPACT = ", ".join(sorted(name for name, spec in BACKBONES.items() if not spec.pretrained))
EXAMPLES = f"""\
subcommands:
  {PROG} predict --model RUN/model.keras IMAGES_OR_FOLDERS|HDF5_FILES [--x-key X] [--out scores.csv]
  {PROG} export --model RUN/model.keras --format onnx,savedmodel,tflite,hls4ml --out DIR   (deploy)
  {PROG} lr-find --data ... --backbone NAME [training options] [--steps 100]   (learning-rate range test)
  {PROG} ensemble RUN RUN [RUN ...] --out DIR   (average the test scores of runs with the same test set)
  {PROG} fetch-weights --backbone NAME [NAME ...]   (download ImageNet weights ahead of time)
  {PROG} grid --data ... --backbones A,B --optimizers adam,rmsprop --fine-tune frozen,partial,full --out DIR
      (every combination, same split, resumable, with a heat-map summary)
  {PROG} pretrain --backbone NAME --image-size N --out DIR   (pretrain on simulated events; then --weights DIR)
  {PROG} explain RUN [--methods saliency,integrated_gradients] [--events 4]   (what the network looks at)
  run "{PROG} SUBCOMMAND --help" for their options.

examples:
  {PROG} --data images/ --backbone vgg19 --optimizer rmsprop --out runs/vgg19-rmsprop
  {PROG} --config runs/vgg19-rmsprop/config.yaml --out runs/vgg19-rmsprop-again
  {PROG} --data images/ --backbone mobilenetv2 --weights none --fine-tune full
  {PROG} --data electron=e.h5 photon=g.h5 --x-key X --backbone cnn --weights none --scale log
  {PROG} --data all.h5 --x-key X --y-key y --classes electron,photon --backbone resnet15 --weights none
  {PROG} --data eplus=e.h5 gamma=g.h5 piplus=p.h5 --x-key layer_0,layer_1,layer_2 --backbone smallcnn \\
      --weights none --scale standardize --folds 5 --out runs/calo-cv
  {PROG} --data electron=e.h5 photon=g.h5 --x-key X --backbone vgg16 --image-size 64 --channels energy

input scaling (the same rule for every run, applied inside the saved model):
  uint8 images: pretrained backbones get their own keras.applications preprocess_input; compact
    networks trained from scratch ({COMPACT}) get each channel standardised with the training
    split's mean and std (inside the model).
  HDF5 arrays (float32, never converted to PNG): --channels, --min-value, --crop and --scale are
    applied first (fitted on the training split only, saved as arrays.json); compact networks then
    standardise each channel with the training split's mean and std inside the model, so raw MeV,
    sign-log and standardised inputs all train; pretrained backbones get each channel mapped
    linearly from the training split's minimum..maximum onto 0..255, then their own
    preprocess_input. For their 3 input channels, 1 channel is repeated, 2 become
    (c0, c1, (c0 + c1) / 2), more are refused.
  A pretrained backbone with --weights none is trained whole from the start in one stage (a
    frozen random backbone would be meaningless); the report says so.

results you can trust: every run also fits gradient-boosted trees (--baseline trees) on the same
train/validation/test events and reports them beside the network, with 68 % bootstrap intervals on
the test figures; a network that collapses (constant predictions, loss at the chance value ln K) is
reported as COLLAPSED on the console, at the top of report.md and in metrics.json's health section,
and the command exits with status 3.

Every run folder holds model.keras, classes.json, config.yaml, metrics.json (with background
rejection at 50/80/90 % signal efficiency), predictions.csv, history.csv, split.csv,
confusion_matrix.csv/.png, roc.png, discriminant.png, training_curves.png and report.md (and
arrays.json for HDF5 data). --folds K writes OUT/fold-1 ... OUT/fold-K and OUT/folds_summary.json/.md;
--train-fraction writes OUT/fraction-F/ per fraction and OUT/train_fraction_scan.csv/.png.
"""


TRAIN_DESCRIPTION = (
    "Fine-tune a pretrained CNN backbone on eta-phi event images or HDF5 calorimeter arrays, in two stages "
    "(head on a frozen backbone, then fine-tuning at a lower learning rate), or train a compact network "
    f"from scratch ({COMPACT}), and write a run folder with the model, metrics, plots and a report.")


def build_train_parser(prog: str = PROG, description: str = TRAIN_DESCRIPTION,
                       epilog: str | None = EXAMPLES) -> argparse.ArgumentParser:
    """The training options (the default action): one flag per TrainConfig field, generated from the
    fields' declarations (:func:`transfer.config.cli_options`), so a new option is one field."""
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        argument_default=argparse.SUPPRESS, description=description)
    parser.add_argument("--version", action="version", version=f"hepvision {__version__}")
    parser.add_argument("--list-backbones", action="store_true",
                        help="print the backbones with their input size limits and ImageNet weights "
                             "files (compact networks marked from scratch), then exit")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="read options from this YAML file (e.g. a run's config.yaml); flags given "
                             "on the command line override it")

    groups = {key: parser.add_argument_group(title) for key, title in OPTION_GROUPS.items()}
    order = list(OPTION_GROUPS)
    for option in sorted(cli_options(), key=lambda option: order.index(option.group)):  # usage line by group
        groups[option.group].add_argument(option.flag, **option.arguments)
    return parser


#: Where ``python -m imgen`` writes by default: ``--data`` when it is not given and this holds imgen's output.
DEFAULT_DATA = "images"


def config_from_args(args: dict) -> TrainConfig:
    """The run's configuration from parsed flags and ``--config FILE``; ``--data`` defaults to ./images when it
    holds imgen's output."""
    path = args.pop("config")
    if "data" not in args and not (path and read_config_file(path).get("data")):
        found = default_data()
        if found:
            print(f"--data not given: using {found}/ ({found}/manifest.csv, written by python -m imgen)",
                  flush=True)
            args["data"] = found
    return load_config(path, **args)


def default_data(folder: str = DEFAULT_DATA) -> str | None:
    """``folder`` when it holds a manifest.csv (imgen's output), so the README's two commands run in sequence."""
    from imgen.output.manifest import manifest_path

    return folder if manifest_path(folder).is_file() else None


def run(argv: list[str]) -> int:
    args = vars(build_train_parser().parse_args(argv))
    if args.pop("list_backbones", False):
        from transfer.weights.cache import weights_cache_dir

        print(format_backbone_table(str(weights_cache_dir())))
        return 0
    config = config_from_args(args)
    if config.distribute == "multiworker" and not os.environ.get(WORKER_ENV) and config.backend == "jax":
        return supervise(argv)
    from transfer.experiments import run_experiment

    result = run_experiment(config)
    from transfer.training.devices import writes_results

    if not writes_results(config):  # a process of a multi-process job other than process 0
        print(f"trained as one process of the job; process 0 writes {result.out_dir}")
        return 0
    print("\n".join(result.summary_lines()))
    runs = getattr(result, "runs", None) or [result]
    collapsed = sum(bool(r.metrics.get("health", {}).get("collapsed")) for r in runs)
    if collapsed:
        print(f"error: {collapsed} of {len(runs)} trained network(s) COLLAPSED (learned nothing): see the "
              f"health section of report.md; exit status {EXIT_COLLAPSED}", file=sys.stderr)
        return EXIT_COLLAPSED
    return 0


#: Set in the process that :func:`supervise` starts, which trains.
WORKER_ENV = "HEPVISION_JOB_PROCESS"
#: How JAX's distributed runtime ends a process whose peers died or never came: abort (SIGABRT).
ABORTED = (-signal.SIGABRT, 128 + signal.SIGABRT)


def _die_with_parent() -> None:
    """In the child (Linux): end when this process ends, even by SIGKILL, instead of training on alone."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def supervise(argv: list[str]) -> int:
    """Run this command as a child process and say in one line how a multi-process job ended.

    JAX stops a process of a job whose peers died, or did not join in time, by aborting it (SIGABRT and a dump
    of C++ frames), which no Python code of that process can turn into a message; this process survives it and
    writes the line. Ctrl-C and SIGTERM are passed on to the child.
    """
    from imgen.cli_guard import Terminated
    from transfer.training.devices import CLUSTER_TIMEOUT_S, HEARTBEAT_TIMEOUT_S

    child = subprocess.Popen([sys.executable, "-m", "transfer", *argv], env={**os.environ, WORKER_ENV: "1"},
                             preexec_fn=_die_with_parent)
    try:
        status = child.wait()
    except (KeyboardInterrupt, Terminated) as stop:
        child.send_signal(signal.SIGINT if isinstance(stop, KeyboardInterrupt) else signal.SIGTERM)
        child.wait()
        raise
    if status in ABORTED:
        who = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID") or os.environ.get("SLURM_PROCID") or "?"
        print(f"error: --distribute multiworker: process {who} was stopped by JAX's distributed runtime: another "
              f"process of the job died (no heartbeat for {HEARTBEAT_TIMEOUT_S} s) or did not join within "
              f"{CLUSTER_TIMEOUT_S} s; nothing was written. Start every process with the same command and "
              "KERAS_DISTRIBUTION_* variables, then run it again", file=sys.stderr)
        return 2
    return status if status >= 0 else 128 - status
