"""Do the networks learn what the data hold? Each network against its matched baseline, with intervals.

    python benchmarks/quality.py                 # every case (about 15-25 minutes on 2 CPU cores)
    python benchmarks/quality.py --cases toy-smallcnn,egamma-resnet15
    python benchmarks/quality.py --list

Every case runs the exact ``python -m transfer`` command it prints, with
default options unless the case is about an option, on data made here:

* ``toy-*``: the bundled toy sample, 3 classes (``imgen.synth``, 800 events
  per class, seed 42), rendered by ``python -m imgen`` with its defaults at
  64 px; the baseline is gradient-boosted trees on the events' physics
  objects. VGG19 uses ImageNet weights where they are in the Keras cache,
  else trains from scratch (the table says which), at 32 px to fit a CPU.
* ``grid-*``: ``python -m transfer grid`` over compact networks and optimizers on the
  32 px toy images; its row is the best run by validation accuracy (with its test
  figures), and ``collapsed`` counts the runs that collapsed (the goal is none).
* ``egamma-*``: a toy electron/photon calorimeter file (``imgen.arrays.synth``,
  one file, ``X`` (N, 32, 32, 2), ``y``); ``layers-*``: three calorimeter
  layers of different granularity (classes separable by construction);
  ``showers-*``: the same three layers with e+, gamma and pi+ showers that
  overlap like real ones (``write_calo_showers``: a photon converting early,
  a pion interacting late), for the networks that read the layers as depth
  (``cnn3d``, ``rcnn``) against ``smallcnn``, which takes them as channels;
  ``towers-*``: trigger towers in raw MeV, with every ``--scale``. Their
  baseline is trees on the pooled cells (the same trees on the same events in
  every row of one data kind).
* ``real1k-*``, ``real2k-*``: trigger towers that look like a real small sample
  (``imgen.arrays.synth.write_realistic_towers``: pileup, noise, overlapping
  dijet classes, MeV over several decades; seed 1, 500 and 1000 events per
  class), smallcnn from scratch on every ``--scale``: where networks memorise
  (the ``gap`` column, training minus validation accuracy at the kept epoch,
  shows whether they do).

It prints one markdown table: network and baseline test accuracy and ROC AUC
(macro for 3 classes) with 68 % bootstrap intervals, whether the network
collapsed, whether it reached the baseline, the seconds, and the command.
Numbers depend on the machine only through time: the seeds are fixed.

``--pretrain`` runs the comparison of pretraining on simulated events instead
(``python -m transfer pretrain``, issue 16): a backbone pretrained with
``pretrain``'s defaults (the generator's three processes, seed 42, 2000 events
each) is fine-tuned on a small *target* sample, against the same network from
random weights and against the matched baseline, at three training-set sizes
(``--train-fraction 0.03,0.1,1``; same validation and test events). There are
no real CMS images here, so the target is another sample of the generator:
seeded differently (2026) and configured differently (two processes, TTjets
against Wjets, 1,500 events each, rendered by ``python -m imgen``; 273 test
events, so that the intervals tell a few hundredths apart). It measures
what pretraining on one simulated sample gives on a disjoint, smaller one of
the same physics, not the gain on real data, where detector effects differ.

    python benchmarks/quality.py --pretrain                    # mobilenetv2 at 32 px
    python benchmarks/quality.py --pretrain --backbone resnet15 --image-size 32
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: case -> (data maker name, transfer arguments)
CASES = {
    "toy-smallcnn": ("toy", ["--backbone", "smallcnn"]),
    "toy-cnn": ("toy", ["--backbone", "cnn"]),
    "toy-vgg19": ("toy32", ["--backbone", "vgg19", "--on-missing-weights", "random", "--epochs", "8"]),
    "egamma-resnet15": ("egamma", ["--x-key", "X", "--y-key", "y", "--classes", "photon,electron",
                                   "--backbone", "resnet15"]),
    "egamma-smallcnn": ("egamma", ["--x-key", "X", "--y-key", "y", "--classes", "photon,electron",
                                   "--backbone", "smallcnn"]),
    "layers-smallcnn": ("layers", ["--x-key", "layer_0,layer_1,layer_2", "--backbone", "smallcnn"]),
    # e+/gamma/pi+ showers that overlap like real ones: the layers as channels, as depth, and read in order
    "showers-smallcnn": ("showers", ["--x-key", "layer_0,layer_1,layer_2", "--backbone", "smallcnn"]),
    "showers-cnn3d": ("showers", ["--x-key", "layer_0,layer_1,layer_2", "--backbone", "cnn3d"]),
    "showers-rcnn": ("showers", ["--x-key", "layer_0,layer_1,layer_2", "--backbone", "rcnn"]),
    "towers-smallcnn-none": ("towers", ["--x-key", "gTowerEt", "--backbone", "smallcnn", "--scale", "none"]),
    "towers-smallcnn-log": ("towers", ["--x-key", "gTowerEt", "--backbone", "smallcnn", "--scale", "log"]),
    "towers-smallcnn-standardize": ("towers", ["--x-key", "gTowerEt", "--backbone", "smallcnn",
                                               "--scale", "standardize"]),
    "towers-cnn-log-min0": ("towers", ["--x-key", "gTowerEt", "--backbone", "cnn", "--scale", "log",
                                       "--min-value", "0"]),
}
for _size in ("1k", "2k"):
    for _scale in ("none", "log", "standardize"):
        CASES[f"real{_size}-smallcnn-{_scale}"] = (f"real{_size}", ["--x-key", "gTowerEt", "--backbone", "smallcnn",
                                                                    "--scale", _scale])

#: grid case -> (data maker name, ``transfer grid`` arguments): compact networks on small images, minutes on a CPU.
GRID_CASES = {
    "grid-toy32": ("toy32", ["--backbones", "smallcnn,cnn", "--optimizers", "adam,rmsprop",
                             "--fine-tune", "frozen,partial", "--epochs", "15"]),
}


#: The pretraining comparison: network, size, target sample (classes, events per class, seed) and fractions.
PRETRAIN_BACKBONE = "mobilenetv2"
PRETRAIN_SIZE = 32
TARGET_CLASSES, TARGET_EVENTS, TARGET_SEED = "TTjets,Wjets", 1500, 2026
FRACTIONS = "0.03,0.1,1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help=f"comma-separated cases (default: all): {', '.join([*CASES, *GRID_CASES])}")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--json", help="also write the rows as JSON to this file (after every case)")
    parser.add_argument("--pretrain", action="store_true",
                        help="run the pretraining comparison (pretrained vs from scratch vs baseline at three "
                             "training-set sizes) instead of the cases")
    parser.add_argument("--backbone", default=PRETRAIN_BACKBONE,
                        help=f"--pretrain: the network (default: {PRETRAIN_BACKBONE})")
    parser.add_argument("--image-size", type=int, default=PRETRAIN_SIZE,
                        help=f"--pretrain: pixels per side (default: {PRETRAIN_SIZE})")
    parser.add_argument("--reuse", action="store_true",
                        help="take a case's result from its run folder under --work when it is complete "
                             "(metrics.json) instead of training again")
    return parser


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` in ``cwd`` with this checkout's packages first (not another installation's)."""
    import os

    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path})


#: Array data kinds written as one file (or folder) per class: kind -> (writer in imgen.arrays.synth, events per
#: class, seed, the class-name list in that module, a class's file in the folder, what it is).
FOLDER_DATA = {
    "layers": ("write_calo_layers", 1000, 3, "LAYER_CLASSES", "{}.h5", "three layers"),
    "showers": ("write_calo_showers", 1000, 3, "LAYER_CLASSES", "{}.h5",
                "overlapping e+/gamma/pi+ showers in three layers"),
    "towers": ("write_trigger_towers", 1000, 2, "TOWER_CLASSES", "{}", "trigger towers (raw MeV)"),
    "real1k": ("write_realistic_towers", 500, 1, "REALISTIC_TOWER_CLASSES", "{}",
               "realistic towers (MeV, pileup)"),
    "real2k": ("write_realistic_towers", 1000, 1, "REALISTIC_TOWER_CLASSES", "{}",
               "realistic towers (MeV, pileup)"),
}


def make_data(kind: str, work: Path) -> tuple[list[str], str]:
    """The ``--data`` arguments for a data kind, made once under ``work``; and how they were made."""
    py = sys.executable
    if kind in ("toy", "toy32"):
        size = 64 if kind == "toy" else 32
        events, images = work / "events", work / f"images{size}"
        if not images.exists():
            if not events.exists():
                _run([py, "-m", "imgen.synth", "--out", str(events), "--events", "800", "--seed", "42"], work)
            _run([py, "-m", "imgen", str(events), "--out", str(images), "--size", str(size), "--seed", "42"], work)
        return [str(images)], f"imgen.synth 800/class seed 42, python -m imgen --size {size}"
    from imgen.arrays import synth as arrays_synth

    if kind == "egamma":
        path = work / "egamma.h5"
        if not path.exists():
            arrays_synth.write_electron_photon_combined(path, 1500, seed=1)
        return [str(path)], "arrays_synth electron/photon, 1500/class, seed 1"
    if kind in FOLDER_DATA:
        writer, per_class, seed, classes, file_name, what = FOLDER_DATA[kind]
        folder = work / kind
        if not folder.exists():
            getattr(arrays_synth, writer)(folder, per_class, seed=seed)
        return [f"{c}={folder / file_name.format(c)}" for c in getattr(arrays_synth, classes)], \
            f"arrays_synth {what}, {per_class}/class, seed {seed}"
    raise ValueError(kind)


def _macro(auc):
    return auc.get("macro") if isinstance(auc, dict) else auc


def _cell(section: dict, key: str) -> str:
    from transfer.evaluation.intervals import format_interval

    value = section["test"][key]
    value = _macro(value) if key == "roc_auc" else value
    return format_interval(value, (section["test"].get("intervals") or {}).get(key))


def run_case(name: str, work: Path, reuse: bool = False) -> dict:
    kind, extra = CASES[name]
    data, made = make_data(kind, work)
    out = work / "runs" / name
    command = [sys.executable, "-m", "transfer", "--data", *data, *extra, "--verbose", "0", "--out", str(out),
               "--overwrite"]
    shown = "python -m transfer " + shlex.join(command[3:-1]).replace(str(work) + "/", "")
    if reuse and (out / "metrics.json").is_file():
        seconds = json.loads((out / "metrics.json").read_text())["timing"]["total_s"]
    else:
        started = time.perf_counter()
        done = _run(command, work)
        seconds = time.perf_counter() - started
        if done.returncode not in (0, 3):
            return {"case": name, "error": (done.stderr or done.stdout).strip().splitlines()[-1], "command": shown}
    metrics = json.loads((out / "metrics.json").read_text())
    base = metrics.get("baseline")
    net_auc, base_auc = _macro(metrics["test"]["roc_auc"]), _macro(base["test"]["roc_auc"]) if base else None
    return {"case": name, "data": made, "weights": metrics["weights_used"], "training": metrics["training"],
            "network_accuracy": _cell(metrics, "accuracy"), "network_auc": _cell(metrics, "roc_auc"),
            "baseline_accuracy": _cell(base, "accuracy") if base else "n/a",
            "baseline_auc": _cell(base, "roc_auc") if base else "n/a",
            "accuracy_gap": metrics["test"]["accuracy"] - base["test"]["accuracy"] if base else None,
            "auc_gap": None if net_auc is None or base_auc is None else net_auc - base_auc,
            "collapsed": metrics["health"]["collapsed"], "seconds": seconds, "command": shown,
            "train_val_gap": (metrics["health"].get("fit") or {}).get("gap_kept")}


def run_grid_case(name: str, work: Path, reuse: bool = False) -> dict:
    """A small ``transfer grid``: how many runs collapsed (the goal is none), the best cell against the baseline."""
    import pandas as pd

    from transfer.experiments.grid_report import SUMMARY_CSV, baseline_figures, best_cell

    kind, extra = GRID_CASES[name]
    data, made = make_data(kind, work)
    out = work / "runs" / name
    command = [sys.executable, "-m", "transfer", "grid", "--data", *data, *extra, "--out", str(out)]
    shown = "python -m transfer " + shlex.join(command[3:]).replace(str(work) + "/", "")
    started = time.perf_counter()
    if not (reuse and (out / SUMMARY_CSV).is_file()):
        done = _run(command + ([] if reuse else ["--overwrite"]), work)
        if done.returncode not in (0, 3):
            return {"case": name, "error": (done.stderr or done.stdout).strip().splitlines()[-1], "command": shown}
    seconds = time.perf_counter() - started
    summary = pd.read_csv(out / SUMMARY_CSV)
    runs = summary.drop_duplicates("run")
    runs = runs[runs["status"] == "done"]
    best = best_cell(summary)
    if best is None:
        return {"case": name, "error": "no run of the grid completed without collapsing", "command": shown}
    metric = "auc" if int(best["n_classes"]) == 2 else "accuracy"
    base = baseline_figures(summary, "accuracy")
    base_auc = baseline_figures(summary, "auc")

    def shown_interval(values) -> str:
        return "n/a" if values is None else f"{values[0]:.3f} [{values[1]:.3f}, {values[2]:.3f}]"

    return {"case": name, "label": f"{name}: best of {len(runs)} runs (by validation), {best['run']}", "data": made, "weights": best["weights_used"],
            "training": best["training"], "metric": metric,
            "network_accuracy": shown_interval((best["test_accuracy"], best["test_accuracy_low"], best["test_accuracy_high"])),
            "network_auc": shown_interval((best["test_auc"], best["test_auc_low"], best["test_auc_high"])),
            "baseline_accuracy": shown_interval(base), "baseline_auc": shown_interval(base_auc),
            "accuracy_gap": best["test_accuracy"] - base[0] if base else None,
            "auc_gap": best["test_auc"] - base_auc[0] if base_auc else None,
            "collapsed": f"{int(runs['collapsed'].sum())} of {len(runs)}", "seconds": seconds, "command": shown,
            "summary": str(out / "grid_summary.png")}


def table(rows: list[dict]) -> str:
    lines = [("| case | network test accuracy | baseline | network test AUC | baseline | train - val accuracy | "
              "collapsed | seconds |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | error: {r['error']} | | | | | | |")
            continue
        gap = "n/a" if r.get("train_val_gap") is None else f"{r['train_val_gap']:+.3f}"
        lines.append(f"| {r.get('label', r['case'])} ({r['training']}, weights {r['weights']}) | {r['network_accuracy']} | "
                     f"{r['baseline_accuracy']} | {r['network_auc']} | {r['baseline_auc']} | {gap} | "
                     f"{_collapsed(r['collapsed'])} | {r['seconds']:.0f} |")
    lines += ["", "Commands (data made by this script, see its docstring):", ""]
    lines += [f"- {r['case']}: `{r['command']}`" for r in rows]
    return "\n".join(lines)


def _collapsed(value) -> str:
    """``yes``/``no`` for a run, ``N of M`` runs for a grid."""
    if isinstance(value, str):
        return value if value.startswith("0 ") else f"**{value}**"
    return "**yes**" if value else "no"


def _transfer(args: list[str], work: Path, out: Path, reuse: bool, done_file: str) -> str:
    """Run ``python -m transfer ARGS --out OUT`` unless ``reuse`` and ``OUT/done_file`` exist; the command shown."""
    command = [sys.executable, "-m", "transfer", *args, "--out", str(out), "--overwrite"]
    if not (reuse and (out / done_file).is_file()):
        done = _run(command, work)
        if done.returncode not in (0, 3):
            sys.exit(f"failed: {shlex.join(command)}\n{(done.stderr or done.stdout)[-3000:]}")
    return "python -m transfer " + shlex.join(command[3:-1]).replace(str(work) + "/", "")


def pretrain_comparison(work: Path, backbone: str, size: int, reuse: bool = False) -> tuple[list[dict], list[str], dict]:
    """Pretrained and fine-tuned vs from scratch vs the baseline on the target sample, per training fraction."""
    py = sys.executable
    pre = work / f"pretrain-{backbone}-{size}"
    started = time.perf_counter()
    commands = [_transfer(["pretrain", "--backbone", backbone, "--image-size", str(size), "--verbose", "0"],
                          work, pre, reuse, "pretrained.json")]
    pretrain_s = time.perf_counter() - started
    events, target = work / "target-events", work / f"target{size}"
    if not target.exists():
        _run([py, "-m", "imgen.synth", "--out", str(events), "--events", str(TARGET_EVENTS), "--seed",
              str(TARGET_SEED), "--classes", TARGET_CLASSES], work)
        _run([py, "-m", "imgen", str(events), "--out", str(target), "--size", str(size), "--seed", "7"], work)
    runs = {}
    for label, weights in (("pretrained", str(pre)), ("scratch", "none")):
        out = work / "runs" / f"target-{backbone}-{label}"
        commands.append(_transfer(["--data", str(target), "--backbone", backbone, "--weights", weights,
                                   "--train-fraction", FRACTIONS, "--verbose", "0"], work, out, reuse,
                                  "train_fraction_scan.csv"))
        runs[label] = out
    rows = []
    for fraction in FRACTIONS.split(","):
        name = f"fraction-{float(fraction):g}"
        pretrained, scratch = (json.loads((runs[k] / name / "metrics.json").read_text()) for k in ("pretrained", "scratch"))
        rows.append({"fraction": float(fraction), "n_train": sum(pretrained["events_per_class"]["train"].values()),
                     "pretrained_accuracy": _cell(pretrained, "accuracy"), "pretrained_auc": _cell(pretrained, "roc_auc"),
                     "pretrained_collapsed": pretrained["health"]["collapsed"],
                     "scratch_accuracy": _cell(scratch, "accuracy"), "scratch_auc": _cell(scratch, "roc_auc"),
                     "scratch_collapsed": scratch["health"]["collapsed"],
                     "baseline_accuracy": _cell(pretrained["baseline"], "accuracy"),
                     "baseline_auc": _cell(pretrained["baseline"], "roc_auc"),
                     "n_test": sum(pretrained["events_per_class"]["test"].values())})
    record = json.loads((pre / "pretrained.json").read_text())
    facts = {"backbone": backbone, "size": size, "pretrain_seconds": record.get("seconds", pretrain_s),
             "pretrain_test_accuracy": record.get("test_accuracy")}
    return rows, commands, facts


def pretrain_table(rows: list[dict], commands: list[str], facts: dict) -> str:
    lines = [f"| training events | {facts['backbone']} pretrained, fine-tuned: test accuracy | AUC | "
             "from scratch: test accuracy | AUC | baseline (trees): test accuracy | AUC |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        flag = {k: " (**collapsed**)" if r[f"{k}_collapsed"] else "" for k in ("pretrained", "scratch")}
        lines.append(f"| {r['n_train']} ({r['fraction']:g} of the training split) | {r['pretrained_accuracy']}"
                     f"{flag['pretrained']} | {r['pretrained_auc']} | {r['scratch_accuracy']}{flag['scratch']} | "
                     f"{r['scratch_auc']} | {r['baseline_accuracy']} | {r['baseline_auc']} |")
    lines += ["", f"{rows[0]['n_test']} test events in every row. Pretraining took {facts['pretrain_seconds']:.0f} s "
              f"(test accuracy {facts['pretrain_test_accuracy']:.3f} on its own three-process task). Commands:", ""]
    lines += [f"- `{c}`" for c in commands]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.pretrain:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(args.work or tmp)
            work.mkdir(parents=True, exist_ok=True)
            rows, commands, facts = pretrain_comparison(work, args.backbone, args.image_size, args.reuse)
            if args.json:
                Path(args.json).write_text(json.dumps({"rows": rows, "facts": facts, "commands": commands},
                                                      indent=2) + "\n")
            print(pretrain_table(rows, commands, facts))
        return 0
    if args.list:
        print("\n".join(f"{name}: {kind} {' '.join(extra)}" for name, (kind, extra) in {**CASES, **GRID_CASES}.items()))
        return 0
    names = args.cases.split(",") if args.cases else [*CASES, *GRID_CASES]
    unknown = [n for n in names if n not in CASES and n not in GRID_CASES]
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join([*CASES, *GRID_CASES])}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows.append((run_grid_case if name in GRID_CASES else run_case)(name, work, args.reuse))
            print(f"  {rows[-1].get('network_accuracy', rows[-1].get('error'))} against baseline "
                  f"{rows[-1].get('baseline_accuracy', '')}", file=sys.stderr, flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
