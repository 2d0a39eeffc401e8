"""Training epoch time under TensorFlow and JAX on this machine, and whether the input pipeline is the bottleneck.

    python benchmarks/throughput.py                       # the default run (about 10 minutes on 2 cores)
    python benchmarks/throughput.py --per-class 100 --events 1000 --epochs 2   # a quick look

One run, one table. The data are made first, once, by the project itself:

* toy CMS events (``imgen.synth``) rendered by ``imgen`` into PNG folders at 64 px and at 32 px (the same
  events, ``--per-class`` of each of the 3 classes, split by the manifest);
* an HDF5 file of 32x32x2 float32 electron/photon arrays (``imgen.arrays.synth``, ``--events`` events).

Cases: smallcnn on the 64 px PNGs, smallcnn on the HDF5 arrays (streamed in chunks), VGG16 from random weights on
the 32 px PNGs. Each backend runs every case in its own subprocess (Keras fixes its backend when first imported),
through the project's own path: ``TrainConfig`` (``--weights none``, the default ``--batch-size`` 32) ->
``open_data`` -> ``plan_run`` -> ``build_run_model`` (input statistics included), compiled as a from-scratch stage
compiles (``adam`` on the cosine schedule, ``jit_compile`` of ``--xla auto``), trained by ``model.fit`` on the
batches of ``DataView.dataset`` (:mod:`transfer.data.batches`, one pipeline for every backend). Per case:

1. **pipeline alone**: one epoch of the training batches read without a model (the second epoch: PNGs are
   decoded once, in the first, then served from memory; the first epoch's rate is in the JSON);
2. **training step alone**: ``fit`` on the same inputs already in memory (no decoding, no HDF5 reads), after a
   ``fit`` of two batches that compiles (timed too);
3. **full epoch**: ``fit`` on the real batches, pipeline and step together, already compiled.

Each fit runs ``--epochs`` epochs (``--vgg-epochs`` for VGG16, much slower on a CPU) and the median is reported.

Validation scoring and the other callbacks of a real run are left out, so an epoch here is the training pass
alone. If the full epoch takes about as long as the step alone, the pipeline is hidden behind the computation
(it prefetches in a background thread); if it takes about as long as the pipeline alone, the pipeline is the
bottleneck. Times depend on the machine and its load: compare ratios measured in the same run only.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT_TAG = "THROUGHPUT_RESULT "
BACKENDS = ("tensorflow", "jax")


def cases(work: Path, epochs: int, vgg_epochs: int) -> list[dict]:
    """The three cases, as ``TrainConfig`` options, and the epochs each is timed over."""
    return [
        {"id": "smallcnn-png64", "what": "smallcnn, 64 px PNGs", "epochs": epochs,
         "config": {"data": str(work / "png64"), "backbone": "smallcnn"}},
        {"id": "smallcnn-hdf5", "what": "smallcnn, 32x32x2 HDF5 arrays", "epochs": epochs,
         "config": {"data": [str(work / "egamma.h5")], "x_key": ["X"], "y_key": "y",
                    "classes": ["electron", "photon"], "backbone": "smallcnn"}},
        {"id": "vgg16-png32", "what": "VGG16 (random weights), 32 px PNGs", "epochs": vgg_epochs,
         "config": {"data": str(work / "png32"), "backbone": "vgg16"}},
    ]


# --------------------------------------------------------------------------
# The parent: the data once, then one subprocess per backend, then one table
# --------------------------------------------------------------------------

def make_data(work: Path, per_class: int, vgg_per_class: int, events: int, seed: int) -> dict:
    from imgen.arrays.synth import write_electron_photon_combined
    from imgen.pipeline import render_files
    from imgen.synth import generate

    started = time.perf_counter()
    for folder, size, count in (("png64", 64, per_class), ("png32", 32, vgg_per_class)):
        files = generate(work / f"events-{count}", events=count, seed=seed)
        render_files([str(p) for p in files.values()], work / folder, style="physics", size=size, seed=seed,
                     overwrite=True)
    write_electron_photon_combined(work / "egamma.h5", events // 2, seed=seed)
    return {"per_class": per_class, "vgg_per_class": vgg_per_class, "hdf5_events": events,
            "seconds": time.perf_counter() - started}


def run_backend(backend: str, work: Path, args, timeout_s: float) -> dict:
    """Every case on ``backend``, in a subprocess killed (with its children) after ``timeout_s``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--work", str(work),
               "--epochs", str(args.epochs), "--vgg-epochs", str(args.vgg_epochs),
               "--batch-size", str(args.batch_size)]
    if args.cases:
        command += ["--cases", args.cases]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    print(f"--- {backend}: {' '.join(command[1:])}", flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True, cwd=ROOT)
    watchdog = threading.Timer(timeout_s, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    result, tail = None, []
    for line in process.stdout:
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
        elif line.startswith("  "):  # the worker's one line per case
            print(line.rstrip(), flush=True)
        tail = (tail + [line])[-40:]
    process.wait()
    watchdog.cancel()
    if result is not None:
        return result
    why = f"timed out after {timeout_s:.0f} s" if process.returncode == -signal.SIGKILL else \
        f"exit status {process.returncode}"
    print("".join(tail), flush=True)
    return {"error": why}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=400,
                        help="toy events per class for the 64 px PNGs, 3 classes (default: 400)")
    parser.add_argument("--vgg-per-class", type=int, default=60,
                        help="toy events per class for VGG16's 32 px PNGs (default: 60)")
    parser.add_argument("--events", type=int, default=6000, help="events of the HDF5 file (default: 6000)")
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs timed of each fit of the smallcnn cases, the median reported (default: 2)")
    parser.add_argument("--vgg-epochs", type=int, default=1, help="the same for VGG16 (default: 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32, the project's)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="default: tensorflow,jax")
    parser.add_argument("--cases", help="comma-separated case ids (default: all: smallcnn-png64, smallcnn-hdf5, "
                                        "vgg16-png32)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per backend before it is stopped")
    parser.add_argument("--work", help="folder for the data (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = make_data(work, args.per_class, args.vgg_per_class, args.events, args.seed)
        print(f"data: 3 x {args.per_class} toy events rendered at 64 px, 3 x {args.vgg_per_class} at 32 px, "
              f"{args.events} HDF5 events ({data['seconds']:.0f} s)", flush=True)
        results = {b: run_backend(b, work, args, args.timeout) for b in args.backends.split(",")}
    report = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "load_before": load,
                          "load_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
              "data": data, "epochs": args.epochs, "vgg_epochs": args.vgg_epochs, "batch_size": args.batch_size,
              "backends": results,
              "seconds": time.perf_counter() - started}
    print()
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all("error" not in r for r in results.values()) else 1


def table(report: dict) -> str:
    machine = report["machine"]
    lines = [f"One run on {machine['cpus']} CPU cores ({machine['processor']}), python {machine['python']}; load "
             f"average {machine['load_before']:.1f} before and {machine['load_after']:.1f} after; batch "
             f"{report['batch_size']}; {report['seconds']:.0f} s in all.", ""]
    versions = [f"{b}: " + ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())
                for b, r in report["backends"].items()]
    lines += ["Versions: " + "; ".join(versions) + ".", ""]
    lines += ["| case | backend | training events | pipeline alone: s/epoch (batches/s) | training step alone: "
              "s/epoch | full epoch: s | full: images/s | pipeline alone / full epoch | full / step alone | XLA |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    by_case: dict[str, dict] = {}
    for backend, result in report["backends"].items():
        if "error" in result:
            lines.append(f"| all | {backend} | | | | | | | | {result['error']} |")
            continue
        for row in result["rows"]:
            by_case.setdefault(row["id"], {})[backend] = row
    for case_id, rows in by_case.items():
        for backend, row in rows.items():
            lines.append(
                f"| {row['what']} | {backend} | {row['events']} | {row['pipeline_s']:.2f} ({row['pipeline_batches_per_s']:,.0f}) | "
                f"{row['step_s']:.2f} | {row['full_s']:.2f} | {row['events'] / row['full_s']:,.0f} | "
                f"{row['pipeline_s'] / row['full_s']:.2f} | {row['full_s'] / row['step_s']:.2f} | "
                f"{'on' if row['xla'] else 'off'} |")
    lines.append("")
    for case_id, rows in by_case.items():
        if "tensorflow" in rows and "jax" in rows:
            tf, jx = rows["tensorflow"], rows["jax"]
            lines.append(f"- {tf['what']}: full epoch TensorFlow / JAX = {tf['full_s'] / jx['full_s']:.2f}; "
                         f"compiling (a fit of two batches) {tf['compile_s']:.1f} s (TF) and "
                         f"{jx['compile_s']:.1f} s (JAX)"
                         + (f"; PNG decoding in the first epoch {tf['pipeline_first_s']:.2f} s (TF) and "
                            f"{jx['pipeline_first_s']:.2f} s (JAX)" if "png" in case_id else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The worker: every case on one backend
# --------------------------------------------------------------------------

def _epoch(batches) -> float:
    started = time.perf_counter()
    for index in range(len(batches)):
        batches[index]
    seconds = time.perf_counter() - started
    batches.on_epoch_end()
    return seconds


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def worker(args) -> int:
    os.environ["KERAS_BACKEND"] = args.worker
    import keras
    import numpy as np

    from transfer.config import TrainConfig
    from transfer.data import open_data
    from transfer.data.batches import Batches, InMemoryRows
    from transfer.models.compact import BN_MOMENTUM
    from transfer.models.freezing import is_batch_norm
    from transfer.optimizers import LR_SCHEDULES, make_optimizer, resolve_lr_schedule
    from transfer.training.devices import jit_compile, keras_session, open_distribution, start_backend
    from transfer.training.plan import plan_run
    from transfer.training.runner import build_run_model
    from transfer.training.stages import LOSS

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    work = Path(args.work)
    wanted = set(args.cases.split(",")) if args.cases else None
    rows = []
    for case in cases(work, args.epochs, args.vgg_epochs):
        if wanted and case["id"] not in wanted:
            continue
        epochs = case["epochs"]
        config = TrainConfig(**case["config"], weights="none", epochs=epochs, batch_size=args.batch_size,
                             seed=0, verbose=0, backend=args.worker, out=str(work / "runs" / case["id"]))
        start_backend(config)
        with open_data(config) as source:
            view = source.view()
            plan = plan_run(config, view, Path(config.out))
            # 1. the pipeline alone, before anything else reads the split (the first epoch decodes the PNGs into
            # memory; the second is the steady state)
            train = view.dataset("train", config.batch_size, shuffle=True, seed=config.seed)
            steps, labels = len(train), view.labels("train")
            pipeline_first = _epoch(train)
            pipeline = _epoch(train)
            with keras_session(config), open_distribution(config) as distribution:
                parts, _ = build_run_model(plan, distribution)
                model = parts.model
                parts.backbone.trainable = True
                for layer in parts.backbone.layers:  # as Stages.train_from_scratch
                    layer.trainable = True
                    if is_batch_norm(layer) and layer.momentum > BN_MOMENTUM:
                        layer.momentum = BN_MOMENTUM
                schedule = LR_SCHEDULES[resolve_lr_schedule(config.lr_schedule, True)]
                model.compile(optimizer=make_optimizer(config.optimizer, schedule.rate(config.lr, epochs, steps)),
                              loss=LOSS, metrics=["accuracy"], jit_compile=jit_compile(config.xla))
                # the same inputs in memory; a fit of one full and one last (shorter) batch compiles both shapes
                unshuffled = view.dataset("train", config.batch_size)
                x = np.concatenate([unshuffled[i][0] for i in range(len(unshuffled))])
                unshuffled.close()
                last = len(labels) % config.batch_size or config.batch_size
                keep = np.r_[0:config.batch_size, 0:last]
                warm = Batches(InMemoryRows(x[keep]), labels[keep], config.batch_size)
                started = time.perf_counter()
                model.fit(warm, epochs=1, verbose=0, shuffle=False)
                compile_s = time.perf_counter() - started
                warm.close()
                # 2. the training step alone: every training event, from memory
                in_memory = Batches(InMemoryRows(x), labels, config.batch_size, shuffle=True, seed=config.seed)
                step_timer = EpochTimer()
                model.fit(in_memory, epochs=epochs, verbose=0, shuffle=False, callbacks=[step_timer])
                in_memory.close()
                # 3. the full epoch: the real batches (pipeline and step together)
                full_timer = EpochTimer()
                model.fit(train, epochs=epochs, verbose=0, shuffle=False, callbacks=[full_timer])
                train.close()
                row = {"id": case["id"], "what": case["what"], "events": len(labels), "batch": config.batch_size,
                       "steps": steps, "epochs": epochs, "pipeline_first_s": pipeline_first, "pipeline_s": pipeline,
                       "pipeline_batches_per_s": steps / pipeline, "compile_s": compile_s,
                       "step_epochs_s": step_timer.seconds, "step_s": float(np.median(step_timer.seconds)),
                       "full_epochs_s": full_timer.seconds, "full_s": float(np.median(full_timer.seconds)),
                       "xla": bool(model.jit_compile), "parameters": model.count_params()}
                rows.append(row)
                print(f"  {args.worker:<10} {case['what']:<36} pipeline {pipeline:6.2f} s  step {row['step_s']:6.2f} s"
                      f"  full {row['full_s']:6.2f} s  (compiling {compile_s:.1f} s)", flush=True)
    versions = {"keras": keras.__version__, "numpy": np.__version__}
    versions[args.worker] = _version("jax") if args.worker == "jax" else (_version("tensorflow")
                                                                        or _version("tensorflow-cpu"))
    print(RESULT_TAG + json.dumps({"rows": rows, "versions": versions}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
