"""The GPU check's throughput table: what training and the input pipeline deliver under Keras' JAX backend.

    python3 benchmarks/gpu.py --out DIR             # on a GPU node (benchmarks/gpu_check.sh runs it)
    python3 benchmarks/gpu.py --quick --out DIR     # a smoke run on a CPU: 32 px, a few steps

Rows (each measured in its own subprocess, time-boxed, so that a hang or a crash becomes a row that says so
instead of eating the time of the rows after it):

* **Training images/s** of ResNet50, VGG19 and MobileNetV2 at 224 px (float32, then bf16; XLA on, as JAX always
  compiles), of smallcnn on 32x32x2 float32 arrays (the project's default batch of 32, and 256). The networks are
  the project's own (``transfer.models.classifier.build_transfer_model``, from random weights, every layer
  trained as ``--weights none`` trains them), compiled with the project's optimizer (``adam`` on the cosine
  schedule of networks trained from scratch), loss and ``jit_compile``, and trained by a real ``model.fit`` on
  :class:`transfer.data.batches.Batches` over synthetic inputs already in memory (uint8 images, float32 arrays),
  so the input pipeline costs nothing here. A first ``fit`` compiles and warms up, a short one estimates the step,
  and the timed ``fit`` runs for about ``--seconds`` (its end waits for the device, so the time is the GPU's).
* **GPU memory**: the device's peak bytes in use (``jax`` ``memory_stats``) in the measuring process.
* **Input pipeline images/s** on the CPU cores alone (no model): a PNG folder rendered by ``imgen`` (decoded
  every epoch; decoded once and kept in memory, as ``transfer`` does for images that fit; and with the phi roll
  and flips drawn on the fly), and an HDF5 file of 32x32x2 float32 arrays streamed in chunks, each through the
  batches ``transfer`` trains from (``DataView.dataset``).

The table is printed and written as ``throughput.json`` and ``throughput.md`` into ``--out`` (default ``$OUT``
if set, else ``./gpu_check_out``), after every row, so an interrupted run still leaves what it measured.
``--budget`` bounds the whole run: a row that would start with too little time left is reported as not measured.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: NVIDIA's published TensorFlow ResNet-50 training throughput on one A100, mixed precision and XLA (issue 21).
ANCHOR = {"model": "resnet50", "precision": "bf16", "images_per_s": 2375,
          "text": "NVIDIA's TensorFlow ResNet-50 on one A100, mixed precision + XLA: 2,375 images/s"}
RESULT_TAG = "GPU_CHECK_RESULT "
PRECISION_NAMES = {"off": "float32", "bf16": "bf16"}


# --------------------------------------------------------------------------
# What is measured (the parent's plan)
# --------------------------------------------------------------------------

def plan(args) -> list[dict]:
    """The measurements in the order they run: cheap rows first, then the 224 px networks (ResNet50 first, for
    the anchor). Each is one subprocess with a time cap (``cap_s``) and the least time worth starting it with."""
    quick = args.quick
    size = 32 if quick else 224
    big_batch = args.batch_size or (8 if quick else 256)
    common = {"seconds": args.seconds or (0.5 if quick else 4.0), "min_steps": 2 if quick else 10}
    cases = [
        {"id": "smallcnn", "kind": "model", "backbone": "smallcnn", "shape": [32, 32, 2], "dtype": "float32",
         "runs": [["off", 32], ["off", 256]], "cap_s": 240 if quick else 60, "min_s": 20, **common},
        {"id": "pipeline-png", "kind": "png", "size": 32 if quick else 224, "per_class": 60 if quick else 1000,
         "batch": 32 if quick else big_batch, "cap_s": 300 if quick else 90, "min_s": 20},
        {"id": "pipeline-hdf5", "kind": "hdf5", "events": 4000 if quick else 50_000, "batch": 256,
         "cap_s": 120 if quick else 60, "min_s": 15},
    ]
    for name in ("resnet50", "mobilenetv2", "vgg19"):
        cases.append({"id": name, "kind": "model", "backbone": name, "shape": [size, size, 3], "dtype": "uint8",
                      "runs": [["bf16", big_batch], ["off", big_batch]], "cap_s": 600 if quick else 150,
                      "min_s": 40, **common})
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c["id"] in wanted]
    return cases


# --------------------------------------------------------------------------
# The parent: runs every measurement in its own, time-boxed process
# --------------------------------------------------------------------------

def run_child(case: dict, timeout_s: float, log) -> tuple[list[dict], str]:
    """Run ``case`` in a new process (its own process group, killed whole on timeout); returns the rows it
    finished (each printed on a line of its own as soon as it is measured) and an error, or ""."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(case)]
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1")
    if case["kind"] in ("png", "hdf5"):
        env["JAX_PLATFORMS"] = "cpu"  # the pipeline rows use the CPU cores alone; the GPU stays untouched
    log.write(f"\n===== {case['id']}: {' '.join(command[:3])} '{command[3]}' (cap {timeout_s:.0f} s)\n")
    log.flush()
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True, cwd=ROOT)
    error = ""
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        error = f"timed out after {time.monotonic() - started:.0f} s (killed)"
    output = output or ""
    log.write(output)
    log.flush()
    rows = [json.loads(line[len(RESULT_TAG):]) for line in output.splitlines() if line.startswith(RESULT_TAG)]
    if not error and process.returncode != 0:
        last = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
        error = f"failed (exit status {process.returncode}): {last[0][:300]}"
    return rows, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="output folder (default: $OUT if set, else ./gpu_check_out)")
    parser.add_argument("--quick", action="store_true", help="smoke run for a CPU: 32 px, batch 8, few steps")
    parser.add_argument("--budget", type=float, help="seconds for the whole table (default: 240; quick: 1500)")
    parser.add_argument("--batch-size", type=int, help="batch of the 224 px networks (default: 256; quick: 8)")
    parser.add_argument("--seconds", type=float, help="length of each timed fit (default: 4; quick: 0.5)")
    parser.add_argument("--only", help="comma-separated row ids (smallcnn, pipeline-png, pipeline-hdf5, resnet50, "
                                       "mobilenetv2, vgg19)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))

    out = Path(args.out or os.environ.get("OUT") or "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    budget = args.budget or (1500.0 if args.quick else 240.0)
    deadline = time.monotonic() + budget
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": args.quick, "budget_s": budget,
              "anchor": ANCHOR, "rows": []}
    with open(out / "gpu_py.log", "w") as log:
        info, error = run_child({"id": "info", "kind": "info"}, min(120.0, budget), log)
        report["info"] = info[0] if info else {"error": error}
        print(describe_info(report["info"]), flush=True)
        for case in plan(args):
            left = deadline - time.monotonic()
            if left < case["min_s"]:
                rows, error = [], f"not measured: {max(0.0, left):.0f} s of the {budget:.0f} s budget left"
            else:
                rows, error = run_child(case, min(case["cap_s"], left), log)
            if error:  # what the child did not finish
                rows.append({"id": case["id"] + (" (the rest)" if rows else ""), "error": error})
            report["rows"] += rows
            for row in rows:
                print(format_row(row), flush=True)
            report["seconds"] = round(budget - (deadline - time.monotonic()), 1)
            write_report(report, out)
    print()
    print(markdown(report))
    print(f"written: {out / 'throughput.json'}, {out / 'throughput.md'} (child output: {out / 'gpu_py.log'})")
    return 0 if all("error" not in row for row in report["rows"]) else 1


def describe_info(info: dict) -> str:
    if "error" in info:
        return f"device: unknown ({info['error']})"
    return (f"device: {info['device_kind']} ({info['platform']}, {info['devices']} device(s), compute capability "
            f"{info.get('compute_capability') or 'n/a'}); {info['cpus']} CPU cores; python {info['python']}, "
            + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))


def write_report(report: dict, out: Path) -> None:
    for name, text in (("throughput.json", json.dumps(report, indent=2) + "\n"), ("throughput.md", markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def _number(value, digits: int | None = None) -> str:
    """``value`` with thousands separators; ``digits`` None: one decimal below 100, none above."""
    if value is None or value == "":
        return ""
    return f"{value:,.{(1 if abs(value) < 100 else 0) if digits is None else digits}f}"


def format_row(row: dict) -> str:
    if "error" in row:
        return f"{row['id']:<14} {row['error']}"
    return (f"{row['id']:<14} {row['what']:<58} {_number(row['images_per_s']):>10} images/s"
            + (f"  {row['memory_gib']:.2f} GiB" if row.get("memory_gib") is not None else ""))


def markdown(report: dict) -> str:
    info = report.get("info", {})
    lines = ["# GPU check: throughput under Keras 3 on JAX", ""]
    if "error" in info:
        lines += [f"Device: unknown ({info['error']})", ""]
    else:
        lines += [f"Device: **{info['device_kind']}** ({info['platform']}, {info['devices']} device(s), compute "
                  f"capability {info.get('compute_capability') or 'n/a'}); {info['cpus']} CPU cores; "
                  f"`--mixed-precision auto` resolves to `{info.get('auto_policy')}` here.", "",
                  "Versions: python " + info["python"] + ", "
                  + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".", ""]
    lines += [f"Measured {report['started']}{' (--quick: a CPU smoke run, not a GPU figure)' if report['quick'] else ''}"
              f", in {report.get('seconds', 0):.0f} s of a {report['budget_s']:.0f} s budget.", "",
              "| row | what | precision | batch | images/s | ms per step | steps timed | compile + warm-up s | "
              "GPU memory peak | note |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['id']} | | | | | | | | | {row['error']} |")
            continue
        memory = f"{row['memory_gib']:.2f} GiB" if row.get("memory_gib") is not None else ""
        lines.append(f"| {row['id']} | {row['what']} | {row.get('precision', '')} | {row.get('batch', '')} | "
                     f"{_number(row['images_per_s'])} | {_number(row.get('ms_per_step'), 1)} | "
                     f"{row.get('steps', '')} | {_number(row.get('compile_s'), 1)} | {memory} | "
                     f"{row.get('note', '')} |")
    lines += ["", f"Anchor: {ANCHOR['text']} (the ResNet50 bf16 row says its ratio to it; the issue asks for at "
                  "least that on an H100).",
              "",
              "Training rows: the project's networks from random weights, every layer trained, `adam` with the "
              "from-scratch cosine schedule, `model.fit` on `transfer.data.batches.Batches` over synthetic inputs "
              "in memory (the input pipeline is not measured there); XLA on (JAX compiles every step). float32 is "
              "JAX's default precision for float32 matrix work (`jax_default_matmul_precision` in the JSON). GPU "
              "memory: the device's peak bytes in use in that row's process; the float32 row of a network runs "
              "after its bf16 row in the same process, so it shows the larger of the two peaks. Pipeline rows: "
              "CPU only, no model; images/s over one epoch of the training split.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The children: one measurement each, the last stdout line its result
# --------------------------------------------------------------------------

def child(case: dict) -> int:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("MPLBACKEND", "Agg")
    measure = {"info": measure_info, "model": measure_model, "png": measure_png, "hdf5": measure_hdf5}[case["kind"]]
    for row in measure(case):  # each row as soon as it is measured: a later hang loses only what follows
        print(RESULT_TAG + json.dumps(row), flush=True)
    return 0


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def measure_info(case: dict):
    import jax
    import keras

    from transfer.training.devices import hardware, precision_policy

    device = jax.devices()[0]
    found = hardware()
    versions = {"jax": jax.__version__, "jaxlib": _version("jaxlib"), "keras": keras.__version__,
                "numpy": _version("numpy"), "hepvision": _version("hepvision") or (ROOT / "imgen" / "VERSION")
                .read_text().strip()}
    for plugin in ("jax-cuda13-plugin", "jax-cuda12-plugin"):
        if _version(plugin):
            versions[plugin] = _version(plugin)
    versions["tensorflow"] = _version("tensorflow") or _version("tensorflow-cpu") or "not installed"
    yield {"device_kind": device.device_kind, "platform": device.platform, "devices": jax.device_count(),
            "compute_capability": getattr(device, "compute_capability", None), "hardware": found.describe(),
            "auto_policy": precision_policy("auto", found), "cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "keras_backend": keras.backend.backend(), "versions": versions,
            "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)}


class PoolRows:
    """``n`` rows served from a small pool in memory (row i is ``pool[i % len(pool)]``): the rows interface of
    :mod:`transfer.data.batches` at no cost, so that a fit measures the training step alone."""

    def __init__(self, pool, n: int):
        self.pool, self.n = pool, int(n)

    def __len__(self) -> int:
        return self.n

    def read(self, positions):
        import numpy as np

        return self.pool[np.asarray(positions) % len(self.pool)]

    def order(self, seed: int, epoch: int):
        import numpy as np

        return np.arange(self.n)


def _peak_memory() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def measure_model(case: dict):
    """Train ``case['backbone']`` on synthetic inputs for each (precision, batch) of ``case['runs']``."""
    import keras
    import numpy as np

    from transfer.data.batches import Batches
    from transfer.models.backbones import get_backbone
    from transfer.models.classifier import build_transfer_model
    from transfer.models.compact import BN_MOMENTUM
    from transfer.models.freezing import is_batch_norm
    from transfer.optimizers import LR_SCHEDULES, make_optimizer, resolve_lr_schedule
    from transfer.training.devices import PRECISION_POLICIES, jit_compile
    from transfer.training.stages import LOSS

    spec = get_backbone(case["backbone"])
    shape, dtype, classes = tuple(case["shape"]), case["dtype"], 3
    rng = np.random.default_rng(0)
    pool = (rng.integers(0, 256, (256, *shape), dtype=np.uint8) if dtype == "uint8"
            else rng.normal(0.0, 1.0, (256, *shape)).astype(np.float32))
    for precision, batch in case["runs"]:
        keras.backend.clear_session()
        keras.config.set_dtype_policy(PRECISION_POLICIES[precision])
        keras.utils.set_random_seed(0)
        normalization = None if spec.pretrained else {"mean": [0.0] * shape[2], "variance": [1.0] * shape[2]}
        parts = build_transfer_model(spec, shape, classes, None, None, input_dtype=dtype,
                                     normalization=normalization, from_scratch=True)
        model = parts.model
        parts.backbone.trainable = True
        for layer in parts.backbone.layers:  # as Stages.train_from_scratch: every layer, BN momentum 0.9
            layer.trainable = True
            if is_batch_norm(layer) and layer.momentum > BN_MOMENTUM:
                layer.momentum = BN_MOMENTUM
        schedule = LR_SCHEDULES[resolve_lr_schedule("auto", True)]
        model.compile(optimizer=make_optimizer("adam", schedule.rate(3e-3, 10, 1000)), loss=LOSS,
                      metrics=["accuracy"], jit_compile=jit_compile("on", "jax"))

        def fit(steps: int) -> float:
            n = steps * batch
            batches = Batches(PoolRows(pool, n), np.arange(n) % classes, batch)
            started = time.perf_counter()
            model.fit(batches, epochs=1, verbose=0, shuffle=False)
            seconds = time.perf_counter() - started
            batches.close()
            return seconds

        compile_s = fit(2)
        estimate = fit(3) / 3
        steps = int(min(2000, max(case["min_steps"], round(case["seconds"] / max(estimate, 1e-4)))))
        seconds = fit(steps)
        peak = _peak_memory()
        images_per_s = steps * batch / seconds
        row = {"id": f"{case['id']}-{PRECISION_NAMES[precision]}-b{batch}", "backbone": case["backbone"],
               "what": f"{spec.name} training step, {'x'.join(map(str, shape))} {dtype} in memory",
               "precision": PRECISION_NAMES[precision], "dtype_policy": PRECISION_POLICIES[precision],
               "batch": batch, "steps": steps, "seconds": round(seconds, 3), "images_per_s": images_per_s,
               "ms_per_step": 1000 * seconds / steps, "compile_s": compile_s, "parameters": model.count_params(),
               "memory_bytes": peak, "memory_gib": None if peak is None else peak / 2**30}
        if case["backbone"] == ANCHOR["model"] and precision == ANCHOR["precision"]:
            row["anchor_ratio"] = images_per_s / ANCHOR["images_per_s"]
            row["note"] = f"{row['anchor_ratio']:.2f} x the anchor (2,375 images/s, TF on one A100)"
        if case["backbone"] == "smallcnn" and batch == 32:
            row["note"] = "the project's default --batch-size"
        print(format_row(row), flush=True)
        yield row
        model = parts = None  # frees this network's device buffers before the next is built
        gc.collect()
    keras.config.set_dtype_policy("float32")


def _epoch(batches) -> float:
    """Seconds to read every batch of one epoch, in order, as ``fit`` does (then the epoch ends)."""
    started = time.perf_counter()
    for index in range(len(batches)):
        batches[index]
    seconds = time.perf_counter() - started
    batches.on_epoch_end()
    return seconds


def _pipeline_row(case, name: str, what: str, n: int, seconds: float, batch: int | None, note: str = "") -> dict:
    return {"id": f"{case['id']}-{name}", "what": what, "batch": batch or "", "events": n,
            "seconds": round(seconds, 3), "images_per_s": n / seconds,
            "ms_per_step": 1000 * seconds * batch / n if batch else None, "note": note}


def measure_png(case: dict) -> list[dict]:
    """imgen renders toy events into a PNG folder; then one epoch of its training split through the batches
    ``transfer`` trains from: decoded every epoch, decoded once and kept, and kept with on-the-fly augmentation."""
    from imgen.pipeline import render_files
    from imgen.synth import generate
    from transfer.config import TrainConfig
    from transfer.data import open_data
    from transfer.data.batches import DECODE_THREADS, Batches, DecodedImages

    size, batch, cpus = case["size"], case["batch"], os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="gpu-check-png-") as tmp:
        events = generate(Path(tmp) / "events", events=case["per_class"], seed=1)
        started = time.perf_counter()
        render_files([str(p) for p in events.values()], Path(tmp) / "png", style="physics", size=size, seed=1,
                     workers=cpus, overwrite=True)
        render_s = time.perf_counter() - started
        rendered = 3 * case["per_class"]
        rows = [_pipeline_row(case, "render", f"imgen render, toy events -> {size} px PNGs ({cpus} processes)",
                              rendered, render_s, None, "writing, not training: how fast a node makes the images")]
        with open_data(TrainConfig(data=str(Path(tmp) / "png"))) as source:
            view = source.view()
            kept, labels = view.rows("train"), view.labels("train")
            n = len(labels)
            every = Batches(DecodedImages(kept.paths, kept.shape, 0), labels, batch, shuffle=True, seed=0)
            rows.append(_pipeline_row(case, "decode", f"PNG {size} px, decoded every epoch ({DECODE_THREADS} threads)",
                                      n, _epoch(every), batch, "what a split larger than the 2 GiB image cache gets"))
            every.close()
            once = view.dataset("train", batch, shuffle=True, seed=0)
            first = _epoch(once)
            rows.append(_pipeline_row(case, "cached", f"PNG {size} px, decoded once, kept in memory", n, _epoch(once),
                                      batch, f"first epoch (decoding all) {n / first:,.0f} images/s"))
            once.close()
            augmented = view.dataset("train", batch, shuffle=True, seed=0, augment=True)
            rows.append(_pipeline_row(case, "augment", f"PNG {size} px, kept, + phi roll and flips on the fly", n,
                                      _epoch(augmented), batch, "--augment-on-the-fly"))
            augmented.close()
    return rows


def measure_hdf5(case: dict) -> list[dict]:
    """An HDF5 file of 32x32x2 float32 electron/photon arrays; one epoch of its training split streamed in chunks."""
    from imgen.arrays.synth import write_electron_photon_large
    from transfer.config import TrainConfig
    from transfer.data import open_data

    batch = case["batch"]
    with tempfile.TemporaryDirectory(prefix="gpu-check-h5-") as tmp:
        path = write_electron_photon_large(Path(tmp) / "egamma.h5", case["events"], seed=1)
        started = time.perf_counter()
        config = TrainConfig(data=[str(path)], x_key=["X"], y_key="y", classes=["electron", "photon"])
        with open_data(config) as source:
            view = source.view()
            open_s = time.perf_counter() - started
            n = len(view.labels("train"))
            batches = view.dataset("train", batch, shuffle=True, seed=0)
            first = _epoch(batches)
            second = _epoch(batches)
            batches.close()
    size_mb = case["events"] * 32 * 32 * 2 * 4 / 1e6
    return [_pipeline_row(case, "stream", f"HDF5 32x32x2 float32, streamed in chunks ({size_mb:,.0f} MB file)",
                                   n, second, batch, f"first epoch {n / first:,.0f} images/s; opening and checking "
                                                     f"the file {open_s:.1f} s")]


if __name__ == "__main__":
    sys.exit(main())
