"""One event -> one eta-phi image (a uint8 RGB array). Pure and deterministic.

Geometry (both styles). The image is ``size x size`` pixels. Eta runs left to
right over ``[-eta_max, eta_max]``, phi top to bottom from +pi to -pi (+pi at
the top row). Pixel column ``i`` covers ``eta_min + i * size_eta`` to the next
edge, so an object is centred at ``x = (eta + eta_max) / (2 eta_max) * size -
0.5`` and ``y = (pi - phi) / (2 pi) * size - 0.5`` (pixel centres are at
integer coordinates; drawing uses 1/16-pixel fixed point). Phi is periodic: an
object whose shape crosses the top or bottom edge is drawn a second time
shifted by 2 pi, so it appears on both edges and is never clipped. Eta is not
periodic: objects beyond ``eta_max`` are clipped. MET is drawn at eta = 0,
phi = met_phi, and not at all when the event has no met_phi (or no met).

``style="physics"`` (the default; made for a network). Black background,
three channels, each object a filled shape of a fixed size in eta-phi:

=======  ========  =======  ======================================
channel  kind      shape    radius (eta-phi units)
=======  ========  =======  ======================================
R        jet       disk     0.4
R        bjet      square   0.4 (half-side 0.4 * sqrt(pi)/2: same area)
R        tau       diamond  0.4 (half-diagonal 0.4 * sqrt(pi/2))
G        electron  disk     0.2
G        muon      square   0.2
G        photon    diamond  0.2
B        met       disk     0.4, at eta = 0, phi = met_phi
=======  ========  =======  ======================================

Radii are at least one pixel. A jet is a ``bjet`` when its CSV score is
above ``btag_wp``. Every pixel of an object's shape gets the value::

    t     = clip(ln(pt / pt_min) / ln(pt_max / pt_min), 0, 1)
    value = 64 + floor(191 * t + 0.5)

with ``(pt_min, pt_max) = pt_scale`` (default 1 and 1000 GeV, MET uses its
magnitude), so 0 means "nothing here", 64 the softest object and 255 anything
at or above pt_max; in between, one step of value is a 3.7 % step in pt
(with the default scale). Where shapes of one channel overlap, the pixel keeps the maximum.
Shapes are not anti-aliased, so every pixel holds an exact value. Why this is
the default: a network gets the object type from the channel and the shape,
and pt from the intensity, with nothing lost to blending; the outline style
below is kept to reproduce the published images.

``style="outline"`` (the published style). White background, each object an
unfilled anti-aliased ellipse, semi-axes ``0.08 * ln(1 + pt/GeV)`` in eta-phi
units, line width ``max(1, round(size / 112))`` pixels, in RGB colours:
electrons blue (0, 0, 255), muons green (0, 160, 0), jets red (255, 0, 0),
b-tagged jets dark red (139, 0, 0), MET black, photons orange (255, 140, 0),
taus purple (128, 0, 128).

Arrays are RGB. :func:`encode_png` writes 8-bit RGB PNGs with no row filter
and deflate level 1, through ISA-L (the ``isal`` package, 4-5x faster than
zlib, which is most of the cost of an image) when it is installed, else
through OpenCV. Same event and config, same array; with the same installed
encoder, same PNG bytes (the pixels never depend on the encoder).
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from imgen.errors import ImgenError
from imgen.events.cms_json import parse_event
from imgen.events.model import Event, PhysicsObject

try:  # ISA-L deflate: zlib-compatible output, several times faster
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the installation
    _isal_zlib = None

STYLES = ("physics", "outline")
#: Kinds of object that ``objects`` may select; a ``bjet`` is a jet with CSV above the working point.
OBJECT_KINDS = ("jet", "bjet", "electron", "muon", "met", "photon", "tau")
#: Bumped whenever a change to this module changes pixels (resume checks it).
RENDER_VERSION = 1

CSV_MEDIUM = 0.679
VALUE_MIN = 64
_SHIFT = 4
_ONE = 1 << _SHIFT
_DRAW_ORDER = {kind: i for i, kind in enumerate(("jet", "bjet", "tau", "photon", "electron", "muon", "met"))}

#: physics style: kind -> (channel index in RGB, shape, radius in eta-phi units)
PHYSICS_SHAPES = {
    "jet": (0, "disk", 0.4), "bjet": (0, "square", 0.4), "tau": (0, "diamond", 0.4),
    "electron": (1, "disk", 0.2), "muon": (1, "square", 0.2), "photon": (1, "diamond", 0.2),
    "met": (2, "disk", 0.4),
}
#: outline style: kind -> RGB colour
OUTLINE_COLOURS = {
    "jet": (255, 0, 0), "bjet": (139, 0, 0), "tau": (128, 0, 128), "photon": (255, 140, 0),
    "electron": (0, 0, 255), "muon": (0, 160, 0), "met": (0, 0, 0),
}
OUTLINE_SCALE = 0.08
_SQUARE = math.sqrt(math.pi) / 2      # half-side of the square with the disk's area
_DIAMOND = math.sqrt(math.pi / 2)     # half-diagonal of the diamond with the disk's area

_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10: no adaptive filtering, 3x faster
    _PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


@dataclass(frozen=True)
class RenderConfig:
    """How events become pixels. Energies in GeV."""

    style: str = "physics"
    size: int = 224
    eta_max: float = 3.0
    objects: tuple[str, ...] = OBJECT_KINDS
    btag_wp: float = CSV_MEDIUM
    pt_scale: tuple[float, float] = (1.0, 1000.0)
    _log_range: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ImgenError(f"style {self.style!r}: expected one of {', '.join(STYLES)}")
        if int(self.size) != self.size or not 8 <= self.size <= 4096:
            raise ImgenError(f"size {self.size!r}: expected a whole number of pixels from 8 to 4096")
        if not (math.isfinite(self.eta_max) and self.eta_max > 0):
            raise ImgenError(f"eta_max {self.eta_max!r}: expected a positive number")
        objects = parse_objects(self.objects)
        low, high = (float(v) for v in self.pt_scale)
        if not (0 < low < high and math.isfinite(high)):
            raise ImgenError(f"pt_scale {self.pt_scale!r}: expected 0 < MIN < MAX (GeV)")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "objects", objects)
        object.__setattr__(self, "pt_scale", (low, high))
        object.__setattr__(self, "btag_wp", float(self.btag_wp))
        object.__setattr__(self, "_log_range", math.log(high / low))

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("_log_range")
        data["objects"] = list(self.objects)
        data["pt_scale"] = list(self.pt_scale)
        return data


def parse_objects(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"jet,bjet,muon"`` -> ('jet', 'bjet', 'muon') in canonical order; ``"all"`` for all."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    items = [s for s in items if s]
    if items == ["all"]:
        return OBJECT_KINDS
    unknown = [s for s in items if s not in OBJECT_KINDS]
    if unknown or not items:
        raise ImgenError(f"objects {spec!r}: expected a comma-separated subset of {','.join(OBJECT_KINDS)}")
    return tuple(k for k in OBJECT_KINDS if k in items)


def pixel_value(pt: float, config: RenderConfig) -> int:
    """Physics-style intensity of an object of transverse momentum ``pt`` (GeV)."""
    low = config.pt_scale[0]
    t = math.log(pt / low) / config._log_range if pt > low else 0.0
    return VALUE_MIN + int(math.floor((255 - VALUE_MIN) * min(t, 1.0) + 0.5))


def outline_radius(pt: float) -> float:
    """Outline-style ellipse semi-axis, in eta-phi units."""
    return OUTLINE_SCALE * math.log1p(max(pt, 0.0))


def drawn_objects(event: Event, config: RenderConfig) -> list[PhysicsObject]:
    """Objects to draw, kinds resolved (jet -> bjet above the working point),
    MET added as an object at eta = 0; in drawing order."""
    wanted = config.objects
    out = []
    for obj in event.objects:
        kind = obj.kind
        if kind == "jet" and obj.btag is not None and obj.btag > config.btag_wp:
            kind = "bjet"
        if kind in wanted:
            out.append(obj if kind == obj.kind else obj._replace(kind=kind))
    if "met" in wanted and event.met is not None and event.met_phi is not None:
        out.append(PhysicsObject("met", event.met, 0.0, event.met_phi))
    order = _DRAW_ORDER
    return sorted(out, key=lambda o: order[o.kind])  # stable: input order within a kind


def render_event(event: Event | Mapping[str, Any], config: RenderConfig = RenderConfig()) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 RGB image of one event.

    ``event`` is an :class:`~imgen.events.model.Event` or a raw CMS event dict
    (validated first). Selection is not applied here: pass a selected event.
    """
    if not isinstance(event, Event):
        event = parse_event("event", event)
    objects = drawn_objects(event, config)
    if config.style == "physics":
        return _render_physics(objects, config)
    return _render_outline(objects, config)


def render_png(event: Event | Mapping[str, Any], config: RenderConfig = RenderConfig()) -> bytes:
    """``encode_png(render_event(event, config))``, the shortest way."""
    return encode_png(render_event(event, config))


def _scales(config: RenderConfig) -> tuple[float, float]:
    return config.size / (2.0 * config.eta_max), config.size / (2.0 * math.pi)


def _centre(obj: PhysicsObject, config: RenderConfig, sx: float, sy: float) -> tuple[float, float]:
    return (obj.eta + config.eta_max) * sx - 0.5, (math.pi - obj.phi) * sy - 0.5


def _wrapped(y: float, reach: float, size: int) -> tuple[float, ...]:
    """y and, when the shape crosses the top or bottom edge, its copy 2 pi away."""
    if y - reach < -0.5:
        return y, y + size
    if y + reach > size - 0.5:
        return y, y - size
    return (y,)


def _fx(v: float) -> int:
    return int(math.floor(v * _ONE + 0.5))


def _render_physics(objects: list[PhysicsObject], config: RenderConfig) -> np.ndarray:
    size = config.size
    sx, sy = _scales(config)
    planes = [np.zeros((size, size), np.uint8) for _ in range(3)]
    todo = []
    for order, obj in enumerate(objects):
        channel, shape, radius = PHYSICS_SHAPES[obj.kind]
        todo.append((channel, pixel_value(obj.pt, config), order, obj, shape, radius))
    todo.sort(key=lambda t: t[:3])  # ascending value per channel: overlaps keep the max
    for channel, value, _, obj, shape, radius in todo:
        plane = planes[channel]
        x, y = _centre(obj, config, sx, sy)
        ax, ay = max(radius * sx, 1.0), max(radius * sy, 1.0)
        if shape == "square":
            ax, ay = ax * _SQUARE, ay * _SQUARE
        elif shape == "diamond":
            ax, ay = ax * _DIAMOND, ay * _DIAMOND
        for yy in _wrapped(y, ay, size):
            if shape == "disk":
                cv2.ellipse(plane, (_fx(x), _fx(yy)), (_fx(ax), _fx(ay)), 0, 0, 360, value, -1,
                            cv2.LINE_8, _SHIFT)
            elif shape == "square":
                cv2.rectangle(plane, (_fx(x - ax), _fx(yy - ay)), (_fx(x + ax), _fx(yy + ay)), value, -1,
                              cv2.LINE_8, _SHIFT)
            else:
                points = np.array([[_fx(x), _fx(yy - ay)], [_fx(x + ax), _fx(yy)],
                                   [_fx(x), _fx(yy + ay)], [_fx(x - ax), _fx(yy)]], np.int32)
                cv2.fillConvexPoly(plane, points, value, cv2.LINE_8, _SHIFT)
    return cv2.merge(planes)


def _render_outline(objects: list[PhysicsObject], config: RenderConfig) -> np.ndarray:
    size = config.size
    sx, sy = _scales(config)
    image = np.full((size, size, 3), 255, np.uint8)
    thickness = max(1, round(size / 112))
    for obj in objects:
        x, y = _centre(obj, config, sx, sy)
        radius = outline_radius(obj.pt)
        ax, ay = max(radius * sx, 1.0), max(radius * sy, 1.0)
        colour = OUTLINE_COLOURS[obj.kind]
        for yy in _wrapped(y, ay + thickness, size):
            cv2.ellipse(image, (_fx(x), _fx(yy)), (_fx(ax), _fx(ay)), 0, 0, 360, colour, thickness,
                        cv2.LINE_AA, _SHIFT)
    return image


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB (or grey) uint8 image, fixed encoder settings."""
    if _isal_zlib is not None:
        return _png_deflate(image)
    return _png_opencv(image)


def _png_opencv(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", image, _PNG_PARAMS)
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise ImgenError("PNG encoding failed")
    return buffer.tobytes()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}   # channels -> grey, RGB, RGBA


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _png_deflate(image: np.ndarray, compress=None) -> bytes:
    """PNG written here: filter byte 0 before each row, one IDAT deflated at level 1."""
    compress = compress or (lambda data: _isal_zlib.compress(data, 1))
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    rows = np.empty((height, width * channels + 1), np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = image.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPE[channels], 0, 0, 0)
    return b"".join((_PNG_SIGNATURE, _png_chunk(b"IHDR", header), _png_chunk(b"IDAT", compress(rows)),
                     _png_chunk(b"IEND", b"")))


def decode_png(data: bytes) -> np.ndarray:
    """RGB array of PNG bytes written by :func:`encode_png` (for tests and notebooks)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImgenError("not a readable PNG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image
