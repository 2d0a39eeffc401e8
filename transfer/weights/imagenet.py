"""ImageNet weights: where Keras keeps them, getting them ahead of time, clear errors.

The weights themselves are always loaded by Keras' own code:
``keras.applications.X(weights="imagenet")`` calls
``keras.utils.get_file(fname, origin, cache_subdir="models", file_hash=...)``,
which uses ``$KERAS_HOME/models/<fname>`` (``KERAS_HOME`` defaults to
``~/.keras``) when the file is there and its hash matches, and downloads it
otherwise. This module makes sure the file is in that cache *before* the model
is built (the same ``get_file`` call, with a quick reachability check first so
that an offline node fails in seconds instead of hanging), so that a missing
file stops the run with a message that names the file, the cache folder and
how to seed it, before any training.

Offline clusters: run ``python -m transfer fetch-weights --backbone NAME`` on a
machine with internet and copy its ``~/.keras/models`` folder to the cluster
(or copy the named file into ``$KERAS_HOME/models`` there), or use
``--weights toy-cms``, a backbone pretrained on the bundled generator's events
and built into ``$KERAS_HOME/models/hepvision-toy-cms/`` on first use, no download
(:mod:`transfer.weights.toy_cms`). ``--weights RUN`` (a run folder or ``RUN/model.keras``)
loads the backbone of an earlier run (:mod:`transfer.weights.run`).
"""
from __future__ import annotations

import hashlib
import logging
import socket
import urllib.parse
import urllib.request
from pathlib import Path

from transfer.errors import TransferError, WeightsUnavailable
from transfer.models.backbones import BackboneSpec, get_backbone
from transfer.weights.cache import ResolvedWeights, weights_cache_dir

log = logging.getLogger(__name__)

#: Seconds to wait for the weights server before declaring it unreachable.
CONNECT_TIMEOUT_S = 5.0
#: Socket timeout while downloading (Keras' urlretrieve has none of its own).
DOWNLOAD_TIMEOUT_S = 60.0


def file_hash_matches(path: Path, expected: str) -> bool:
    """Whether ``path`` has the md5 (32 hex digits) or sha256 (64) ``expected``, as Keras checks."""
    digest = hashlib.sha256() if len(expected) == 64 else hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected


def _server_unreachable(url: str, timeout: float) -> str | None:
    """``None`` when a TCP connection to ``url``'s host (or the https proxy urllib would use) opens."""
    parts = urllib.parse.urlsplit(url)
    host, port, what = parts.hostname, parts.port or 443, parts.hostname
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname, proxy_parts.port or 80
        what = f"the proxy {proxy} (for {parts.hostname})"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{what} cannot be reached ({exc.__class__.__name__}: {exc})"


def missing_weights_message(spec: BackboneSpec, file: str, folder: Path, reason: str) -> str:
    """The error text: the exact file, the cache folder and how to seed it."""
    url = (spec.weights_url or "") + file
    return (
        f"ImageNet weights for backbone {spec.name!r} are not available: {reason}.\n"
        f"  Keras looks for the file   {file}\n"
        f"  in its cache folder        {folder}\n"
        f"  (that is $KERAS_HOME/models; KERAS_HOME defaults to ~/.keras).\n"
        f"To seed the cache on an offline machine, either copy that file there "
        f"(download it from {url}), or run\n"
        f"    python -m transfer fetch-weights --backbone {spec.name}\n"
        f"on a machine with internet and copy its ~/.keras/models folder here.\n"
        f"To train without transfer learning instead, pass --weights none "
        f"(or --on-missing-weights random)."
    )


def ensure_imagenet_weights(spec: BackboneSpec, image_size: tuple | None = None) -> Path:
    """Path of ``spec``'s ImageNet no-top weights in the Keras cache, downloading them if needed.

    Uses Keras' own ``get_file`` (same name, origin and hash as
    ``keras.applications``), so the file lands exactly where
    ``keras.applications.X(weights="imagenet")`` will look for it.

    Raises:
        WeightsUnavailable: not cached (or cached with the wrong hash), and
            the server unreachable or the download failed.
    """
    if not spec.pretrained or spec.weights_file is None:
        raise TransferError(f"backbone {spec.name!r} has no ImageNet weights; use --weights none")
    file = spec.weights_file_for(image_size)
    folder = weights_cache_dir()
    path = folder / file
    if path.is_file():
        if spec.weights_hash is None or file_hash_matches(path, spec.weights_hash):
            return path
        problem = (f"the cached {path} does not have the hash Keras expects ({spec.weights_hash}): "
                   "it is incomplete or a different file")
    else:
        problem = f"{file} is not in the Keras cache"

    def unavailable(reason: str) -> WeightsUnavailable:
        return WeightsUnavailable(missing_weights_message(spec, file, folder, reason), reason, file, folder)

    url = spec.weights_url + file
    unreachable = _server_unreachable(url, CONNECT_TIMEOUT_S)
    if unreachable:
        raise unavailable(f"{problem}, and {unreachable}")
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        fetched = keras.utils.get_file(file, url, cache_subdir="models", file_hash=spec.weights_hash)
    except Exception as exc:  # urllib, hash and disk errors alike: all mean "not available"
        raise unavailable(f"{problem}, and the download from {url} failed ({exc})") from exc
    finally:
        socket.setdefaulttimeout(previous)
    return Path(fetched)


def resolve_imagenet(spec: BackboneSpec, image_size: tuple | None = None,
                     on_missing: str = "error") -> ResolvedWeights:
    """``--weights imagenet``: the cached (or downloaded) file, or with ``on_missing="random"`` a random
    initialisation announced in exactly one WARNING line."""
    if not spec.pretrained:
        raise TransferError(f"backbone {spec.name!r} is a compact network trained from scratch: it has no "
                            "ImageNet weights; pass --weights none (or a weights file of this network)")
    try:
        path = ensure_imagenet_weights(spec, image_size)
    except WeightsUnavailable as exc:
        if on_missing != "random":
            raise
        reason = f"{exc.reason} (Keras cache folder {exc.folder})"
        log.warning("ImageNet weights for %s are unavailable: %s; this run trains from random "
                    "initialisation (not transfer learning).", spec.name, reason)
        return ResolvedWeights(keras_arg=None, used="none", reason=reason)
    return ResolvedWeights(keras_arg="imagenet", used="imagenet", file=str(path))


def fetch_weights(names: list[str], image_size: tuple | None = None) -> list[Path]:
    """Download the ImageNet weights of the named backbones into the Keras cache.

    For ``python -m transfer fetch-weights`` on a machine with internet; the
    files go to ``$KERAS_HOME/models``, ready to be copied to offline nodes.
    """
    specs = [get_backbone(name) for name in names]  # all names checked before any download
    return [ensure_imagenet_weights(spec, image_size) for spec in specs]
