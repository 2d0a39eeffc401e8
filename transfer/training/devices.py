"""Where a run computes: the Keras backend, its devices, the float policy, data parallelism and XLA.

The one module that asks the backend about hardware, keyed on the backend (``--backend``):

* **Backend.** Keras fixes its backend when it is first imported (``KERAS_BACKEND``); :func:`use_backend` sets it
  before that, or checks that the running one is the one asked for. ``--backend`` defaults to ``KERAS_BACKEND``,
  else TensorFlow.
* **Devices.** :func:`hardware` lists the accelerators the backend sees (TensorFlow, JAX or PyTorch GPUs, with
  their compute capability).
* **Float policy** (``--mixed-precision auto|bf16|fp16|off``): bfloat16 compute on GPUs that have it (compute
  capability 8.0 and newer), float16 on older ones, float32 on CPUs; weights stay float32 and the saved model
  computes in float32 (:func:`transfer.models.precision.float32_copy`).
* **Data parallelism** (``--distribute none|mirrored|multiworker``, :data:`DISTRIBUTIONS`): every local device
  (TensorFlow ``MirroredStrategy`` with synchronised BatchNorm, JAX ``keras.distribution.DataParallel``), or
  several processes or nodes (JAX only: the cluster from Keras' ``KERAS_DISTRIBUTION_*`` variables or a Slurm
  allocation; TensorFlow's ``MultiWorkerMirroredStrategy`` does not work with Keras 3, keras-team/keras#20585).
  ``--batch-size`` is the global batch; process I of N feeds its part of every batch; only process 0 writes.
* **XLA** (``--xla``): JAX always compiles with XLA; TensorFlow follows Keras' ``auto``.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

from transfer.errors import OptionError, TransferError

log = logging.getLogger(__name__)

#: ``--backend`` choices: the Keras backend and the package it needs (with the pip extra that installs it).
BACKENDS = {"tensorflow": ("tensorflow", "cpu (or gpu)"), "jax": ("jax", "jax (or jax-gpu)"), "torch": ("torch", None)}
DEFAULT_BACKEND = "tensorflow"
#: ``--mixed-precision`` -> Keras dtype policy (``auto`` is decided from the hardware, ``on`` is the former fp16).
PRECISION_POLICIES = {"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16", "on": "mixed_float16"}
#: GPUs from this compute capability on compute bfloat16 in their tensor cores (NVIDIA Ampere and newer).
BF16_CAPABILITY = (8, 0)
#: Seconds a process of a multi-process job waits for the others (to start, or to answer) before it gives up.
CLUSTER_TIMEOUT_S = int(os.environ.get("HEPVISION_CLUSTER_TIMEOUT", "60"))
#: Seconds without a heartbeat after which a process of a multi-process job counts as dead.
HEARTBEAT_TIMEOUT_S = int(os.environ.get("HEPVISION_HEARTBEAT_TIMEOUT", "20"))
#: How long process 0 may still evaluate and write after training while the others wait to shut down.
SHUTDOWN_TIMEOUT_S = 6 * 3600
#: The variables Keras reads for a multi-process job (keras.distribution.initialize).
CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")


# --------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------

def backend_of(requested: str | None) -> str:
    """``--backend`` resolved: the one asked for, else ``KERAS_BACKEND``, else TensorFlow."""
    name = requested or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise OptionError(f"--backend {name}: expected one of {', '.join(BACKENDS)}")
    return name


def use_backend(requested: str | None = None) -> str:
    """Make Keras compute with the backend ``requested`` (see :func:`backend_of`); returns its name.

    Before Keras is imported this sets ``KERAS_BACKEND``; once it is imported the backend cannot change, so a
    different one is refused (a notebook that wants another backend restarts its kernel).
    """
    name = backend_of(requested)
    package, extra = BACKENDS[name]
    if importlib.util.find_spec(package) is None:
        how = f"pip install 'hepvision[{extra.split()[0]}]'" if extra else f"pip install {package}"
        raise OptionError(f"--backend {name}: {package} is not installed here ({how})")
    if "keras" in sys.modules:
        import keras

        running = keras.backend.backend()
        if running != name:
            raise OptionError(f"--backend {name}: Keras already runs on {running} in this process; set "
                              f"KERAS_BACKEND={name} before keras is first imported (restart the notebook kernel)")
    else:
        os.environ["KERAS_BACKEND"] = name
    return name


def start_backend(config) -> str:
    """Set Keras to ``config.backend`` and, for a multi-process job, join it: before anything asks the backend
    about its devices (JAX's distributed runtime must start first)."""
    name = use_backend(config.backend)
    if config.distribute == "multiworker" and name == "jax":
        join_cluster()
    return name


def running_backend() -> str:
    import keras

    return keras.backend.backend()


# --------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Hardware:
    """What the backend computes on: ``platform`` ``"gpu"`` or ``"cpu"``, the local accelerators' names and
    the lowest compute capability among them (``None`` on CPUs)."""

    backend: str
    platform: str
    devices: int
    names: tuple[str, ...] = ()
    capability: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.platform == "cpu":
            return f"CPU ({self.backend})"
        names = ", ".join(sorted(set(self.names))) or "GPU"
        return f"{self.devices} x {names} ({self.backend})"


def _capability(text) -> tuple[int, int] | None:
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except (ValueError, TypeError):
        return None


def _tensorflow_gpus() -> list[tuple[str, tuple[int, int] | None]]:
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append((details.get("device_name", "GPU"), tuple(details["compute_capability"])
                      if details.get("compute_capability") else None))
    return found


def _jax_gpus() -> list[tuple[str, tuple[int, int] | None]]:
    import jax

    return [(device.device_kind, _capability(getattr(device, "compute_capability", None)))
            for device in jax.local_devices() if device.platform == "gpu"]


def _torch_gpus() -> list[tuple[str, tuple[int, int] | None]]:
    import torch

    return [(torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
            for i in range(torch.cuda.device_count())]


#: backend -> the local GPUs it sees, as (name, compute capability).
GPU_PROBES: dict[str, Callable[[], list]] = {"tensorflow": _tensorflow_gpus, "jax": _jax_gpus, "torch": _torch_gpus}


def hardware() -> Hardware:
    """The accelerators the running Keras backend computes on."""
    backend = running_backend()
    gpus = GPU_PROBES[backend]()
    if not gpus:
        return Hardware(backend, "cpu", 1)
    capabilities = [c for _, c in gpus if c]
    return Hardware(backend, "gpu", len(gpus), tuple(name for name, _ in gpus),
                    min(capabilities) if capabilities else None)


def precision_policy(mode: str, found: Hardware | None = None) -> str:
    """The Keras dtype policy of ``--mixed-precision``: ``auto`` is bf16 on GPUs with compute capability 8.0 or
    newer, fp16 on older GPUs and float32 on CPUs."""
    if mode != "auto":
        if mode != "off" and (found or hardware()).platform == "cpu":
            log.warning("--mixed-precision %s without a GPU: 16-bit compute is slow on CPUs", mode)
        return PRECISION_POLICIES[mode]
    found = found or hardware()
    if found.platform == "cpu":
        return "float32"
    return "mixed_bfloat16" if found.capability and found.capability >= BF16_CAPABILITY else "mixed_float16"


def jit_compile(mode: str, backend: str | None = None):
    """Keras' ``jit_compile`` for ``--xla auto|on|off``; JAX compiles every step with XLA unless ``off``."""
    if (backend or running_backend()) == "jax":
        return mode != "off"
    return {"auto": "auto", "on": True, "off": False}[mode]


@contextmanager
def keras_session(config):
    """A fresh Keras session with ``config``'s float policy (``--mixed-precision``), restored afterwards.

    Earlier runs of this process (folds, scans, notebooks) free their memory.
    """
    import keras

    previous_policy = keras.config.dtype_policy().name
    keras.backend.clear_session()
    try:
        keras.config.set_dtype_policy(precision_policy(config.mixed_precision))
        yield
    finally:
        keras.config.set_dtype_policy(previous_policy)


# --------------------------------------------------------------------------
# Data parallelism
# --------------------------------------------------------------------------

class Distribution:
    """How one run spreads over devices and processes (``--distribute none``: one device, one process).

    ``replicas`` is the number of devices a global batch is split over, ``processes`` the processes that feed
    it; process :attr:`process_index` feeds part :attr:`shard` of every batch and only the :attr:`chief` writes.
    """

    name = "none"
    replicas = 1
    processes = 1
    process_index = 0
    #: Whether a short last training batch is left out (JAX splits a batch evenly over devices or not at all).
    drop_remainder = False

    @property
    def distributed(self) -> bool:
        return self.replicas > 1 or self.processes > 1

    @property
    def chief(self) -> bool:
        return self.process_index == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.process_index, self.processes

    def scope(self):
        """Where models and optimizers are built (a ``tf.distribute`` strategy's scope)."""
        return nullcontext()

    def outside(self):
        """Where a model is built on this process's default device alone (scoring copies)."""
        return nullcontext()

    def synchronise_batch_norm(self, model) -> None:
        """Make the BatchNorm layers of ``model`` normalise over the global batch, not each device's part."""

    def check_batch(self, batch_size: int) -> None:
        if self.drop_remainder and batch_size % self.replicas:
            raise OptionError(f"--batch-size {batch_size}: the global batch is split evenly over {self.replicas} "
                              f"devices, so it must be a multiple of {self.replicas}")

    def describe(self) -> str:
        if not self.distributed:
            return "one device"
        return f"{self.name}: {self.replicas} devices" + (f" in {self.processes} processes" if self.processes > 1
                                                           else "")

    def close(self) -> None:
        """Undo what the distribution set globally."""


class TensorFlowMirrored(Distribution):
    """``tf.distribute.MirroredStrategy`` over every local GPU (or the logical CPUs configured).

    A short last training batch is kept and split unevenly; each replica averages its own part, so those events
    weigh a little unequally (README, "Several GPUs"). Whole batches train what one device trains.
    """

    name = "mirrored"

    def __init__(self):
        import tensorflow as tf

        self.strategy = tf.distribute.MirroredStrategy()
        self.replicas = self.strategy.num_replicas_in_sync

    def scope(self):
        return self.strategy.scope()

    def synchronise_batch_norm(self, model) -> None:
        """BatchNorm under MirroredStrategy normalises each replica's part of the batch unless synchronised
        (8 replicas of a batch of 64: 8 events each). The saved model drops the option again
        (:mod:`transfer.models.precision`), since only TensorFlow accepts it."""
        import keras

        for layer in all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True


def all_layers(model) -> list:
    """Every layer of ``model``, nested models and wrapped layers included."""
    found, pending = [], [model]
    while pending:
        layer = pending.pop()
        found.append(layer)
        pending.extend(getattr(layer, "layers", []) or [])
        if getattr(layer, "layer", None) is not None:
            pending.append(layer.layer)
    return found


class JaxDataParallel(Distribution):
    """``keras.distribution.DataParallel`` over the devices of this process, or of every process of a job."""

    name = "mirrored"
    drop_remainder = True

    def __init__(self, across_processes: bool = False):
        import jax
        import keras

        if across_processes:
            join_cluster()
            self.name = "multiworker"
        self.devices = jax.devices() if across_processes else jax.local_devices()
        self.replicas, self.processes = len(self.devices), jax.process_count() if across_processes else 1
        self.process_index = jax.process_index() if across_processes else 0
        self.layout = keras.distribution.DataParallel(devices=self.devices, auto_shard_dataset=False)
        keras.distribution.set_distribution(self.layout)

    @contextmanager
    def outside(self):
        import keras

        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(self.layout)

    def close(self) -> None:
        import keras

        keras.distribution.set_distribution(None)


_MULTIWORKER_ROUTE = ("run it with --backend jax (pip install 'hepvision[jax]'): every process gets "
                      "KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES and "
                      "KERAS_DISTRIBUTION_PROCESS_ID, or runs inside a Slurm allocation (README, \"Several GPUs\")")

#: (backend, --distribute) -> the distribution.
DISTRIBUTIONS: dict[tuple[str, str], Callable[[], Distribution]] = {
    ("tensorflow", "none"): Distribution,
    ("jax", "none"): Distribution,
    ("torch", "none"): Distribution,
    ("tensorflow", "mirrored"): TensorFlowMirrored,
    ("jax", "mirrored"): JaxDataParallel,
    ("jax", "multiworker"): lambda: JaxDataParallel(across_processes=True),
}
#: (backend, --distribute) that do not work, and the route that does.
REFUSED: dict[tuple[str, str], str] = {
    ("tensorflow", "multiworker"): "--distribute multiworker with TensorFlow: Keras 3 cannot train with "
                                   "MultiWorkerMirroredStrategy (keras-team/keras#20585); " + _MULTIWORKER_ROUTE,
    ("torch", "mirrored"): "--distribute mirrored with PyTorch is not supported here; use --backend jax or tensorflow",
    ("torch", "multiworker"): "--distribute multiworker with PyTorch is not supported here; " + _MULTIWORKER_ROUTE,
}


def check_distribution(backend: str, mode: str) -> None:
    """Refuse a ``--distribute`` the backend cannot do, naming the route that works."""
    if (backend, mode) in REFUSED:
        raise OptionError(REFUSED[(backend, mode)])


def make_distribution(mode: str, backend: str | None = None) -> Distribution:
    """The :class:`Distribution` of ``--distribute`` on the running backend."""
    backend = backend or running_backend()
    check_distribution(backend, mode)
    return DISTRIBUTIONS[(backend, mode)]()


@contextmanager
def open_distribution(config):
    """The run's :class:`Distribution` (``--distribute``), its batch size checked, undone afterwards."""
    distribution = make_distribution(config.distribute)
    try:
        distribution.check_batch(config.batch_size)
        yield distribution
    finally:
        distribution.close()


def writes_results(config) -> bool:
    """Whether this process writes the run's folders: every process but the non-zero ones of a multi-process job."""
    if config.distribute != "multiworker":
        return True
    with open_distribution(config) as distribution:
        return distribution.chief


# --------------------------------------------------------------------------
# A job of several processes (JAX)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Cluster:
    """Who this process is in a multi-process job: ``coordinator`` (process 0's host:port), ``processes``,
    ``index``; all None for a Slurm allocation, whose variables JAX reads itself."""

    coordinator: str | None
    processes: int | None
    index: int | None

    def describe(self) -> str:
        if self.coordinator is None:
            return "the Slurm allocation"
        return f"process {self.index} of {self.processes} (coordinator {self.coordinator})"


def cluster_from_environment(environ=os.environ) -> Cluster:
    """The job from Keras' ``KERAS_DISTRIBUTION_*`` variables, or a Slurm allocation (``srun``); refused otherwise."""
    addresses, count, index = (environ.get(name, "").strip() for name in CLUSTER_VARIABLES)
    if addresses or count or index:
        missing = [name for name, value in zip(CLUSTER_VARIABLES, (addresses, count, index)) if not value]
        if missing:
            raise OptionError(f"--distribute multiworker: {', '.join(missing)} not set (every process needs all "
                              f"three: {', '.join(CLUSTER_VARIABLES)})")
        hosts = [a.strip() for a in addresses.split(",") if a.strip()]
        try:
            count_n, index_n = int(count), int(index)
        except ValueError:
            raise OptionError(f"--distribute multiworker: KERAS_DISTRIBUTION_NUM_PROCESSES={count!r} and "
                              f"KERAS_DISTRIBUTION_PROCESS_ID={index!r} must be whole numbers") from None
        if not 0 <= index_n < count_n or len(hosts) not in (1, count_n) or ":" not in hosts[0]:
            raise OptionError(f"--distribute multiworker: KERAS_DISTRIBUTION_JOB_ADDRESSES={addresses!r} with "
                              f"{count_n} processes and process id {index_n}: expected host:port of process 0 "
                              f"(or one per process) and 0 <= id < processes")
        return Cluster(hosts[0], count_n, index_n)
    if environ.get("SLURM_JOB_ID") and int(environ.get("SLURM_NTASKS", "1")) > 1:
        return Cluster(None, None, None)
    raise OptionError("--distribute multiworker: no cluster; set KERAS_DISTRIBUTION_JOB_ADDRESSES (host:port of "
                      "process 0), KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID on every "
                      "process, or start the processes with srun in a Slurm allocation")


def wait_for_coordinator(address: str, timeout_s: float, where: str) -> None:
    """Return once ``address`` accepts connections; a clear error after ``timeout_s`` (JAX would abort)."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TransferError(f"--distribute multiworker, {where}: the coordinator {address} (process 0) did "
                                    f"not answer within {timeout_s:.0f} s ({exc.strerror or exc}); start process 0, "
                                    "or check KERAS_DISTRIBUTION_JOB_ADDRESSES") from None
            time.sleep(0.5)


_JOINED: Cluster | None = None


def join_cluster() -> Cluster:
    """Start (process 0) or join the job's JAX distributed runtime, once per process, with bounded timeouts: a
    missing process makes the others stop after :data:`CLUSTER_TIMEOUT_S`, a dead one after
    :data:`HEARTBEAT_TIMEOUT_S`."""
    global _JOINED
    if _JOINED is not None:
        return _JOINED
    import jax

    cluster = cluster_from_environment()
    if cluster.index:
        wait_for_coordinator(cluster.coordinator, CLUSTER_TIMEOUT_S, cluster.describe())
    log.info("joining the job as %s", cluster.describe())
    jax.distributed.initialize(cluster.coordinator, cluster.processes, cluster.index,
                               initialization_timeout=CLUSTER_TIMEOUT_S,
                               heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
                               shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    _JOINED = cluster
    return cluster
