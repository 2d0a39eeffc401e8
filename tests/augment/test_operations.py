"""augment.operations: the physics-valid operations and the fixed Augmentor operations, on real PIL images."""
import random

import Augmentor
import numpy as np
import pytest
from Augmentor.Operations import Operation, RotateRange, Shear, Skew, ZoomRandom
from PIL import Image

from augment.operations import BackgroundFill, EtaFlip, PhiFlip, PhiShift, QuietSkew, SafeShear, background_color

MODES = ("L", "RGB", "RGBA")


def event_array(height=40, width=32, channels=None, seed=0, background=0):
    """A sparse event-like image: background plus a few bright blobs of different sizes."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    array = np.full(shape, background, dtype=np.uint8)
    for _ in range(4):
        row, col, size = rng.integers(0, height - 3), rng.integers(0, width - 3), rng.integers(1, 4)
        array[row:row + size, col:col + size] = rng.integers(60, 256)
    if channels == 4:
        array[..., 3] = 255
    return array


def event_image(mode="L", **kwargs):
    channels = {"L": None, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    image = Image.fromarray(event_array(channels=channels, **kwargs))
    assert image.mode == mode
    return image


def run(op, image, seed=0):
    random.seed(seed)
    return op.perform_operation([image])[0]


# ---------------------------------------------------------------- phi shift

@pytest.mark.parametrize("mode", MODES)
def test_phi_shift_matches_np_roll_along_phi_for_every_shift(mode):
    image = event_image(mode)
    array = np.asarray(image)
    for shift in range(-3, image.height + 3):
        out = PhiShift(1.0, shift=shift).perform_operation([image])[0]
        assert out.mode == mode and out.size == image.size
        np.testing.assert_array_equal(np.asarray(out), np.roll(array, shift, axis=0))
        # cyclic: nothing is lost, total intensity per eta column is conserved
        np.testing.assert_array_equal(np.asarray(out, dtype=np.int64).sum(axis=0),
                                      array.astype(np.int64).sum(axis=0))


def test_phi_shift_by_full_height_returns_the_original():
    image = event_image("RGB")
    out = PhiShift(1.0, shift=image.height).perform_operation([image])[0]
    assert out.tobytes() == image.tobytes()
    twice = PhiShift(1.0, shift=image.height * 2 + 5).perform_operation([image])[0]
    assert twice.tobytes() == PhiShift(1.0, shift=5).perform_operation([image])[0].tobytes()


def test_phi_shift_random_amount_is_a_nontrivial_cyclic_shift():
    image = event_image("L")
    array = np.asarray(image)
    seen = set()
    for seed in range(60):
        out = np.asarray(run(PhiShift(1.0), image, seed))
        matches = [k for k in range(image.height) if np.array_equal(out, np.roll(array, k, axis=0))]
        assert matches and 0 not in matches
        seen.add(matches[0])
    assert len(seen) > 10            # the amount really is random


def test_phi_shift_same_random_state_same_shift():
    image = event_image("L")
    assert run(PhiShift(1.0), image, 7).tobytes() == run(PhiShift(1.0), image, 7).tobytes()


# ---------------------------------------------------------------- reflections

def test_eta_flip_moves_an_object_to_the_mirrored_eta_column():
    array = np.zeros((20, 30), dtype=np.uint8)
    array[4, 6] = 200                          # one object at eta column 6
    out = np.asarray(EtaFlip(1.0).perform_operation([Image.fromarray(array)])[0])
    assert list(zip(*np.nonzero(out))) == [(4, 30 - 1 - 6)]
    assert out[4, 23] == 200


def test_phi_flip_moves_an_object_to_the_mirrored_phi_row():
    array = np.zeros((20, 30), dtype=np.uint8)
    array[4, 6] = 200
    out = np.asarray(PhiFlip(1.0).perform_operation([Image.fromarray(array)])[0])
    assert list(zip(*np.nonzero(out))) == [(20 - 1 - 4, 6)]


@pytest.mark.parametrize("mode", MODES)
def test_flips_are_exact_and_keep_mode(mode):
    image = event_image(mode)
    array = np.asarray(image)
    eta = EtaFlip(1.0).perform_operation([image])[0]
    phi = PhiFlip(1.0).perform_operation([image])[0]
    assert eta.mode == phi.mode == mode
    np.testing.assert_array_equal(np.asarray(eta), array[:, ::-1])
    np.testing.assert_array_equal(np.asarray(phi), array[::-1])


def test_physics_ops_compose_in_an_augmentor_pipeline():
    pipeline = Augmentor.Pipeline()
    for op in (PhiShift(1.0), EtaFlip(0.5), PhiFlip(0.5)):
        assert isinstance(op, Operation)
        pipeline.add_operation(op)
    pipeline.rotate(probability=1, max_left_rotation=5, max_right_rotation=5)
    assert len(pipeline.operations) == 4


# ---------------------------------------------------------------- paper ops on current Pillow

PAPER_OPS = {
    "rotate": lambda: BackgroundFill(RotateRange(1.0, 5, 5)),
    "zoom_random": lambda: ZoomRandom(1.0, 0.8, False),
    "shear": lambda: BackgroundFill(SafeShear(1.0, 20, 20)),
    "skew": lambda: BackgroundFill(QuietSkew(1.0, "RANDOM", 1)),
    "eta_flip": lambda: EtaFlip(1.0),
    "phi_flip": lambda: PhiFlip(1.0),
}


@pytest.mark.parametrize("name", PAPER_OPS)
@pytest.mark.parametrize("mode", MODES + ("LA",))
@pytest.mark.parametrize("size", [(32, 32), (16, 64), (64, 16)])
def test_each_paper_op_runs_on_current_pillow_and_keeps_size_and_mode(name, mode, size):
    width, height = size
    image = event_image(mode, height=height, width=width)
    for seed in range(25):                     # covers every random branch (skew types, shear axes)
        out = run(PAPER_OPS[name](), image, seed)
        assert out.size == image.size and out.mode == mode


def test_augmentor_shear_is_broken_on_tall_images_and_safe_shear_is_not():
    image = event_image("L", height=64, width=16)
    failures = 0
    for seed in range(40):
        random.seed(seed)
        try:
            Shear(1.0, 20, 20).perform_operation([image])
        except ValueError:                      # "Coordinate 'right' is less than 'left'"
            failures += 1
        out = run(SafeShear(1.0, 20, 20), image, seed)
        assert out.size == image.size and np.asarray(out).any()     # never crashes, never blank
    assert failures > 0                         # the bug SafeShear exists for


@pytest.mark.parametrize("mode", MODES)
def test_safe_shear_is_exactly_augmentors_shear_where_that_works(mode):
    image = event_image(mode, height=32, width=40)
    for seed in range(30):
        assert run(SafeShear(1.0, 20, 20), image, seed).tobytes() == run(Shear(1.0, 20, 20), image, seed).tobytes()


def test_quiet_skew_is_augmentors_skew_without_warnings(recwarn):
    image = event_image("RGB")
    for seed in range(10):
        assert run(QuietSkew(1.0, "RANDOM", 1), image, seed).tobytes() == \
            run(Skew(1.0, "RANDOM", 1), image, seed).tobytes()
    recwarn.clear()
    run(QuietSkew(1.0, "RANDOM", 1), image, 3)
    assert not [w for w in recwarn if issubclass(w.category, PendingDeprecationWarning)]


# ---------------------------------------------------------------- background fill

def test_background_color_is_the_most_common_pixel():
    assert background_color(event_image("L")) == (0,)
    assert background_color(event_image("RGB", background=255)) == (255, 255, 255)
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    assert background_color(Image.fromarray(rgba)) == (0, 0, 0, 0)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_black_background_gives_exactly_the_wrapped_operation(mode):
    image = event_image(mode, height=32, width=32)
    for seed in range(15):
        assert run(BackgroundFill(RotateRange(1.0, 5, 5)), image, seed).tobytes() == \
            run(RotateRange(1.0, 5, 5), image, seed).tobytes()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_rotation_of_a_white_background_image_brings_in_no_black(mode):
    white = Image.new(mode, (32, 32), (255,) * len(mode))
    black_corners = 0
    for seed in range(30):
        raw = np.asarray(run(RotateRange(1.0, 5, 5), white, seed))
        black_corners += int((raw < 200).any())
        for op in (BackgroundFill(RotateRange(1.0, 5, 5)), BackgroundFill(SafeShear(1.0, 20, 20)),
                   BackgroundFill(QuietSkew(1.0, "RANDOM", 1))):
            out = run(op, white, seed)
            assert out.mode == mode
            assert np.asarray(out).min() >= 250, (str(op), seed)
    assert black_corners > 0                    # Augmentor's rotate alone does leave black pixels
