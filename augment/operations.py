"""Augmentor operations for eta-phi event images.

Two kinds live here, all subclasses of ``Augmentor.Operations.Operation`` so
that they compose with the library's own operations in an
``Augmentor.Pipeline`` (``pipeline.add_operation(op)``):

* **Physics-valid operations** that map a possible event to another possible
  event: :class:`PhiShift` (cyclic shift along phi; the detector is symmetric
  in phi), :class:`EtaFlip` (reflection eta -> -eta) and :class:`PhiFlip`
  (reflection phi -> -phi). They move whole pixels: no interpolation, no
  pixel value changes, total intensity conserved.
* **Fixed versions of Augmentor operations** that the ``paper`` preset uses:
  :class:`SafeShear` (Augmentor's ``Shear`` crashes on current Pillow for tall
  or wide images), :class:`QuietSkew` (``Skew`` uses the deprecated
  ``numpy.matrix``) and :class:`BackgroundFill`, a wrapper that paints the
  area a rotation, shear or skew exposes with the image's own background
  instead of black.

Like Augmentor's, every operation draws its random numbers from Python's
global :mod:`random` module, once per call (so all images of one call get the
same transformation); ``augment.pipeline.augment_image`` seeds that state per
generated image and restores it afterwards.

Image axes follow the project convention: eta horizontal (columns), phi
vertical (rows, phi = +pi at the top row). The flips are exact reflections
when the image's eta range is symmetric about 0 and its phi range covers the
full circle, as ``imgen`` renders them; the phi shift needs the full circle.
"""
from __future__ import annotations

import math
import random
import warnings
from typing import Sequence

import numpy as np
from Augmentor.Operations import Operation, Shear, Skew
from PIL import Image, ImageChops

__all__ = [
    "PhiShift",
    "EtaFlip",
    "PhiFlip",
    "SafeShear",
    "QuietSkew",
    "BackgroundFill",
    "background_color",
]


# --------------------------------------------------------------------------
# Physics-valid operations
# --------------------------------------------------------------------------

class PhiShift(Operation):
    """Cyclic shift along phi (the vertical axis): rows leaving one edge come back on the other.

    ``shift`` fixes the number of rows (positive moves content down, as
    ``np.roll(array, shift, axis=0)``); by default each call draws it
    uniformly from 1 to height - 1, i.e. every rotation of the detector about
    the beam axis by a whole number of pixels except the identity.
    """

    def __init__(self, probability: float, shift: int | None = None):
        super().__init__(probability)
        self.shift = shift

    def __str__(self) -> str:
        return "PhiShift" if self.shift is None else f"PhiShift(shift={self.shift})"

    def perform_operation(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        height = images[0].size[1]
        if self.shift is None:
            shift = random.randint(1, height - 1) if height > 1 else 0
        else:
            shift = self.shift
        # ImageChops.offset wraps around the edges and keeps the mode.
        return [ImageChops.offset(image, 0, shift % image.size[1]) for image in images]


class EtaFlip(Operation):
    """Reflection in eta (eta -> -eta): mirror left-right. Same pixels as Augmentor's ``flip_left_right``."""

    def perform_operation(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        return [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in images]


class PhiFlip(Operation):
    """Reflection in phi (phi -> -phi): mirror top-bottom. Same pixels as Augmentor's ``flip_top_bottom``."""

    def perform_operation(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        return [image.transpose(Image.Transpose.FLIP_TOP_BOTTOM) for image in images]


# --------------------------------------------------------------------------
# Fixed Augmentor operations (used by the ``paper`` preset)
# --------------------------------------------------------------------------

class SafeShear(Shear):
    """Augmentor's ``Shear`` with the crash on tall or wide images fixed.

    Augmentor shears, crops away the sheared-in margin and resizes back. When
    the margin is wider than the image (``tan(angle) * height > width``, e.g. a
    16x64 image sheared by 20 degrees) the crop box is inverted, which current
    Pillow rejects with ``ValueError: Coordinate 'right' is less than 'left'``.
    Here, in exactly those cases (margin at least as large as the image),
    the margin is capped at half the image; everywhere else the random draws
    and the result are exactly Augmentor's. With the default 20 degrees the
    cap is only reached for images more than about 2.6 times taller than
    wide (or wider than tall).
    """

    def perform_operation(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        width, height = images[0].size
        # Augmentor's own draws, in its order and with its quirks (no 0, -1 twice).
        angle = int(random.uniform(-abs(self.max_shear_left) - 1, self.max_shear_right + 1))
        if angle != -1:
            angle += 1
        direction = random.choice(["x", "y"])

        slope = math.tan(math.radians(angle))
        if direction == "x":
            shift = slope * height
            shift = math.ceil(shift) if shift > 0 else math.floor(shift)
            size = width
        else:
            shift = slope * width
            size = height
        if abs(shift) >= size:                       # the fix: Augmentor's crop box would be empty or inverted
            shift = math.copysign(size // 2, shift)
            slope = shift / (height if direction == "x" else width)
        offset = shift
        if angle <= 0:
            shift, offset, slope = abs(shift), 0, -abs(slope)

        def do(image: Image.Image) -> Image.Image:
            if direction == "x":
                matrix = (1, slope, -offset, 0, 1, 0)
                size = (int(round(width + shift)), height)
                box = (abs(shift), 0, width, height)
            else:
                matrix = (1, 0, 0, slope, 1, -offset)
                size = (width, int(round(height + shift)))
                box = (0, abs(shift), width, height)
            image = image.transform(size, Image.Transform.AFFINE, matrix, Image.Resampling.BICUBIC)
            return image.crop(box).resize((width, height), resample=Image.Resampling.BICUBIC)

        return [do(image) for image in images]


class QuietSkew(Skew):
    """Augmentor's ``Skew``, without the ``numpy.matrix`` PendingDeprecationWarning on every call."""

    def perform_operation(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="the matrix subclass", category=PendingDeprecationWarning)
            return super().perform_operation(images)


def background_color(image: Image.Image) -> tuple[int, ...]:
    """The most common pixel value of ``image`` as a tuple (one entry per band).

    For event images that is the empty detector: black for intensity images,
    white for an outline style on white, ``(0, 0, 0, 0)`` for a transparent
    RGBA background. Ties go to the smallest value, so it is deterministic.
    """
    colors = image.getcolors(image.size[0] * image.size[1])
    _, color = min(colors, key=lambda item: (-item[0], item[1]))
    return tuple(color) if isinstance(color, tuple) else (color,)


def _from_array(array: np.ndarray, mode: str) -> Image.Image:
    if array.ndim == 2:                      # mode "L"
        return Image.fromarray(array)
    return Image.merge(mode, [Image.fromarray(np.ascontiguousarray(array[..., band]))
                              for band in range(array.shape[-1])])


def _fill_exposed(image: Image.Image, coverage: Image.Image, background: tuple[int, ...]) -> Image.Image:
    """Paint where ``coverage`` < 255 (area the transform brought in from outside) with ``background``."""
    cover = np.asarray(coverage, dtype=np.float64) / 255.0
    if cover.min() >= 1.0:
        return image
    exposed = np.clip(1.0 - cover, 0.0, 1.0)
    pixels = np.asarray(image, dtype=np.float64)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    bg = np.asarray(background, dtype=np.float64)
    if image.mode in ("LA", "RGBA"):
        # Pillow resamples these premultiplied and returns straight alpha, so
        # composite "image over background" where the image has no coverage.
        colour, alpha = pixels[..., :-1], pixels[..., -1:] / 255.0
        bg_colour, bg_alpha = bg[:-1], bg[-1] / 255.0
        out_alpha = alpha + bg_alpha * exposed[..., None]
        weighted = colour * alpha + bg_colour * bg_alpha * exposed[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):
            out_colour = np.where(out_alpha > 0, weighted / out_alpha, bg_colour)
        result = np.concatenate([out_colour, out_alpha * 255.0], axis=-1)
    else:
        # The transform filled with 0, so add the background in proportion to the exposure.
        result = pixels + exposed[..., None] * bg
    result = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    if result.shape[-1] == 1:
        result = result[..., 0]
    return _from_array(result, image.mode)


class BackgroundFill(Operation):
    """Run a geometric Augmentor operation and fill what it exposes with each image's background.

    Rotation, shear and skew bring in area from outside the image, which
    Pillow fills with 0 (black, or transparent for RGBA); Augmentor's
    ``rotate`` also leaves such pixels at the borders after its crop. That is
    the right colour for black-background event images (and then the result is
    exactly the wrapped operation's), but draws black corners into a
    white-background image. The wrapper passes a coverage mask through the
    same transformation (Augmentor operations apply one random draw to every
    image of a call) and paints the uncovered part with
    :func:`background_color` of the input. Mode and size are kept.
    """

    def __init__(self, operation: Operation):
        super().__init__(operation.probability)
        self.operation = operation

    def __str__(self) -> str:
        return str(self.operation)

    def perform_operation(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        backgrounds = [background_color(image) for image in images]
        if not any(any(bg) for bg in backgrounds):
            return self.operation.perform_operation(list(images))
        mask = Image.new("L", images[0].size, 255)
        out = self.operation.perform_operation(list(images) + [mask])
        coverage = out[-1]
        return [_fill_exposed(image, coverage, bg) for image, bg in zip(out[:-1], backgrounds)]
