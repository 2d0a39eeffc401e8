"""``python -m imgen``: render (default), ``arrays``, ``synth``, ``merge-shards``.

Only argument parsing lives here; the work is done by library functions a
notebook calls with the same names: :func:`imgen.pipeline.render_files`
(``python -m imgen [render] INPUT...``, CMS JSON or NanoAOD ROOT events ->
eta-phi PNGs + manifest), :func:`imgen.arrays.export.export_pngs` (``arrays``:
HDF5 arrays -> PNGs + manifest), :func:`imgen.synth.generate` (``synth``: toy
events) and :func:`imgen.output.shards.merge_shard_manifests` (``merge-shards``).
Every command shares the option names (``--split``, ``--seed``, ``--out``,
``--no-progress``, ``--overwrite``) and ends through
:func:`imgen.cli_guard.run_command` (``error: ...``, exit status 2).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from imgen._version import __version__
from imgen.errors import ImgenError

PROG = "python -m imgen"

EPILOG = f"""\
subcommands (render is the default: "{PROG} json_files/" is "{PROG} render json_files/"):
  {PROG} render INPUT... [options below]   (events -> eta-phi images)
  {PROG} arrays --data ... --x-key KEY --out DIR   (HDF5 calorimeter arrays -> PNG folders)
  {PROG} synth --out DIR [--events N]   (toy CMS-layout JSON events)
  {PROG} merge-shards OUT   (join the shard manifests of a batch farm run)
  run "{PROG} SUBCOMMAND --help" for their options.

classes:
  Each event's class comes from its file. A file argument gives the file
  name's stem without a trailing "_json" (Wjets_json.json -> Wjets). A folder
  argument gives its *.json files, each classed by its own stem, and the
  *.json files of its direct sub-folders, classed by the sub-folder's name
  (json_files/Wjets/part1.json -> Wjets). --class NAME=GLOB overrides both.
  .json.gz files are read too, and so are .root files (below), by the same rules.

NanoAOD ROOT files (.root, read with uproot; no ROOT installation needed):
  The tree (--tree, default Events) is read in chunks, so memory stays flat.
  Branches: run, luminosityBlock, event, MET_pt, MET_phi, and nX, X_pt, X_eta,
  X_phi for X = Jet, Tau, Photon, Electron, Muon; tight ID from Jet_jetId (tight
  bit), Electron_cutBased >= 4, Muon_tightId; isolation Electron_pfRelIso03_all
  and Muon_pfRelIso04_all < 0.15; b-tag from --btag-branch above --btag-cut.
  The manifest's event column is the NanoAOD event number, with run and lumi
  (luminosityBlock) beside it, and genWeight (when the file has it) as weight. A URL (root://..., https://...) is passed on to
  uproot. A missing branch is an error listing the nearest names in the tree.

images (OUT/<class>/<class>_<event>.png, eta horizontal, phi vertical, +pi on top):
  physics (default, made for a network): black background; R = jets (disk,
    radius 0.4 in eta-phi; b-tagged jets are squares; taus diamonds),
    G = leptons (electrons disks, muons squares, photons diamonds, radius 0.2),
    B = MET (disk at eta 0, phi = met_phi; not drawn when an event has no
    met_phi, and the summary counts such events). Pixel value of an object of pt (GeV):
    64 + round(191 * clip(ln(pt/MIN) / ln(MAX/MIN), 0, 1)) with --pt-scale
    MIN,MAX; 0 = empty; overlaps keep the maximum; no anti-aliasing.
  outline (the published style): white background, unfilled ellipses of
    semi-axis 0.08*ln(1+pt/GeV), electrons blue, muons green, jets red,
    b-tagged jets dark red, MET black, photons orange, taus purple.
  Phi is periodic: objects near +-pi appear on both the top and bottom edges.

output and resume:
  OUT/manifest.csv lists every image of the run (path, class, event, source,
  split, run, lumi, weight, weight_source: NanoAOD genWeight or JSON xsec). Writes are atomic; a run that stops resumes where it left off:
  an existing image is kept only when it records (inside the PNG) the same
  source file, event and settings; one of another input stops the run,
  naming both, unless --overwrite, which re-renders and removes the images of
  earlier runs that the inputs no longer give. OUT/imgen-config.json records
  the settings and what the last run left out (objects outside --eta-max,
  duplicate event numbers and the files that repeat them); a run with
  settings that change pixels is refused in an OUT rendered otherwise
  (unless --overwrite). One run at a time per OUT (OUT/.imgen.lock). A bad event (non-numeric,
  NaN/infinite or negative value, missing pt/eta/phi) is skipped and counted
  (--strict: fatal). A bad file (empty, no "Event" key, malformed JSON; not
  ROOT, truncated, empty tree, missing branch) stops the run with an error
  naming it: its images are discarded, the files before
  it are kept, and no manifest is written.

batch farms:
  A run with --shard I/N renders the events whose (class, event) hash falls
  in part I of N; shards are disjoint and together cover the input. Each writes
  OUT/manifest-shard-I-of-N.csv (and images-shard-I-of-N.h5); after all
  shards ran into the same OUT (or were copied together), join the
  manifests with:  python -m imgen merge-shards OUT
  (each shard manifest is checked first: complete, every row's image present,
  every image of the shard listed).

examples:
  python -m imgen json_files/
  python -m imgen json_files/ --selection paper --size 64 --workers 8 --out images64
  python -m imgen --class ttbar='data/TT*.json' --class wjets='data/W*.json' --format both
  python -m imgen nano/TTJets.root nano/WJets.root --selection paper --btag-branch Jet_btagDeepB

Calorimeter-cell HDF5 arrays instead of JSON events: python -m imgen arrays --help
"""


def build_parser() -> argparse.ArgumentParser:
    from imgen.render import CSV_MEDIUM, OBJECT_KINDS, STYLES
    from imgen.selection import PRESETS

    p = argparse.ArgumentParser(
        prog=f"{PROG} [render]",
        description="Render CMS open-data collision events (JSON, or NanoAOD ROOT files) as eta-phi "
                    "images (PNG, optionally HDF5), one per event, with a manifest assigning each to "
                    "train/validation/test.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="JSON or NanoAOD .root files, folders, globs or .root URLs to read (classes: see "
                        "below)")
    p.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME=GLOB",
                   help="events of the files matching GLOB are of class NAME (repeatable; overrides "
                        "the class from the file or folder name)")
    p.add_argument("--out", default="images", metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--format", choices=("png", "hdf5", "both"), default="png",
                   help="png: OUT/<class>/*.png and OUT/manifest.csv; hdf5: only OUT/images.h5 (X uint8 "
                        "N,H,W,3 RGB, y class index, event, split, path, source; attribute classes; rebuilt "
                        "whole on every run); both: the two (default: %(default)s)")

    g = p.add_argument_group("rendering")
    g.add_argument("--style", choices=STYLES, default="physics",
                   help="physics: channels R=jets G=leptons B=MET, intensity = pt on a log scale "
                        "(for networks); outline: the published white images with coloured ellipses "
                        "(default: %(default)s)")
    g.add_argument("--size", type=int, default=224, metavar="PX",
                   help="image width and height in pixels (default: %(default)s)")
    g.add_argument("--objects", default="all", metavar="LIST",
                   help=f"comma-separated object types to draw, from {','.join(OBJECT_KINDS)} "
                        "(bjet = jet with CSV above --btag-wp; default: all)")
    g.add_argument("--eta-max", type=float, default=3.0, metavar="ETA",
                   help="the image spans eta from -ETA to +ETA (default: %(default)s)")
    g.add_argument("--btag-wp", type=float, default=CSV_MEDIUM, metavar="CSV",
                   help="JSON files: CSV b-tag score above which a jet is drawn as a b-tagged jet "
                        "(default: %(default)s, the CMS CSV medium working point; .root files: --btag-cut)")
    g.add_argument("--pt-scale", default="1,1000", metavar="MIN,MAX",
                   help="physics style: pt in GeV mapped to the lowest (64) and highest (255) "
                        "intensity, log scale (default: %(default)s)")

    add_nanoaod_options(p)

    s = p.add_argument_group("selection (object cuts remove objects, count cuts remove events)")
    s.add_argument("--selection", choices=sorted(PRESETS), default="none",
                   help="preset: none = all events and objects; paper = leptons pt > 20 GeV with tight "
                        "ID and isolation, jets pt > 30 GeV with |eta| < 2.4 and tight ID, exactly one "
                        "lepton (default: %(default)s). The options below change the preset's cuts")
    s.add_argument("--lepton-pt-min", type=float, metavar="GEV",
                   help="keep electrons and muons with pt above GEV (GeV)")
    s.add_argument("--lepton-tight-id", action=argparse.BooleanOptionalAction, default=None,
                   help="keep only leptons with tightID true")
    s.add_argument("--lepton-tight-iso", action=argparse.BooleanOptionalAction, default=None,
                   help="keep only leptons with tightIso true")
    s.add_argument("--jet-pt-min", type=float, metavar="GEV", help="keep jets with pt above GEV (GeV)")
    s.add_argument("--jet-eta-max", type=float, metavar="ETA", help="keep jets with |eta| below ETA")
    s.add_argument("--jet-tight-id", action=argparse.BooleanOptionalAction, default=None,
                   help="keep only jets with tightID true")
    for name, what in (("n-leptons", "electrons + muons"), ("n-electrons", "electrons"),
                       ("n-muons", "muons"), ("n-jets", "jets")):
        s.add_argument(f"--{name}", metavar="COUNT",
                       help=f"keep events whose number of {what} after the object cuts is COUNT: "
                            "N (exactly), N+ (at least) or <=N (at most)")

    o = p.add_argument_group("run")
    add_split_options(o, "event")
    o.add_argument("--workers", type=int, default=None, metavar="N",
                   help="rendering processes; 1 renders in this process (default: all cores, at most "
                        "one per 256 kB of input)")
    o.add_argument("--shard", metavar="I/N", help="render only part I (0-based) of N disjoint parts")
    o.add_argument("--overwrite", action="store_true",
                   help="re-render images that already exist (default: keep them and resume)")
    o.add_argument("--strict", action="store_true",
                   help="stop at the first bad event instead of skipping and counting it")
    o.add_argument("--dry-run", action="store_true",
                   help="read, validate and select only; print the summary and cut flow, write nothing")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--merge-shards", metavar="OUT", help=argparse.SUPPRESS)  # before the merge-shards command
    o.add_argument("-v", "--verbose", action="store_true", help="log each skipped event")
    o.add_argument("--version", action="version", version=f"hepvision {__version__}")
    return p


def add_nanoaod_options(p: argparse.ArgumentParser) -> None:
    from imgen.events.nanoaod import BTAG_BRANCHES, DEFAULT_BTAG_BRANCH, DEFAULT_TREE

    known = "; ".join(f"{name} ({tagger}, NanoAOD {versions}, medium {cut} for {campaign})"
                      for name, (tagger, versions, cut, campaign) in BTAG_BRANCHES.items())
    r = p.add_argument_group("NanoAOD ROOT input (.root files)")
    r.add_argument("--tree", default=DEFAULT_TREE, metavar="NAME",
                   help="name of the events tree (default: %(default)s)")
    r.add_argument("--btag-branch", default=DEFAULT_BTAG_BRANCH, metavar="BRANCH",
                   help=f"jet b-tag discriminant, by NanoAOD version: {known} (default: %(default)s)")
    r.add_argument("--btag-cut", type=float, default=None, metavar="CUT",
                   help="discriminant above which a jet is drawn as a b-tagged jet (default: the medium "
                        "working point of --btag-branch listed above; other years differ, give yours)")


def add_split_options(group, identity: str) -> None:
    """``--split`` and ``--seed``, the same for every command: the project's one split rule."""
    from imgen.split import DEFAULT_FRACTIONS, DEFAULT_SEED

    group.add_argument("--split", default=",".join(map(str, DEFAULT_FRACTIONS)), metavar="TRAIN,VAL,TEST",
                       help=f"split fractions; each event's split comes from a hash of (seed, class, {identity}), "
                            "the same rule for every command, so re-running never moves an event (default: "
                            "%(default)s)")
    group.add_argument("--seed", type=int, default=DEFAULT_SEED,
                       help="seed of the split hash (default: %(default)s)")


def _render(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _log(args.verbose)
    if args.merge_shards:  # the former spelling of the merge-shards command
        if args.inputs:
            parser.error("--merge-shards takes no INPUT")
        return _merge_shards([args.merge_shards])
    from imgen import pipeline, selection
    from imgen.cli_guard import run_command

    def run() -> int:
        if not args.inputs and not args.classes:
            parser.error("give JSON or ROOT files, folders or globs (or --class NAME=GLOB)")
        cuts = selection.build_selection(
            args.selection, lepton_pt_min=args.lepton_pt_min, lepton_tight_id=args.lepton_tight_id,
            lepton_tight_iso=args.lepton_tight_iso, jet_pt_min=args.jet_pt_min,
            jet_eta_max=args.jet_eta_max, jet_tight_id=args.jet_tight_id, n_leptons=args.n_leptons,
            n_electrons=args.n_electrons, n_muons=args.n_muons, n_jets=args.n_jets)
        summary = pipeline.render_files(
            args.inputs, args.out, classes=args.classes, style=args.style, size=args.size,
            eta_max=args.eta_max, objects=args.objects, btag_wp=args.btag_wp,
            pt_scale=_pair(args.pt_scale, "--pt-scale"), selection=cuts, split=args.split,
            seed=args.seed, workers=args.workers, shard=args.shard, format=args.format,
            overwrite=args.overwrite, strict=args.strict, dry_run=args.dry_run, tree=args.tree,
            btag_branch=args.btag_branch, btag_cut=args.btag_cut,
            progress=not args.no_progress and sys.stderr.isatty())
        print(summary.format())
        return 0

    return run_command(run, (ImgenError,), folder=args.out)


def _subcommand_parser(name: str, description: str, epilog: str | None = None,
                       raw: bool = False) -> argparse.ArgumentParser:
    """The parser of ``python -m imgen NAME``, with ``--version`` like every command (``raw``: keep the
    line breaks of description and epilog, for examples)."""
    formatter = argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter
    p = argparse.ArgumentParser(prog=f"{PROG} {name}", description=description, epilog=epilog,
                                formatter_class=formatter)
    p.add_argument("--version", action="version", version=f"hepvision {__version__}")
    return p


def build_merge_shards_parser() -> argparse.ArgumentParser:
    p = _subcommand_parser("merge-shards", "Join OUT/manifest-shard-I-of-N.csv, written by runs with --shard I/N, "
                           "into OUT/manifest.csv. Each shard manifest is checked first: complete, every row's "
                           "image present, every image of the shard listed; a missing shard or an image listed "
                           "twice is refused.")
    p.add_argument("out", metavar="OUT", help="the output folder the shards rendered into")
    return p


def _merge_shards(argv: list[str]) -> int:
    args = build_merge_shards_parser().parse_args(argv)
    from imgen.cli_guard import run_command
    from imgen.output.shards import merge_shard_manifests

    def run() -> int:
        print(f"wrote {merge_shard_manifests(args.out)}")
        return 0

    return run_command(run, (ImgenError,), folder=args.out)


def build_arrays_parser() -> argparse.ArgumentParser:
    from imgen.arrays.export import INTENSITIES

    p = _subcommand_parser(
        "arrays", "Write HDF5 calorimeter arrays as PNG class folders with manifest.csv.",
        "examples:\n"
               f"  {PROG} arrays --data electron=e.h5 photon=p.h5 --x-key X --out images\n"
               f"  {PROG} arrays --data all.h5 --x-key X --y-key y --classes electron,photon --out images\n"
               f"  {PROG} arrays --data towers/ --x-key gTowerEt --crop --out towers_png\n"
               f"  {PROG} arrays --data eplus=e.h5 gamma=g.h5 --x-key layer_0,layer_1,layer_2 --out calo\n\n"
               "Each row's split is the one a training run on the same --data gives it (python -m transfer\n"
               "--data ... --x-key ...): the manifest's source column is the row's file#row.", raw=True)
    p.add_argument("--data", nargs="+", required=True,
                   help="class=FILE|FOLDER|GLOB per class, or FILE(s) with --y-key and --classes, "
                        "or one FOLDER of class sub-folders")
    p.add_argument("--x-key", required=True, help="image dataset key; a comma list stacks layers")
    p.add_argument("--y-key", help="label dataset key (labels 0..K-1)")
    p.add_argument("--classes", help="class names in id order, comma separated")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--channels", help="channels to keep: indices or names, comma separated (at most 3)")
    p.add_argument("--min-value", type=float, help="values below this become 0")
    p.add_argument("--crop", action="store_true", help="drop outer rows/columns zero in every event")
    p.add_argument("--intensity", choices=sorted(INTENSITIES), default="log", help="value to grey level")
    p.add_argument("--decades", type=float, default=3.0, help="decades below the maximum shown (log)")
    p.add_argument("--max-value", type=_floats, help="value(s) mapped to 255, one or one per channel")
    p.add_argument("--percentile", type=float, default=99.5,
                   help="without --max-value: this percentile of positive training values is 255")
    p.add_argument("--limit", type=int, help="at most N events per class")
    add_split_options(p, "file#row")
    p.add_argument("--fractions", dest="split", help=argparse.SUPPRESS)  # the former name of --split
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-q", "--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)  # former name
    return p


def _arrays(argv: list[str]) -> int:
    args = build_arrays_parser().parse_args(argv)
    _log(False)
    from imgen.arrays import open_arrays
    from imgen.arrays.export import export_pngs
    from imgen.cli_guard import run_command
    from imgen.split import parse_fractions

    def run() -> int:
        with open_arrays(args.data, args.x_key, args.y_key, args.classes) as dataset:
            summary = export_pngs(dataset, args.out, channels=args.channels, min_value=args.min_value,
                                  crop=args.crop, intensity=args.intensity, decades=args.decades,
                                  max_value=args.max_value, percentile=args.percentile, limit=args.limit,
                                  seed=args.seed, fractions=parse_fractions(args.split),
                                  overwrite=args.overwrite, progress=not args.no_progress)
        print(f"wrote {summary.total} images to {summary.out}")
        for name, counts in summary.counts.items():
            print(f"  {name}: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
        print(f"  {args.intensity} intensity, 255 at " + ", ".join(f"{v:.4g}" for v in summary.vmax))
        return 0

    return run_command(run, (ImgenError,), folder=args.out)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_synth_parser() -> argparse.ArgumentParser:
    from imgen.synth import CLASS_GENERATORS

    p = _subcommand_parser(
        "synth", "Generate toy CMS-layout JSON collision events (TTjets, Wjets, DYjets), one file per class, for "
        "demos and tests. Same seed, same bytes.",
        "Physics of each class and the distributions used: see the docstring of imgen.synth or docs/physics.md. "
        "(python -m imgen.synth is the same command.)")
    p.add_argument("--out", required=True, help="folder to write <class>.json files into")
    p.add_argument("--events", type=int, default=1000, help="events per class (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="random seed of the events (default: %(default)s)")
    p.add_argument("--classes", default=",".join(CLASS_GENERATORS),
                   help="comma-separated classes to generate (default: %(default)s)")
    p.add_argument("--compact", action="store_true",
                   help="write compact JSON (no indentation) for smaller, faster files")
    return p


def _synth(argv: list[str]) -> int:
    args = build_synth_parser().parse_args(argv)
    from imgen.cli_guard import run_command
    from imgen.synth import CLASS_GENERATORS, generate

    def run() -> int:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        unknown = [c for c in classes if c not in CLASS_GENERATORS]
        if unknown:
            raise ImgenError(f"unknown class(es) {', '.join(unknown)}; known: {', '.join(CLASS_GENERATORS)}")
        if args.events < 1:
            raise ImgenError(f"--events must be at least 1, got {args.events}")
        paths = generate(args.out, args.events, args.seed, classes, None if args.compact else 3)
        for name, path in paths.items():
            print(f"{name}: {args.events} events -> {path}")
        return 0

    return run_command(run, (ImgenError,), folder=args.out)


def _log(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")


#: subcommand -> its function; anything else is ``render``'s arguments.
COMMANDS = {"render": _render, "arrays": _arrays, "synth": _synth, "merge-shards": _merge_shards}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m imgen`` with ``argv``; returns the exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv else None
    return command(argv[1:]) if command else _render(argv)


def _pair(text: str, option: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ImgenError(f"{option} {text!r}: expected MIN,MAX, e.g. 1,1000") from None
    return low, high


if __name__ == "__main__":
    sys.exit(main())
