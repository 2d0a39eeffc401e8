"""Rendering: geometry, phi wrap-around, pixel values, styles, determinism."""
import math

import numpy as np
import pytest

from imgen.errors import ImgenError
from imgen.events.cms_json import read_events
from imgen.events.model import Event, PhysicsObject
from imgen.render import RenderConfig, decode_png, encode_png, parse_objects, pixel_value, render_event, render_png
from tests.conftest import CMS_SHORT_JSON as SHORT

SIZE = 48


def one(kind, pt=50.0, eta=0.0, phi=0.0, btag=None):
    return Event("1", (PhysicsObject(kind, pt, eta, phi, btag),))


def lit(image, channel=None):
    """Rows and columns with any non-background pixel."""
    plane = image if channel is None else image[..., channel]
    mask = plane.reshape(plane.shape[0], plane.shape[1], -1).any(axis=2)
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def test_real_sample_renders_in_both_styles():
    for style in ("physics", "outline"):
        config = RenderConfig(style=style, size=SIZE)
        for event in read_events(SHORT):
            image = render_event(event, config)
            assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
            background = 0 if style == "physics" else 255
            assert (image != background).any()


def test_same_event_same_bytes():
    event = list(read_events(SHORT))[0]
    for style in ("physics", "outline"):
        config = RenderConfig(style=style, size=SIZE)
        first = encode_png(render_event(event, config))
        assert encode_png(render_event(event, config)) == first
        assert render_png(event, config) == first          # the pipeline's one-call form, same bytes
        assert (decode_png(first) == render_event(event, config)).all()  # lossless


def test_eta_horizontal_phi_vertical_plus_pi_on_top():
    config = RenderConfig(size=SIZE, objects=("jet",))
    rows, cols = lit(render_event(one("jet", eta=-2.5, phi=2.0), config), channel=0)
    assert cols.max() < SIZE / 2 and rows.max() < SIZE / 2      # left (negative eta), top (positive phi)
    rows, cols = lit(render_event(one("jet", eta=2.5, phi=-2.0), config), channel=0)
    assert cols.min() > SIZE / 2 and rows.min() > SIZE / 2


@pytest.mark.parametrize("style", ["physics", "outline"])
def test_phi_wraps_around(style):
    """An object at phi = 3.1 shows pixels at both the top and the bottom edge."""
    config = RenderConfig(style=style, size=SIZE)
    image = render_event(one("jet", phi=3.1), config)
    background = 0 if style == "physics" else 255
    rows = np.flatnonzero((image != background).any(axis=(1, 2)))
    assert 0 in rows and SIZE - 1 in rows
    assert not ((image != background).any(axis=(1, 2))[SIZE // 4: 3 * SIZE // 4]).any()  # nothing in the middle
    # and symmetric: -3.1 too
    image = render_event(one("jet", phi=-3.1), config)
    rows = np.flatnonzero((image != background).any(axis=(1, 2)))
    assert 0 in rows and SIZE - 1 in rows


def test_no_wrap_copy_far_from_the_edge():
    rows, _ = lit(render_event(one("jet", phi=0.0), RenderConfig(size=SIZE)))
    assert 0 not in rows and SIZE - 1 not in rows


def test_physics_channels_and_log_pt_values():
    config = RenderConfig(size=SIZE)
    jet = render_event(one("jet", pt=1000.0), config)
    assert jet[..., 0].max() == 255 and jet[..., 1:].max() == 0
    electron = render_event(one("electron", pt=1.0), config)
    assert electron[..., 1].max() == 64 and electron[..., [0, 2]].max() == 0
    met = render_event(Event("1", (), met=30.0, met_phi=0.5), config)
    assert met[..., 2].max() == pixel_value(30.0, config) and met[..., :2].max() == 0
    # value = 64 + floor(191 * ln(pt/1)/ln(1000) + 0.5)
    assert pixel_value(30.0, config) == 64 + math.floor(191 * math.log(30) / math.log(1000) + 0.5) == 158
    assert pixel_value(0.2, config) == 64 and pixel_value(5000.0, config) == 255


def test_overlaps_keep_the_maximum():
    config = RenderConfig(size=SIZE)
    soft, hard = PhysicsObject("jet", 10.0, 0.0, 0.0), PhysicsObject("jet", 200.0, 0.05, 0.0)
    for order in ((soft, hard), (hard, soft)):
        image = render_event(Event("1", order), config)
        assert image[SIZE // 2, SIZE // 2, 0] == pixel_value(200.0, config)
        assert set(np.unique(image[..., 0])) == {0, pixel_value(10.0, config), pixel_value(200.0, config)}


def test_btagged_jets_are_distinguishable():
    config = RenderConfig(size=64)
    light = render_event(one("jet", btag=0.5), config)
    tagged = render_event(one("jet", btag=0.9), config)
    assert not (light == tagged).all()                      # square, not disk
    assert (render_event(one("jet", btag=0.9), RenderConfig(size=64, btag_wp=0.95)) == light).all()


def test_outline_style_colours():
    config = RenderConfig(style="outline", size=64)
    image = render_event(Event("1", (PhysicsObject("muon", 40.0, -1.5, 1.0),
                                     PhysicsObject("electron", 40.0, 1.5, -1.0))), config)
    assert (image[0, 0] == 255).all()                               # white background
    left, right = image[:, :32].reshape(-1, 3).astype(int), image[:, 32:].reshape(-1, 3).astype(int)
    muon = left[(left != 255).any(axis=1)]
    electron = right[(right != 255).any(axis=1)]
    assert len(muon) and (muon[:, 1] > muon[:, 0]).all() and (muon[:, 1] > muon[:, 2]).all()  # green
    assert len(electron) and (electron[:, 2] > electron[:, :2].max(axis=1)).all()             # blue


def test_met_needs_met_phi():
    config = RenderConfig(size=SIZE, objects=("met",))
    assert render_event(Event("1", (), met=40.0, met_phi=None), config).max() == 0
    assert render_event(Event("1", (), met=40.0, met_phi=1.0), config).max() > 0


def test_objects_option_selects_kinds():
    event = Event("1", (PhysicsObject("jet", 50, 0, 0), PhysicsObject("muon", 50, 1, 1)))
    only_muons = render_event(event, RenderConfig(size=SIZE, objects=parse_objects("muon")))
    assert only_muons[..., 0].max() == 0 and only_muons[..., 1].max() > 0
    assert parse_objects("all") == parse_objects("jet,bjet,electron,muon,met,photon,tau")
    with pytest.raises(ImgenError, match="subset"):
        parse_objects("jets")


def test_raw_event_dict_is_accepted():
    raw = {"jet": {"0": {"pt": 50.0, "eta": 0.0, "phi": 0.0}}, "met": 20.0, "met_phi": 1.0}
    assert render_event(raw, RenderConfig(size=SIZE)).max() > 0


@pytest.mark.parametrize("kwargs", [dict(style="fancy"), dict(size=4), dict(pt_scale=(10, 1)), dict(eta_max=0)])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ImgenError):
        RenderConfig(**kwargs)


def test_png_encoders_agree_on_pixels():
    """ISA-L when installed, OpenCV otherwise: the pixels never depend on the encoder."""
    import io
    import zlib

    from PIL import Image

    from imgen.render import _png_deflate, _png_opencv

    image = render_event(list(read_events(SHORT))[0], RenderConfig(size=SIZE))
    grey = image[..., 0].copy()
    for data in (encode_png(image), _png_opencv(image), _png_deflate(image, lambda d: zlib.compress(d, 1))):
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert (decode_png(data) == image).all()
        assert (np.asarray(Image.open(io.BytesIO(data))) == image).all()
    assert (np.asarray(Image.open(io.BytesIO(encode_png(grey)))) == grey).all()
