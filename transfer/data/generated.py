"""Events of the bundled generator, rendered in memory: the ``generated`` data kind of ``pretrain``.

Pretraining wants thousands of events and needs no files: :func:`generate_sample`
draws them from :mod:`imgen.synth` (each class its own stream of ``seed``),
renders them with :func:`imgen.render.render_event` exactly as ``python -m imgen``
does with its defaults (``physics`` style, no selection), and keeps the uint8
images, a label per event from the chosen :data:`TASKS` entry, and the events'
physics numbers (:func:`imgen.features.event_features`) for the matched
baseline. :class:`GeneratedSource` makes such a sample a
:class:`~transfer.data.DataSource`, so a run trains on it like on an image
folder (same augmentation, same health checks, same report).

Example::

    from transfer.data.generated import generate_sample, GeneratedSource
    sample = generate_sample(events=200, seed=1, image_size=32)
    view = GeneratedSource(sample).view()
    view.counts()
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from imgen.split import SPLITS, split_events
from transfer.data import DataSource, DataView
from transfer.errors import TransferError

log = logging.getLogger(__name__)

#: ``view.kind`` of a generated sample (and its entry in transfer.evaluation.baseline.BASELINE_INPUTS).
KIND = "generated"


def _n_bjets(features: np.ndarray) -> int:
    from imgen.features import FEATURE_NAMES

    return int(features[FEATURE_NAMES.index("n_bjets")])


def _bjet_class(features: np.ndarray) -> str:
    n = _n_bjets(features)
    return f"{min(n, 2)}b" + ("+" if n >= 2 else "")


#: ``--task``: name -> (label of an event from its process and physics numbers, what it is).
#: The label is one softmax class; "process+bjets" joins an auxiliary target to the process.
TASKS: dict[str, tuple[Callable[[str, np.ndarray], str], str]] = {
    "process": (lambda process, features: process, "the generator's processes (TTjets, Wjets, DYjets)"),
    "bjets": (lambda process, features: _bjet_class(features), "number of b-tagged jets drawn: 0b, 1b, 2b+"),
    "process+bjets": (lambda process, features: f"{process}-{_bjet_class(features)}",
                      "process and number of b-tagged jets jointly (up to 9 classes)"),
}


def check_task(task: str) -> None:
    if task not in TASKS:
        raise TransferError(f"--task {task!r}: choose one of {', '.join(TASKS)} "
                            f"({'; '.join(f'{k}: {v[1]}' for k, v in TASKS.items())})")


@dataclass
class GeneratedSample:
    """Rendered events in memory: ``images`` (N, H, W, 3) uint8, a label and an id per event.

    ``record`` says what it is (generator, version, seed, events, task, the
    rendering), for ``pretrained.json`` and the report.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: list[str]
    features: np.ndarray
    record: dict = field(default_factory=dict)


def generate_sample(events: int = 2000, seed: int = 42, image_size: int = 64, task: str = "process",
                    classes: list[str] | None = None, progress: bool = True) -> GeneratedSample:
    """``events`` per generator class, rendered at ``image_size`` px in imgen's default style.

    Deterministic: the same arguments give the same pixels. ``classes``
    restricts the generator's processes (default: all three).
    """
    from tqdm import tqdm

    from imgen import synth
    from imgen._version import __version__
    from imgen.events.cms_json import parse_event
    from imgen.features import event_features
    from imgen.render import RenderConfig, render_event

    check_task(task)
    if events < 1:
        raise TransferError(f"--events {events}: need at least 1 event per class")
    processes = list(classes or synth.CLASS_GENERATORS)
    unknown = [c for c in processes if c not in synth.CLASS_GENERATORS]
    if unknown:
        raise TransferError(f"classes {', '.join(unknown)}: not generator processes "
                            f"({', '.join(synth.CLASS_GENERATORS)})")
    render = RenderConfig(size=int(image_size))  # imgen's defaults: physics style, every object kind
    label_of = TASKS[task][0]
    images = np.zeros((events * len(processes), render.size, render.size, 3), dtype=np.uint8)
    features, names, ids = [], [], []
    with tqdm(total=len(images), unit="event", desc="generating and rendering", disable=not progress) as bar:
        for process in processes:
            for number, raw in synth.generate_events(process, events, seed):
                event = parse_event(number, raw, source=f"imgen.synth:{process}")
                images[len(ids)] = render_event(event, render)
                row = event_features(event, render.btag_wp, render.eta_max, render.objects)
                features.append(row)
                names.append(label_of(process, row))
                ids.append(f"{process}/{number}")
                bar.update(1)
    class_names = sorted(set(names))
    index = {name: k for k, name in enumerate(class_names)}
    record = {"generator": "imgen.synth", "generator_version": synth.GENERATOR_VERSION,
              "hepvision_version": __version__, "seed": int(seed), "events_per_class": int(events),
              "processes": processes, "task": task, "task_description": TASKS[task][1],
              "render": render.to_dict()}
    return GeneratedSample(images=images, labels=np.asarray([index[n] for n in names], dtype=np.int64),
                           class_names=class_names, ids=ids, features=np.stack(features), record=record)


class GeneratedView(DataView):
    """One run's view of a generated sample: uint8 images from memory."""

    kind = KIND
    input_dtype = "uint8"
    #: Full-azimuth eta-phi images as imgen renders them: augmentation on the fly applies.
    is_event_image = True

    def __init__(self, source: "GeneratedSource", splits):
        super().__init__(source, splits)
        self.sample = source.sample
        self.input_shape = tuple(int(s) for s in self.sample.images.shape[1:])
        self.channel_names = ("red", "green", "blue")

    def rows(self, split: str):
        from transfer.data.batches import InMemoryRows

        return InMemoryRows(self.sample.images[self.splits[split]])

    def augmentation(self):
        from transfer.data.batches import physics_augment

        return physics_augment

    def describe(self) -> dict:
        record = self.sample.record
        return {**super().describe(),
                "data": f"{record['generator']} v{record['generator_version']} (seed {record['seed']}, "
                        f"{record['events_per_class']} events per process, task {record['task']}), rendered in "
                        f"memory ({record['render']['style']} style, {record['render']['size']} px)",
                "input_scaling": "uint8 pixels: the backbone's preprocess_input (from scratch: standardised)"}


class GeneratedSource(DataSource):
    """A :class:`GeneratedSample` as a data source, split stratified by ``split`` and ``seed``."""

    kind = KIND

    def __init__(self, sample: GeneratedSample, split: tuple = (0.8, 0.1, 0.1), seed: int = 42):
        self.sample = sample
        self.class_names = list(sample.class_names)
        self.labels_all = sample.labels
        # the one split rule of the project (imgen.split), over the generated events' ids
        self.default_splits = split_events(sample.ids, [self.class_names[int(k)] for k in sample.labels], seed, split)
        self.split_source = "hash of (seed, class, event)"

    def ids(self, indices) -> list[str]:
        return [self.sample.ids[int(i)] for i in indices]

    def view(self, splits=None) -> GeneratedView:
        return GeneratedView(self, self.default_splits if splits is None else splits)

    def describe_origin(self) -> str:
        return f"the generated sample ({self.sample.record.get('generator', 'imgen.synth')})"


def _baseline_inputs(view: GeneratedView, seed: int):
    """The matched baseline of a generated sample: trees on the same physics numbers as for imgen folders."""
    from imgen.features import FEATURE_NAMES
    from transfer.evaluation.baseline import BaselineInputs

    features = {split: view.sample.features[view.splits[split]] for split in SPLITS}
    labels = {split: view.labels(split) for split in SPLITS}
    return BaselineInputs(features, labels, f"physics objects of the generated events ({', '.join(FEATURE_NAMES)})",
                          list(FEATURE_NAMES))


def _register_baseline() -> None:
    from transfer.evaluation.baseline import BASELINE_INPUTS

    BASELINE_INPUTS.setdefault(KIND, _baseline_inputs)


_register_baseline()
