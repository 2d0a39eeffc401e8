"""Symmetries of HDF5 arrays drawn on the fly: the phi roll only along the axis the file calls phi, and only
where that axis is periodic and kept whole; eta and phi flips; nothing where the file names no axes."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from imgen.arrays import synth
from tests._transfer_data import make_blob_dataset
from transfer.config import TrainConfig
from transfer.data import open_data
from transfer.data.batches import physics_augment, symmetry_augment
from transfer.errors import TransferError


def _is_roll_of(row_out, row_in):
    return any(np.array_equal(row_out, np.roll(row_in, k)) for k in range(len(row_in)))


def test_symmetry_augment_rolls_and_flips_only_the_axes_it_is_given():
    x = np.random.default_rng(0).normal(size=(64, 5, 7, 2)).astype(np.float32)
    out = symmetry_augment(x, np.random.default_rng(1), phi_axis=2, eta_axis=None)
    # the roll and the phi flip move cells within an eta row only: every row keeps its cells, in cyclic order
    for a, b in zip(x, out):
        np.testing.assert_allclose(np.sort(b, axis=1), np.sort(a, axis=1))
        forward = all(_is_roll_of(b[r, :, 0], a[r, :, 0]) for r in range(5))
        backward = all(_is_roll_of(b[r, ::-1, 0], a[r, :, 0]) for r in range(5))
        assert forward or backward
    assert not np.array_equal(out, x)
    # no roll: a column is either where it was or mirrored
    still = symmetry_augment(x, np.random.default_rng(1), phi_axis=2, eta_axis=None, roll=False)
    assert all(np.array_equal(b, a) or np.array_equal(b, a[:, ::-1]) for a, b in zip(x, still))
    # the eta flip mirrors rows, and the image form (phi on rows) is the same function on its axes
    flipped = symmetry_augment(x, np.random.default_rng(2), phi_axis=2, eta_axis=1, roll=False)
    assert any(np.array_equal(b, a[::-1]) and not np.array_equal(a, a[::-1]) for a, b in zip(x, flipped))
    np.testing.assert_array_equal(physics_augment(x, np.random.default_rng(3)),
                                  symmetry_augment(x, np.random.default_rng(3), phi_axis=1, eta_axis=2))


def _view(folder, **options):
    config = TrainConfig(data=[f"multijet={folder}/multijet", f"signal={folder}/signal"], x_key="gTowerEt",
                         backbone="smallcnn", **options)
    return open_data(config).view()


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    root = tmp_path_factory.mktemp("realistic")
    synth.write_realistic_towers(root, 12, seed=4, files_per_class=1)
    return root


def test_array_augmentation_follows_the_files_dims_and_periodic_attributes(realistic, tmp_path):
    view = _view(realistic)  # dims = event, eta, phi: phi on the columns, periodic
    draw = view.augmentation()
    assert draw.keywords == {"phi_axis": 2, "eta_axis": 1, "roll": True} and view.is_event_image
    x = view.rows("train").read(np.arange(4))
    out = draw(x, np.random.default_rng(0))
    np.testing.assert_allclose(np.sort(out.sum(axis=2), axis=1), np.sort(x.sum(axis=2), axis=1), rtol=1e-5)

    cropped = _view(realistic, crop=True)  # rows 0, 1, 27 dropped: phi is still whole
    assert cropped.augmentation().keywords["roll"]

    def rewrite(name, **attrs):
        folder = tmp_path / name
        for cls in ("multijet", "signal"):
            (folder / cls).mkdir(parents=True)
            with h5py.File(realistic / cls / "part-0.h5") as src, h5py.File(folder / cls / "part-0.h5", "w") as dst:
                dst["gTowerEt"] = src["gTowerEt"][:]
                for key, value in attrs.items():
                    dst["gTowerEt"].attrs[key] = value
        return folder

    partial = _view(rewrite("partial", dims=["event", "phi", "eta"], periodic=[]))
    assert partial.augmentation().keywords == {"phi_axis": 1, "eta_axis": 2, "roll": False}
    assert not partial.is_event_image  # no roll, no automatic augmentation
    bare = _view(rewrite("bare"))
    assert bare.augmentation() is None and not bare.is_event_image
    with pytest.raises(TransferError, match="dims"):
        bare.dataset("train", 8, augment=True)


def test_auto_augments_every_stage_on_symmetric_data_and_a_large_pretrained_run_keeps_its_head_cache(
        realistic, tmp_path, monkeypatch):
    from transfer.training import inputs
    from transfer.training.inputs import augmented_stages

    symmetric = _view(realistic)
    for requested, from_scratch, stages in ((None, True, ("from-scratch",)), (None, False, ("head", "fine-tune")),
                                            (True, False, ("head", "fine-tune")), (True, True, ("from-scratch",)),
                                            (False, True, ()), (False, False, ())):
        assert augmented_stages(requested, symmetric, from_scratch) == stages, (requested, from_scratch)
    n_train = len(symmetric.labels("train"))
    monkeypatch.setattr(inputs, "AUTO_AUGMENT_HEAD_EVENTS", n_train - 1)   # more events than the rule's limit
    assert augmented_stages(None, symmetric, False) == ("fine-tune",)
    assert augmented_stages(None, symmetric, True) == ("from-scratch",)
    assert augmented_stages(True, symmetric, False) == ("head", "fine-tune")
    make_blob_dataset(tmp_path / "blobs", per_class=5, size=16)   # plain pictures: no symmetry to draw from
    plain = open_data(TrainConfig(data=str(tmp_path / "blobs"), backbone="smallcnn")).view()
    assert augmented_stages(None, plain, True) == augmented_stages(None, plain, False) == ()
