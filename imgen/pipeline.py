"""A rendering run: event files in, images + manifest (+ HDF5) out, a summary back.

The main process streams each file (through its kind's reader, see
:mod:`imgen.events.readers`: ijson for JSON, uproot for NanoAOD) and sends batches
of raw events to worker processes; a worker validates, selects, assigns the
split, renders, encodes and writes the PNG of each event, and sends back only small records
(rows, counts, bad events). Measured: the main process spends ~20 us of CPU
per event (parse, send, collect, manifest row, final rename), a worker
~130 us (validate, render, encode, write) plus whatever the file system takes
to create a file, so one parser feeds many workers. The reverse (workers
parsing) would need a way to split one JSON stream. The number of batches in
flight is bounded, so memory stays flat whatever the file size.

Order and determinism: results are collected in submission order, so the
manifest lists files in (class, path) order and events in file order, and the
same inputs give the same manifest whatever the number of workers.

Bad input: a bad event is skipped and counted (the summary shows the first
few) or, with ``strict``, stops the run. A bad file (empty, no ``Event`` key,
malformed JSON) always stops the run with an :class:`ImgenError` naming the
file and the last good event; its images are discarded (they were staged,
see :mod:`imgen.output.staging`), the files before it stay in place, and no manifest
is written: fix or remove the file and run again, and the finished files are
not rendered twice.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from imgen._version import __version__
from imgen.cli_guard import Terminated, is_disk_full
from imgen.errors import BadEventError, ImgenError
from imgen.events.cms_json import parse_event
from imgen.events.inputs import InputFile, resolve_inputs
from imgen.events.readers import ReadOptions, reader_for, run_btag_wp
from imgen.output.hdf5 import Hdf5Writer, compress_image, hdf5_name
from imgen.output.images import image_name, image_relpath, write_staged
from imgen.output.lock import output_lock
from imgen.output.manifest import ManifestSpool
from imgen.output.provenance import describe, provenance, read_provenance, with_provenance
from imgen.output.settings import check_and_write_config, discard_stale_config, fingerprint, write_run_counts
from imgen.output.shards import manifest_name
from imgen.output.staging import Staging, remove_leftovers, remove_unlisted_images
from imgen.render import OBJECT_KINDS, RENDER_VERSION, RenderConfig, drawn_objects, encode_png, render_event
from imgen.selection import CutFlow, Selection, build_selection, event_cuts_passed, select_objects
from imgen.split import DEFAULT_FRACTIONS, SPLITS, assign_shard, assign_split, parse_fractions, parse_shard

log = logging.getLogger(__name__)

FORMATS = ("png", "hdf5", "both")
BATCH_SIZE = 64
#: with the default number of workers, one worker per this many bytes of input at most
SMALL_INPUT_PER_WORKER = 256 * 1024
#: bad events quoted in the summary
EXAMPLES = 5


# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------

@dataclass
class RunSummary:
    """What a run did. ``format()`` is the text the CLI prints."""

    out: Path
    cut_flow: CutFlow
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (source, class, events read)
    events_read: int = 0
    other_shards: int = 0
    bad: Counter = field(default_factory=Counter)
    bad_examples: list[str] = field(default_factory=list)
    rendered: dict[str, Counter] = field(default_factory=dict)   # class -> split -> n
    existing: dict[str, Counter] = field(default_factory=dict)   # already on disk (resume)
    missing_met_phi: int = 0
    phi_from_momentum: int = 0
    #: what the readers read (e.g. the NanoAOD tree and branches)
    read: list[str] = field(default_factory=list)
    outside_eta_objects: int = 0                                  # drawn kinds beyond --eta-max: not drawn
    outside_eta_events: int = 0                                   # selected events holding such objects (kept)
    eta_max: float = 3.0
    duplicates: Counter = field(default_factory=Counter)          # (class, first file, repeating file) -> n
    removed_stale: int = 0                                        # earlier runs' images these inputs do not give
    seconds: float = 0.0
    workers: int = 1
    shard: tuple[int, int] | None = None
    dry_run: bool = False
    manifest: Path | None = None
    hdf5: Path | None = None

    @property
    def skipped(self) -> int:
        return sum(self.bad.values())

    @property
    def n_rendered(self) -> int:
        return sum(sum(c.values()) for c in self.rendered.values())

    @property
    def n_existing(self) -> int:
        return sum(sum(c.values()) for c in self.existing.values())

    @property
    def images(self) -> dict[str, Counter]:
        """class -> split -> images of the run (rendered or already there)."""
        total: dict[str, Counter] = {}
        for part in (self.rendered, self.existing):
            for name, counts in part.items():
                total.setdefault(name, Counter()).update(counts)
        return dict(sorted(total.items()))

    @property
    def rate(self) -> float:
        """Events read per second."""
        return self.events_read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out), "events_read": self.events_read, "other_shards": self.other_shards,
            "skipped": dict(self.bad), "skipped_examples": self.bad_examples,
            "cut_flow": {step: values for step, values in self.cut_flow.rows()},
            "rendered": {k: dict(v) for k, v in self.rendered.items()},
            "existing": {k: dict(v) for k, v in self.existing.items()},
            "missing_met_phi": self.missing_met_phi, "phi_from_momentum": self.phi_from_momentum,
            **self.counts(),
            "seconds": self.seconds, "events_per_second": self.rate, "workers": self.workers,
            "files": [{"source": s, "class": c, "events": n} for s, c, n in self.files], "read": self.read,
            "manifest": str(self.manifest) if self.manifest else None,
            "hdf5": str(self.hdf5) if self.hdf5 else None,
        }

    def counts(self) -> dict[str, Any]:
        """What was left out and why, also recorded in imgen-config.json (``last_run``)."""
        return {"outside_eta": {"eta_max": self.eta_max, "objects": self.outside_eta_objects,
                                "events": self.outside_eta_events, "events_kept": True},
                "duplicate_events": [{"class": c, "first_read_from": a, "repeated_in": b, "events": n}
                                     for (c, a, b), n in sorted(self.duplicates.items())],
                "removed_stale_images": self.removed_stale}

    def format(self) -> str:
        lines = [f"read {self.events_read} events from {len(self.files)} file(s) in {self.seconds:.2f} s "
                 f"({self.rate:,.0f} events/s, {self.workers} worker(s))"]
        lines += self.read
        if self.shard:
            lines.append(f"shard {self.shard[0]}/{self.shard[1]}: {self.other_shards} events left to other shards")
        if self.bad:
            lines.append(f"skipped {self.skipped} bad event(s):")
            lines += [f"  {reason}: {n}" for reason, n in self.bad.most_common()]
            lines += [f"    e.g. {example}" for example in self.bad_examples]
        for (name, first, again), n in sorted(self.duplicates.items()):
            lines.append(f"  duplicate event numbers in class {name}: {again} repeats {n} of {first} "
                         "(skipped; the first one read is kept)")
        lines.append("cut flow (events):")
        lines.append(self.cut_flow.format())
        lines.append(f"objects outside |eta| < {self.eta_max:g} (not drawn; their events are kept): "
                     f"{self.outside_eta_objects} in {self.outside_eta_events} event(s)")
        images = self.images
        total = sum(sum(c.values()) for c in images.values())
        if self.dry_run:
            lines.append(f"dry run: {total} event(s) selected, nothing written")
        else:
            rendered_rate = self.n_rendered / self.seconds if self.seconds > 0 else 0.0
            lines.append(f"images: {total} ({self.n_rendered} rendered at {rendered_rate:,.0f}/s, "
                         f"{self.n_existing} already there)")
        if images:
            width = max(8, *(len(c) for c in images))
            lines.append("  " + "class".ljust(width) + "".join(s.rjust(12) for s in (*SPLITS, "total")))
            for name, counts in images.items():
                lines.append("  " + name.ljust(width) + "".join(str(counts[s]).rjust(12) for s in SPLITS)
                             + str(sum(counts.values())).rjust(12))
        lines.append(f"events without met_phi (MET not drawn): {self.missing_met_phi}")
        if self.phi_from_momentum:
            lines.append(f"leptons with phi 0.0 or missing, phi taken from atan2(py, px): {self.phi_from_momentum}")
        if self.removed_stale:
            lines.append(f"removed {self.removed_stale} image(s) of an earlier run that these inputs do not give "
                         "(the manifest lists exactly the images on disk)")
        for label, path in (("manifest", self.manifest), ("hdf5", self.hdf5)):
            if path:
                lines.append(f"wrote {label}: {path}")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Worker side: one batch of raw events -> images and small records
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """Everything a worker needs, sent once per worker."""

    render: RenderConfig
    selection: Selection
    fractions: tuple[float, float, float]
    seed: int
    out: str
    write_png: bool
    write_hdf5: bool
    overwrite: bool
    dry_run: bool
    fingerprint: str = ""          # of the settings that decide pixels, recorded in every PNG


@dataclass(frozen=True)
class Reading:
    """How the main process reads and hands out the input: the options of a run that no worker needs."""

    strict: bool = False
    shard: tuple[int, int] | None = None
    workers: int = 1
    batch_size: int = BATCH_SIZE
    progress: bool = False
    options: ReadOptions = ReadOptions()


@dataclass
class BatchResult:
    flow: CutFlow
    bad: list[tuple[str, str]] = field(default_factory=list)               # (reason, message)
    rows: list[tuple] = field(default_factory=list)  # (event, split, status, h5 chunk, run, lumi, weight, source)
    missing_met_phi: int = 0
    phi_from_momentum: int = 0
    outside_eta_objects: int = 0
    outside_eta_events: int = 0


def process_batch(job: Job, source: str, class_name: str, staging: str | None,
                  events: Sequence[tuple[str, Any]], parse=parse_event) -> BatchResult:
    """Validate, select, split, render and write one batch of one file's events.

    ``parse`` is the file's reader's (:class:`imgen.events.readers.EventReader`)."""
    selection = job.selection
    n_cuts = len(selection.event_cuts())
    result = BatchResult(CutFlow(selection.cut_names()))
    final_dir = os.path.join(job.out, class_name)
    for event_id, raw in events:
        try:
            event = parse(event_id, raw, source)
        except BadEventError as exc:
            result.bad.append((exc.reason, str(exc)))
            continue
        selected = select_objects(event, selection)
        passed = event_cuts_passed(selected, selection)
        result.flow.add(class_name, passed, passed == n_cuts)
        result.flow.count_objects(event, selected)
        if passed != n_cuts:
            continue
        result.missing_met_phi += selected.met_phi is None
        result.phi_from_momentum += event.phi_from_momentum
        outside = sum(1 for o in drawn_objects(selected, job.render)
                      if o.kind != "met" and abs(o.eta) > job.render.eta_max)
        result.outside_eta_objects += outside
        result.outside_eta_events += outside > 0
        split = assign_split(event_id, class_name, job.seed, job.fractions)
        status, chunk, image = "selected", None, None
        if not job.dry_run:
            status = "rendered"
            if job.write_png:
                name = image_name(class_name, event_id)
                staged = os.path.join(staging, name)
                record = provenance(source, event_id, job.fingerprint)
                if not job.overwrite and _reusable(os.path.join(final_dir, name), staged, record):
                    status = "existing"
                else:
                    image = render_event(selected, job.render)
                    write_staged(staged, with_provenance(encode_png(image), record))
            if job.write_hdf5:
                chunk = compress_image(image if image is not None else render_event(selected, job.render))
        result.rows.append((event_id, split, status, chunk, event.run, event.lumi, event.weight, event.weight_source))
    return result


def _reusable(final: str, staged: str, record: dict) -> bool:
    """Whether an image already there is the one this event would give (resume).

    Only an image whose recorded source, event and settings match is reused.
    A staged one that does not match (left by a killed run) is rendered again;
    a final one that does not match belongs to another input: stop, naming both.
    """
    for path in (staged, final):
        if not os.path.exists(path):
            continue
        found = read_provenance(path)
        if found == record:
            return True
        if path == staged:
            os.unlink(staged)
            continue
        raise ImgenError(f"{final}: holds the image of {describe(found)}, but this run renders "
                         f"{record['source']} event {record['event']} under that name; use --overwrite to "
                         "replace it, or another --out")
    return False


_JOB: Job | None = None


def _init_worker(job: Job) -> None:
    global _JOB
    _JOB = job
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it stops the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a stopped run ends its workers without a word
    try:
        import cv2

        cv2.setNumThreads(1)  # one process per core already
    except Exception:  # pragma: no cover
        pass


def _work(task: tuple[str, str, str | None, list]) -> BatchResult:
    assert _JOB is not None
    return process_batch(_JOB, *task)


# --------------------------------------------------------------------------
# Main side
# --------------------------------------------------------------------------

class _SeenEvents:
    """(class, event) pairs seen in this run and the file each was first read
    from, ~12 bytes each: a sorted int64 array (with the file numbers beside
    it) plus a small dict, merged now and then (64-bit hashes; a collision
    between two of even 10^8 events is a 1-in-3000 chance)."""

    def __init__(self, buffer: int = 1 << 17):
        self._recent: dict[int, int] = {}
        self._sorted = np.empty(0, np.int64)
        self._files = np.empty(0, np.int32)
        self._buffer = buffer

    def add(self, class_name: str, event_id: str, file_number: int = 0) -> int | None:
        """None if new, else the number of the file it was first read from."""
        key = hash((class_name, event_id))
        if key in self._recent:
            return self._recent[key]
        if self._sorted.size:
            i = int(np.searchsorted(self._sorted, key))
            if i < self._sorted.size and self._sorted[i] == key:
                return int(self._files[i])
        self._recent[key] = file_number
        if len(self._recent) >= self._buffer:
            keys = np.concatenate([self._sorted, np.fromiter(self._recent.keys(), np.int64, len(self._recent))])
            files = np.concatenate([self._files, np.fromiter(self._recent.values(), np.int32, len(self._recent))])
            order = np.argsort(keys, kind="stable")
            self._sorted, self._files = keys[order], files[order]
            self._recent.clear()
        return None


class _Run:
    """State of one run in the main process."""

    def __init__(self, job: Job, summary: RunSummary, reading: Reading, bar: tqdm):
        self.job, self.summary, self.strict, self.shard = job, summary, reading.strict, reading.shard
        self.options = reading.options
        self.batch_size = reading.batch_size
        workers = reading.workers
        self.bar = bar
        self.seen = _SeenEvents()
        self.sources: list[str] = []   # input files in reading order, for naming duplicate events' files
        # concurrent.futures, not multiprocessing.Pool: a Pool stopped by Ctrl-C or SIGTERM can hang on a
        # queue lock its killed workers held; the executor treats killed workers as a broken pool and returns.
        self.pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_init_worker, initargs=(job,)) if workers > 1 else None)
        self.max_pending = 2 * workers + 2
        self.spool: ManifestSpool | None = None
        self.h5: Hdf5Writer | None = None

    # -- one input file ----------------------------------------------------
    def run_file(self, item: InputFile) -> None:
        job, summary = self.job, self.summary
        source, class_name = item.location, item.class_name
        parse = reader_for(item).parse
        staging = None
        if job.write_png and not job.dry_run:
            staging = Staging(job.out, item.path, self.shard)
            if job.overwrite:
                staging.discard()  # staged images of an earlier run are not reused
            elif staging.check_leftovers():
                log.info("%s: removed incomplete images left by an interrupted run", source)
            staging_dir = str(staging.folder(class_name))
        else:
            staging_dir = None
        for writer in (self.spool, self.h5):
            if writer:
                writer.mark()
        self.sources.append(source)
        pending: deque = deque()
        read = 0
        done_bytes = 0
        try:
            with reader_for(item).open(item, self.options) as reader:
                batch: list = []
                for event_id, raw in reader:
                    read += 1
                    if self.shard and assign_shard(event_id, class_name, self.shard[1]) != self.shard[0]:
                        summary.other_shards += 1
                        continue
                    first = self.seen.add(class_name, event_id, len(self.sources) - 1)
                    if first is not None:
                        self.summary.duplicates[(class_name, self.sources[first], source)] += 1
                        self._bad("duplicate event number",
                                  f"{source}: event {event_id}: duplicate event number in class {class_name} "
                                  f"(already read from {self.sources[first]}; its image would be overwritten)")
                        continue
                    batch.append((event_id, raw))
                    if len(batch) >= self.batch_size:
                        self._submit(pending, (source, class_name, staging_dir, batch, parse))
                        batch = []
                        self.bar.update(reader.position() - done_bytes)
                        done_bytes = reader.position()
                if batch:
                    self._submit(pending, (source, class_name, staging_dir, batch, parse))
                while pending:
                    self._collect(source, class_name, pending.popleft())
                self.bar.update(reader.position() - done_bytes)
        except (KeyboardInterrupt, Terminated):
            raise  # staged images stay: the same command resumes from them
        except BaseException:  # bad input, a full disk: this file's images go, nothing half-done stays
            for task in pending:
                task.cancel()
            futures_wait(pending)  # let in-flight batches finish before deleting what they write
            if staging:
                staging.discard()
            for writer in (self.spool, self.h5):
                if writer:
                    writer.rollback()
            raise
        finally:
            summary.events_read += read
        summary.files.append((source, class_name, read))
        if staging:
            staging.commit()

    def _submit(self, pending: deque, task: tuple) -> None:
        if self.pool is None:
            self._collect(task[0], task[1], process_batch(self.job, *task))
            return
        pending.append(self.pool.submit(_work, task))
        while len(pending) > self.max_pending:
            self._collect(task[0], task[1], pending.popleft())

    def _bad(self, reason: str, message: str) -> None:
        if self.strict:
            raise ImgenError(f"{message} (--strict)")
        self.summary.bad[reason] += 1
        if len(self.summary.bad_examples) < EXAMPLES:
            self.summary.bad_examples.append(message)
        log.debug("skipped: %s", message)

    def _collect(self, source: str, class_name: str, result: BatchResult | Any) -> None:
        if not isinstance(result, BatchResult):
            try:
                result = result.result()
            except OSError as exc:  # e.g. permission denied, in a worker
                if is_disk_full(exc):
                    raise  # reported by the command as a full disk, naming the folder
                raise ImgenError(f"{source}: cannot write its images: {exc}") from None
        summary = self.summary
        for reason, message in result.bad:
            self._bad(reason, message)
        summary.cut_flow.merge(result.flow)
        summary.missing_met_phi += result.missing_met_phi
        summary.phi_from_momentum += result.phi_from_momentum
        summary.outside_eta_objects += result.outside_eta_objects
        summary.outside_eta_events += result.outside_eta_events
        for event_id, split, status, chunk, run, lumi, weight, weight_source in result.rows:
            path = image_relpath(class_name, event_id)
            target = summary.existing if status == "existing" else summary.rendered
            target.setdefault(class_name, Counter())[split] += 1
            if self.spool:
                self.spool.add(path, class_name, event_id, source, split, run, lumi, weight, weight_source)
            if self.h5:
                self.h5.append(class_name, event_id, split, path, source, chunk, weight, weight_source)
        self.bar.set_postfix_str(f"{summary.n_rendered + summary.n_existing} images", refresh=False)

    def close(self, ok: bool) -> None:
        """End the workers. A stopped run (error, Ctrl-C, SIGTERM) cancels the batches not started and waits
        for the few running (a fraction of a second): a worker killed while it sends its result leaves half a
        message in the result pipe, on which the pool's manager thread then waits for ever."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=not ok)


def render_files(inputs: Iterable[str | os.PathLike] = (), out: str | os.PathLike = "images", *,
                 classes: Mapping[str, str | Sequence[str]] | Sequence[str] | None = None,
                 style: str = "physics", size: int = 224, eta_max: float = 3.0,
                 objects: str | Sequence[str] = OBJECT_KINDS, btag_wp: float = 0.679,
                 pt_scale: Sequence[float] = (1.0, 1000.0),
                 selection: str | Selection = "none",
                 split: str | Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
                 workers: int | None = None, shard: str | tuple[int, int] | None = None,
                 format: str = "png", overwrite: bool = False, strict: bool = False,
                 dry_run: bool = False, progress: bool = False, batch_size: int = BATCH_SIZE,
                 tree: str = "Events", btag_branch: str | None = None, btag_cut: float | None = None
                 ) -> RunSummary:
    """Render every selected event of ``inputs`` into ``out``; the Python face of ``python -m imgen``.

    ``workers=None`` uses all cores, but at most one per 256 kB of input, so
    that a small input is rendered in this process without starting a pool.
    Arguments mirror the command-line options (``--btag-wp`` is ``btag_wp``,
    ``--class`` is ``classes``, cuts go through ``selection``, e.g.
    ``build_selection("paper", n_jets="2+")``; ``tree``, ``btag_branch`` and
    ``btag_cut`` are for NanoAOD ROOT files, see :mod:`imgen.events.nanoaod`). Returns a :class:`RunSummary`;
    raises :class:`ImgenError` on bad input. Example::

        summary = render_files(["json_files/"], "images", size=64, workers=4)
        print(summary.format())
    """
    started = time.perf_counter()
    if format not in FORMATS:
        raise ImgenError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    options = ReadOptions(tree, **({"btag_branch": btag_branch} if btag_branch else {}), btag_cut=btag_cut)
    files = resolve_inputs(inputs, classes)
    btag_wp = run_btag_wp(files, options, btag_wp)
    config = RenderConfig(style=style, size=size, eta_max=eta_max, objects=objects, btag_wp=btag_wp,
                          pt_scale=tuple(pt_scale))
    selection = selection if isinstance(selection, Selection) else build_selection(selection)
    fractions = parse_fractions(split)
    shard = parse_shard(shard)
    if workers is not None and int(workers) < 1:
        raise ImgenError(f"workers {workers}: expected at least 1")
    total_bytes = sum(f.size() for f in files)
    if workers is None:  # all cores, but no pool of processes for a small input
        workers = max(1, min(os.cpu_count() or 1, total_bytes // SMALL_INPUT_PER_WORKER))
    workers = int(workers)
    class_names = sorted({f.class_name for f in files})
    out = Path(out)
    readers = {f.kind: reader_for(f) for f in files}
    read = [line for r in readers.values() if (line := r.describe(options))]
    record = {"version": __version__, "render": config.to_dict(), "selection": selection.to_dict(),
              "split": list(fractions), "seed": int(seed), "format": format, "classes": class_names,
              **({"read": read} if read else {})}
    pixels = {"render_version": RENDER_VERSION, **config.to_dict(),
              **{f"selection.{k}": v for k, v in selection.to_dict().items() if not k.startswith("n_")}}
    for reader in readers.values():
        pixels.update(reader.pixel_settings(options))
    job = Job(config, selection, fractions, int(seed), str(out), format in ("png", "both"),
              format in ("hdf5", "both"), bool(overwrite), bool(dry_run), fingerprint(pixels))
    summary = RunSummary(out=out, cut_flow=CutFlow(selection.cut_names()), workers=workers, shard=shard,
                         dry_run=dry_run, eta_max=config.eta_max, read=read)
    reading = Reading(bool(strict), shard, workers, batch_size, bool(progress), options)
    if dry_run:
        return _render(job, summary, files, reading, total_bytes, class_names, record, started)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImgenError(f"{out}: cannot write the output folder ({exc.strerror or exc})") from None
    try:
        with output_lock(out):
            removed = remove_leftovers(out)  # of runs that were killed: no other run can be writing now
            if removed:
                log.info("%s: removed %d temporary file(s) left by an interrupted run", out, removed)
            try:
                check_and_write_config(out, record, pixels, overwrite)
            except OSError as exc:
                if is_disk_full(exc):
                    raise
                raise ImgenError(f"{out}: cannot write the output folder ({exc.strerror or exc})") from None
            try:
                _render(job, summary, files, reading, total_bytes, class_names, record, started)
            except BaseException:
                discard_stale_config(out)  # a configuration of images that do not exist would refuse the next run
                raise
            if summary.manifest is not None and shard is None:
                summary.removed_stale = remove_unlisted_images(out, summary.manifest)
            write_run_counts(out, summary.counts())
    except BaseException:
        if created:  # nothing of a failed first run stays, not even its folder
            try:
                out.rmdir()
            except OSError:
                pass
        raise
    return summary


def _render(job: Job, summary: RunSummary, files, reading: Reading, total_bytes, class_names, record,
            started) -> RunSummary:
    """Read every file and write (or, dry run, only count) its images; fills ``summary``."""
    out, config = Path(job.out), job.render
    dry_run, shard = job.dry_run, reading.shard
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="imgen", disable=not reading.progress,
               dynamic_ncols=True)
    run = _Run(job, summary, reading, bar)
    ok = False
    try:
        if not dry_run and job.write_png:
            run.spool = ManifestSpool(out)
        if not dry_run and job.write_hdf5:
            run.h5 = Hdf5Writer(out / hdf5_name(shard), config.size, class_names,
                                {"config": _json(record)})
        for item in files:
            run.run_file(item)
        if run.spool:
            summary.manifest = run.spool.finish(manifest_name(shard))
            run.spool = None
        if run.h5:
            summary.hdf5 = run.h5.finish()
            run.h5 = None
        ok = True
    finally:
        run.close(ok)
        bar.close()
        if run.spool:
            run.spool.close()
        if run.h5:
            run.h5.abort()
        summary.seconds = time.perf_counter() - started
    return summary


def _json(data: Mapping) -> str:
    import json

    return json.dumps(data, sort_keys=True)
