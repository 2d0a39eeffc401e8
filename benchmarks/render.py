"""Throughput and memory of ``imgen`` against a matplotlib baseline.

    python benchmarks/render.py                      # 3 x 500 events, 1 GB JSON for memory
    python benchmarks/render.py --events 300 --json-mb 50

1. Generates CMS-layout JSON events (``imgen.synth``: TTjets, Wjets, DYjets;
   a simple built-in generator if that module is missing).
2. Renders the same events with a matplotlib baseline faithful to the
   published outline style (a figure of ``Ellipse`` patches per event, saved
   as a 224-pixel JPEG), on one core, including ``json`` parsing.
3. Renders them with ``imgen.pipeline.render_files`` (parse, validate,
   render, PNG-encode, write, manifest): outline and physics style with one
   worker (in-process, one core), then physics with N workers.
4. Writes the same events as NanoAOD-layout ROOT files (``imgen.events.nanoaod_write``)
   and renders them on one worker as in 3 (physics style), and reads both
   routes with ``dry_run`` (read, validate, select: the part that differs).
5. Streams a large generated JSON file through ``python -m imgen --dry-run``
   in a child process (parse, validate, select) and reports its peak
   resident memory (ru_maxrss); with ``--json-render`` it also renders it.
   The same events as one ROOT file get the same treatment.

Prints every rate and the per-core ratio imgen / matplotlib (target: 30x at
224 px), the per-core ratio ROOT / JSON route (target: at least 1x) and the
peak memory (target: under 500 MB whatever the file size).
Numbers depend on the machine and on what else runs on it: compare rates
from the same run only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgen.pipeline import render_files  # noqa: E402

# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------

def _fallback_event(rng: random.Random, number: int) -> dict:
    def obj(pt_mean, lepton):
        o = {"pt": rng.expovariate(1 / pt_mean) + 10, "eta": rng.uniform(-2.5, 2.5),
             "phi": rng.uniform(-math.pi, math.pi)}
        if lepton:
            o.update(px=0.0, py=0.0, pz=0.0, tightID=rng.random() < 0.9, tightIso=rng.random() < 0.9)
        else:
            o.update(CSV=rng.choice([-100.0, rng.random()]), tightID=True)
        return o

    event = {"jet": {str(i): obj(50, False) for i in range(rng.randint(1, 6))}, "met": rng.expovariate(1 / 30),
             "met_phi": rng.uniform(-math.pi, math.pi), "run": 1, "lumi": 1 + number // 1000, "isMC": 1}
    event["muon" if rng.random() < 0.5 else "electron"] = {"0": obj(40, True)}
    return event


def write_events(folder: Path, per_class: int, seed: int) -> list[Path]:
    try:
        from imgen import synth
    except ImportError:
        synth = None
    if synth is not None and hasattr(synth, "generate"):
        return sorted(Path(p) for p in synth.generate(folder, per_class, seed).values())
    rng = random.Random(seed)
    paths = []
    for name in ("TTjets", "Wjets", "DYjets"):
        events = {str(i + 1): _fallback_event(rng, i + 1) for i in range(per_class)}
        path = folder / f"{name}.json"
        path.write_text(json.dumps({"Event": events}, indent=3))
        paths.append(path)
    return paths


def write_root_copies(paths: list[Path], folder: Path) -> list[Path]:
    """The events of each JSON file as ``folder/<stem>.root`` (NanoAOD layout, CSV in Jet_btagCSVV2)."""
    from imgen.events.cms_json import read_events
    from imgen.events.nanoaod_write import write_nanoaod

    folder.mkdir(parents=True, exist_ok=True)
    return [write_nanoaod(folder / (p.name[: -len(".json")] + ".root"), read_events(p, strict=True))
            for p in paths]


#: the JSON CSV score is written to Jet_btagCSVV2; with the JSON cut both routes tag the same jets
ROOT_AS_JSON = {"btag_branch": "Jet_btagCSVV2", "btag_cut": 0.679}


def write_large_json(path: Path, megabytes: float, seed: int) -> int:
    """A CMS-layout file of about ``megabytes`` MB, streamed to disk; returns its events."""
    probe = path.parent / "probe"
    probe.mkdir(exist_ok=True)
    sample = max(write_events(probe, 200, seed), key=lambda p: p.stat().st_size)
    per_event = sample.stat().st_size / 200
    events = max(1, int(megabytes * 1e6 / per_event))
    shutil.rmtree(probe)
    try:
        from imgen.synth import write_class_file
    except ImportError:
        write_class_file = None
    if write_class_file is not None:
        write_class_file(path, "TTjets", events, seed)
    else:
        rng = random.Random(seed)
        with path.open("w") as handle:
            handle.write('{"Event": {')
            for i in range(events):
                body = json.dumps(_fallback_event(rng, i + 1), indent=3)
                handle.write(("," if i else "") + json.dumps(str(i + 1)) + ": " + body)
            handle.write("}}\n")
    return events


# --------------------------------------------------------------------------
# The matplotlib baseline (published outline style)
# --------------------------------------------------------------------------

def matplotlib_baseline(paths: list[Path], out: Path, limit: int | None) -> tuple[int, float]:
    """Render with matplotlib as the original analysis did; returns (events, seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    colours = {"jet": "red", "electron": "blue", "muon": "green"}
    out.mkdir(parents=True, exist_ok=True)
    done = 0
    start = time.perf_counter()
    for path in paths:
        with path.open() as handle:
            events = json.load(handle)["Event"]
        for number, event in events.items():
            if limit is not None and done >= limit:
                return done, time.perf_counter() - start
            fig = plt.figure(figsize=(2.24, 2.24), dpi=100)
            ax = fig.add_axes([0, 0, 1, 1])
            ax.set_xlim(-3, 3)
            ax.set_ylim(-math.pi, math.pi)
            ax.axis("off")
            for kind, colour in colours.items():
                for obj in (event.get(kind) or {}).values():
                    r = 0.08 * math.log1p(obj["pt"])
                    tagged = kind == "jet" and obj.get("CSV", -100) > 0.679
                    ax.add_patch(Ellipse((obj["eta"], obj["phi"]), 2 * r, 2 * r, fill=False,
                                         edgecolor="darkred" if tagged else colour, linewidth=2))
            if "met_phi" in event:
                r = 0.08 * math.log1p(event["met"])
                ax.add_patch(Ellipse((0, event["met_phi"]), 2 * r, 2 * r, fill=False, edgecolor="black", linewidth=2))
            fig.savefig(out / f"{path.stem}_{number}.jpg", dpi=100)
            plt.close(fig)
            done += 1
    return done, time.perf_counter() - start


# --------------------------------------------------------------------------
# Memory of a streaming run, in a child process
# --------------------------------------------------------------------------

_CHILD = """
import json, resource, sys
from imgen.pipeline import render_files
s = render_files([sys.argv[1]], sys.argv[2], workers=int(sys.argv[3]), size=int(sys.argv[4]),
                 dry_run=sys.argv[5] == "dry", btag_branch="Jet_btagCSVV2", btag_cut=0.679)
print(json.dumps({"events": s.events_read, "seconds": s.seconds, "rendered": s.n_rendered,
                  "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def streaming_memory(path: Path, out: Path, workers: int, size: int, dry: bool) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(out), str(workers), str(size),
                             "dry" if dry else "render"], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=500, help="events per class (3 classes; default: %(default)s)")
    p.add_argument("--baseline-events", type=int, default=None,
                   help="render only this many events with matplotlib (default: all)")
    p.add_argument("--size", type=int, default=224, help="image size in pixels (default: %(default)s)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers of the parallel run "
                   "(default: all cores, %(default)s)")
    p.add_argument("--json-mb", type=float, default=1000, help="size of the JSON file streamed for the memory "
                   "figure, MB (default: %(default)s; 0 skips it)")
    p.add_argument("--json-render", action="store_true", help="also render the large file (slow), not only stream it")
    p.add_argument("--no-root-memory", action="store_true", help="skip writing the large file's events as one ROOT "
                   "file and streaming it for its memory figure")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", metavar="DIR", help="folder for the generated JSON and the images (default: a new "
                   "temporary folder; the file system's speed at creating files counts, try /dev/shm to leave it out)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="imgen-bench-", dir=args.work))
    try:
        paths = write_events(work / "json", args.events, args.seed)
        total = 3 * args.events
        print(f"events: {total} ({', '.join(p.name for p in paths)}), {args.size} px, machine: {os.cpu_count()} cores, "
              f"work folder: {work}")

        n_mpl, t_mpl = matplotlib_baseline(paths, work / "mpl", args.baseline_events)
        mpl_rate = n_mpl / t_mpl
        print(f"matplotlib outline, 1 core:  {mpl_rate:9.1f} events/s ({n_mpl} events, {t_mpl:.1f} s)")

        rates = {}
        for label, style, workers in (("imgen outline, 1 worker", "outline", 1),
                                      ("imgen physics, 1 worker", "physics", 1),
                                      (f"imgen physics, {args.workers} workers", "physics", args.workers)):
            out = work / f"out-{style}-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            summary = render_files(paths, out, style=style, size=args.size, workers=workers)
            assert summary.n_rendered == total, summary.format()
            rates[label] = summary.n_rendered / summary.seconds
            print(f"{label + ':':28s} {rates[label]:9.1f} events/s ({summary.seconds:.2f} s)")
        roots = write_root_copies(paths, work / "root")
        best: dict[str, float] = {}
        for _ in range(3):  # alternating rounds, best of each: the load of a shared machine changes over time
            for label, inputs, dry in (("JSON render", paths, False), ("ROOT render", roots, False),
                                       ("JSON read", paths, True), ("ROOT read", roots, True)):
                summary = render_files(inputs, work / f"out-{label.replace(' ', '-')}", size=args.size, workers=1,
                                       dry_run=dry, overwrite=True, **ROOT_AS_JSON)
                assert summary.events_read == total, summary.format()
                best[label] = max(best.get(label, 0.0), total / summary.seconds)
        print(f"physics, 1 worker, best of 3 alternating: JSON {best['JSON render']:,.0f} events/s, "
              f"ROOT {best['ROOT render']:,.0f} events/s")
        print(f"read + validate + select only (dry run): JSON {best['JSON read']:,.0f} events/s, "
              f"ROOT {best['ROOT read']:,.0f} events/s")
        print(f"per core, ROOT / JSON route: rendering {best['ROOT render'] / best['JSON render']:.2f}x, "
              f"reading {best['ROOT read'] / best['JSON read']:.2f}x (target: at least 1x)")
        one = rates["imgen outline, 1 worker"], rates["imgen physics, 1 worker"]
        print(f"per core, imgen / matplotlib: outline {one[0] / mpl_rate:.1f}x, physics {one[1] / mpl_rate:.1f}x "
              f"(target 30x); {args.workers} workers: "
              f"{rates[f'imgen physics, {args.workers} workers'] / mpl_rate:.1f}x the one-core baseline")

        if args.json_mb > 0:
            big = work / "large" / "TTjets.json"
            big.parent.mkdir(exist_ok=True)
            start = time.perf_counter()
            events = write_large_json(big, args.json_mb, args.seed)
            print(f"large file: {big.stat().st_size / 1e6:.0f} MB, {events} events "
                  f"(generated in {time.perf_counter() - start:.0f} s)")
            stream = streaming_memory(big, work / "large-out", 1, args.size, dry=True)
            print(f"streaming (parse + validate + select, --dry-run): peak {stream['self_mb']:.0f} MB, "
                  f"{stream['events'] / stream['seconds']:,.0f} events/s (target < 500 MB)")
            if args.json_render:
                run = streaming_memory(big, work / "large-out", args.workers, args.size, dry=False)
                print(f"rendering it, {args.workers} workers: main process peak {run['self_mb']:.0f} MB, "
                      f"largest worker {run['children_mb']:.0f} MB, {run['rendered'] / run['seconds']:,.0f} events/s")
            if not args.no_root_memory:
                from imgen.events.cms_json import read_events
                from imgen.events.nanoaod_write import write_nanoaod

                big_root = big.with_suffix(".root")
                write_nanoaod(big_root, read_events(big, strict=True))   # streamed: the same events
                root_stream = streaming_memory(big_root, work / "large-root-out", 1, args.size, dry=True)
                print(f"the same as ROOT: {big_root.stat().st_size / 1e6:.0f} MB, {root_stream['events']} events, "
                      f"--dry-run peak {root_stream['self_mb']:.0f} MB, "
                      f"{root_stream['events'] / root_stream['seconds']:,.0f} events/s "
                      f"({root_stream['events'] / root_stream['seconds'] / (stream['events'] / stream['seconds']):.2f}x "
                      f"the JSON file's rate)")
        print(f"this process peak: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
