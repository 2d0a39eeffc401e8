"""Training throughput from an HDF5 file larger than memory, streamed vs in memory.

    python benchmarks/arrays.py --gb 0.5            # quick
    python benchmarks/arrays.py --gb 10 --keep      # the issue's target case

Writes a layout-1 electron/photon file of ``--gb`` gigabytes (32x32x2 float32,
8 KiB per event) and drops it from the page cache before each phase
(``posix_fadvise``; ``--warm`` keeps it). Two phases, each in a process of
its own so that its peak resident memory (``ru_maxrss``) is its own:

* **reader**: one full shuffled pass of ``ArrayDataset.batches`` over the
  file, no training: images/s and peak memory while reading all of it;
* **train**: one compact network (default ``cnn``, the benchmark's
  reference) trained from three sources taking turns epoch by epoch, so a
  busy machine slows all of them alike: batches streamed from the file
  through the training pipeline (``transfer.data.batches.Batches`` over
  ``transfer.data.arrays.ArrayRows``: chunked reads, prefetching); the same
  number of events held in a NumPy array through the very same pipeline (only
  the rows differ); and that array given straight to ``model.fit(x, y)``.
  The first epoch of each (graph tracing, first reads) is not timed.

Targets: memory below 2 GB whatever the file size; streamed throughput within
20 % of in memory. Peak RSS is measured rather than limited with RLIMIT_AS,
because TensorFlow reserves far more virtual address space than it uses.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from imgen.arrays import ArrayTransform, open_arrays
from imgen.arrays.synth import write_electron_photon_large

EVENT_BYTES = 32 * 32 * 2 * 4
PHASES = ("reader", "train")


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages, so reads hit the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def epoch_timer():
    """A Keras callback recording each epoch's wall time in ``.times``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()


def make_model(network: str, seed: int):
    import keras

    from transfer.models.compact import build_compact
    keras.utils.set_random_seed(seed)
    model = build_compact(network, (32, 32, 2), 2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def reader_pass(ds, args, transform) -> float:
    """Images/s of one full shuffled pass over the file, no training."""
    start, seen = time.perf_counter(), 0
    for x, _ in ds.batches(batch_size=args.batch, shuffle=True, seed=99, transform=transform,
                           chunk_events=args.chunk_events):
        seen += len(x)
    return seen / (time.perf_counter() - start)


def interleaved_training(ds, args, transform) -> tuple[dict[str, list[float]], int]:
    """Images/s per epoch for each source (one model, sources taking turns), baseline RSS.

    Taking turns epoch by epoch means a busy machine slows every source alike,
    so the ratios stay meaningful where absolute rates drift.
    """
    from transfer.data.arrays import ArrayRows
    from transfer.data.batches import Batches, InMemoryRows

    model = make_model(args.network, args.seed)
    baseline = psutil.Process().memory_info().rss  # TensorFlow loaded, model built
    images = args.steps * args.batch
    rng = np.random.default_rng(args.seed)
    held_x, held_y = ds.read_batch(np.sort(rng.choice(len(ds), min(len(ds), images), replace=False)))
    held_x = transform(held_x)

    everything = np.arange(len(ds))
    stream = Batches(ArrayRows(ds, everything, transform, args.chunk_events), ds.labels, args.batch, shuffle=True,
                     seed=args.seed)
    memory = Batches(InMemoryRows(held_x), held_y, args.batch, shuffle=True, seed=args.seed)  # same pipeline
    sources = {
        "stream": lambda m, cb: m.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=cb),
        "memory": lambda m, cb: m.fit(memory, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=cb),
        "memory-fit": lambda m, cb: m.fit(held_x, held_y, batch_size=args.batch, epochs=1, verbose=0,
                                          callbacks=cb),
    }
    for run in sources.values():  # warm-up: graph tracing, first reads
        run(model, [])
    rates: dict[str, list[float]] = {name: [] for name in sources}
    for round_ in range(args.rounds):
        names = list(sources)[::1 if round_ % 2 == 0 else -1]
        for name in names:
            timer = epoch_timer()
            sources[name](model, [timer])
            rates[name].append(images / timer.times[0])
    return rates, baseline


def run_phase(args) -> dict:
    """One measurement in a process of its own: ``reader`` or ``train``."""
    transform = ArrayTransform(scale="log")
    with open_arrays(str(args.path), "X", y_key="y", classes="electron,photon") as ds:
        if args.phase == "reader":
            baseline = psutil.Process().memory_info().rss
            result = {"rate": reader_pass(ds, args, transform)}
        else:
            rates, baseline = interleaved_training(ds, args, transform)
            result = {"rates": rates}
        events = len(ds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {**result, "peak": peak, "baseline": baseline, "events": events}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=10.0, help="file size in GB (default 10)")
    parser.add_argument("--path", type=Path, help="file to write (or reuse, if it exists)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--warm", action="store_true", help="leave the file in the page cache")
    parser.add_argument("--network", default="cnn", help="compact network (default cnn, the reference)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=6, help="timed epochs per source, taking turns")
    parser.add_argument("--chunk-events", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        print(json.dumps(run_phase(args)))
        return 0

    tmpdir = None
    if args.path is None:
        tmpdir = tempfile.mkdtemp(prefix="hepvision-bench-")
        args.path = Path(tmpdir) / "egamma.h5"
    try:
        if not args.path.exists():
            n_events = int(args.gb * 1e9 // EVENT_BYTES)
            start = time.perf_counter()
            write_electron_photon_large(args.path, n_events, seed=args.seed)
            print(f"wrote {args.path} ({args.path.stat().st_size / 1e9:.2f} GB, {n_events} events) "
                  f"in {time.perf_counter() - start:.0f} s", flush=True)
        results = {}
        for phase in PHASES:  # one process each: a clean peak RSS per phase
            if not args.warm:
                drop_from_page_cache(args.path)
            command = [sys.executable, __file__, "--phase", phase, "--path", str(args.path),
                       "--network", args.network, "--batch", str(args.batch), "--steps", str(args.steps),
                       "--rounds", str(args.rounds), "--chunk-events", str(args.chunk_events),
                       "--seed", str(args.seed)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"phase {phase} failed:\n{done.stderr[-3000:]}")
            results[phase] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        if tmpdir and not args.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)

    reader, train = results["reader"], results["train"]
    mib = lambda v: v / 2**20  # noqa: E731
    median = {name: float(np.median(r)) for name, r in train["rates"].items()}
    ratios = np.array(train["rates"]["stream"]) / np.array(train["rates"]["memory"])
    print(f"file: {reader['events'] * EVENT_BYTES / 1e9:.2f} GB, {reader['events']} events of 32x32x2; "
          f"{'warm' if args.warm else 'cold'} page cache; {os.cpu_count()} CPUs")
    print(f"reader alone, one full shuffled pass: {reader['rate']:.0f} images/s, peak RSS "
          f"{mib(reader['peak']):.0f} MiB ({mib(reader['peak'] - reader['baseline']):+.0f} MiB over the "
          "process after imports and opening)")
    print(f"training {args.network}, batch {args.batch}, {args.rounds} rounds of {args.steps} steps per source "
          f"(median images/s, per-round values):")
    for name, label in (("stream", "streamed from HDF5, the training pipeline"), ("memory", "in memory, same pipeline"),
                        ("memory-fit", "in memory, fit(x, y)")):
        values = ", ".join(f"{v:.0f}" for v in train["rates"][name])
        print(f"  {label:<28} {median[name]:7.0f}   ({values})")
    print(f"streamed / in memory (same pipeline): median of per-round ratios {np.median(ratios):.2f}; "
          f"vs fit(x, y): {median['stream'] / median['memory-fit']:.2f}")
    print(f"peak RSS of the training process: {mib(train['peak']):.0f} MiB "
          f"({mib(train['peak'] - train['baseline']):+.0f} MiB over the process with TensorFlow and the model; "
          f"includes {args.steps * args.batch * EVENT_BYTES / 2**20:.0f} MiB of in-memory events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
