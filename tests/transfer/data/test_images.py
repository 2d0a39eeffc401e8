"""transfer.data.images and transfer.data.batches: data folders, splits, image checks, numpy batches."""
import numpy as np
import pytest
from PIL import Image

from imgen.split import assign_split
from tests._transfer_data import make_blob_dataset
from transfer.data.batches import Batches, InMemoryRows, decode_png, physics_augment
from transfer.data.images import SPLIT_SOURCE, hash_split, image_batches, load_image_dataset
from transfer.errors import TransferError


def test_manifest_splits_are_used(tmp_path):
    root = make_blob_dataset(tmp_path / "d", classes=("sig", "bkg"), per_class=10)
    data = load_image_dataset(root)
    assert data.split_source == "manifest"
    assert data.class_names == ["bkg", "sig"]  # sorted
    assert data.image_shape == (32, 32, 1)
    assert data.counts() == {"train": {"bkg": 6, "sig": 6}, "validation": {"bkg": 2, "sig": 2},
                             "test": {"bkg": 2, "sig": 2}}
    assert all(p.startswith(str(root)) for p in data.paths("test"))
    assert list(data.labels("train")).count(1) == 6
    ordered = load_image_dataset(root, classes=["sig", "bkg"])
    assert ordered.class_names == ["sig", "bkg"]
    assert set(ordered.labels("train")[:6]) == {0}  # sig rows come first in the manifest


def test_class_folders_get_a_reproducible_split(tmp_path):
    root = make_blob_dataset(tmp_path / "d", per_class=20, manifest=False, channels=3)
    first = load_image_dataset(root, split=(0.5, 0.25, 0.25), seed=3)
    again = load_image_dataset(root, split=(0.5, 0.25, 0.25), seed=3)
    other = load_image_dataset(root, split=(0.5, 0.25, 0.25), seed=4)
    assert first.split_source == SPLIT_SOURCE and first.image_shape == (32, 32, 3)
    assert first.splits == again.splits and first.splits != other.splits
    assert all(n > 0 for n in first.counts()["validation"].values())
    table = first.split_table().splitlines()
    assert table[0] == "path,class,split" and len(table) == 61


def test_subset_of_classes(tmp_path):
    root = make_blob_dataset(tmp_path / "d", per_class=10)
    data = load_image_dataset(root, classes=["c", "a"])
    assert data.class_names == ["c", "a"] and set(data.classes) == {"a", "c"}
    with pytest.raises(TransferError, match="x not in"):
        load_image_dataset(root, classes=["a", "x"])


def _error(root, **kwargs):
    with pytest.raises(TransferError) as info:
        load_image_dataset(root, **kwargs)
    return str(info.value)


def test_bad_data_folders(tmp_path):
    assert "no such folder" in _error(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "no class subfolders" in _error(tmp_path / "empty")

    one = make_blob_dataset(tmp_path / "one", classes=("only",), per_class=5, manifest=False)
    assert "at least two classes, found 1: only" in _error(one)

    hollow = make_blob_dataset(tmp_path / "hollow", classes=("a", "b"), per_class=5, manifest=False)
    (hollow / "c").mkdir()
    assert "class folder c/ holds no PNG images" in _error(hollow)

    few = make_blob_dataset(tmp_path / "few", classes=("a", "b"), per_class=2, manifest=False)
    assert "split has no images; use more images or other --split fractions" in _error(few)


def test_bad_images_are_named(tmp_path):
    root = make_blob_dataset(tmp_path / "sizes", classes=("a", "b"), per_class=5, manifest=False)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "b" / "odd.png")
    message = _error(root)
    assert "same size and channel count" in message and "odd.png" in message and "16x16" in message

    root = make_blob_dataset(tmp_path / "channels", classes=("a", "b"), per_class=5, manifest=False)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "a" / "rgb.png")
    assert "rgb.png" in _error(root) and "3 channel" in _error(root)

    root = make_blob_dataset(tmp_path / "corrupt", classes=("a", "b"), per_class=5, manifest=False)
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    assert "broken.png: not a readable PNG" in _error(root)

    root = make_blob_dataset(tmp_path / "truncated", classes=("a", "b"), per_class=5, manifest=False)
    good = (root / "a" / "a_0000.png").read_bytes()
    (root / "a" / "a_0000.png").write_bytes(good[: len(good) // 2])
    assert "a_0000.png: not a readable PNG" in _error(root)

    root = make_blob_dataset(tmp_path / "jpeg", classes=("a", "b"), per_class=5, manifest=False)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "a" / "photo.png", format="JPEG")
    assert "photo.png: is a JPEG image, expected PNG" in _error(root)


def test_manifest_problems(tmp_path):
    from imgen.output.manifest import write_manifest

    root = make_blob_dataset(tmp_path / "d", classes=("a", "b"), per_class=5)
    rows = [{"path": f"a/a_{i:04d}.png", "class": "a", "event": i, "source": "s", "split": "train"}
            for i in range(5)] + [{"path": f"b/b_{i:04d}.png", "class": "b", "event": i, "source": "s",
                                   "split": "validation" if i < 3 else "test"} for i in range(5)]
    write_manifest(root, rows)
    assert "class(es) b have no training images" in _error(root)
    write_manifest(root, [dict(r, split="train") for r in rows])
    assert "the validation split has no images" in _error(root)
    write_manifest(root, rows[:1] + [{"path": "a/missing.png", "class": "a", "event": 9, "source": "s",
                                      "split": "train"}])
    assert "missing.png does not exist" in _error(root)


def test_folder_split_is_the_one_rule_over_the_file_names_event():
    classes = ["a"] * 50 + ["b"] * 30
    files = [f"{c}/{c}_{i}.png" for i, c in enumerate(classes)]
    splits = hash_split(files, classes, (0.8, 0.1, 0.1), seed=1)
    assert splits == [assign_split(i, c, 1, (0.8, 0.1, 0.1)) for i, c in enumerate(classes)]
    assert hash_split(files[::-1], classes[::-1], (0.8, 0.1, 0.1), seed=1) == splits[::-1]  # order-free


def test_batches_decode_shuffle_per_epoch_and_augment(tmp_path):
    root = make_blob_dataset(tmp_path / "d", classes=("a", "b"), per_class=10, size=32)
    data = load_image_dataset(root)
    paths, labels = data.paths("train"), data.labels("train")
    assert len(paths) == 12
    plain = image_batches(paths, labels, (32, 32, 1), batch_size=5)
    assert len(plain) == 3  # the short last batch is kept
    images = np.concatenate([b[0] for b in plain])
    assert images.shape == (12, 32, 32, 1) and images.dtype == np.uint8
    assert np.array_equal(images[0, ..., 0], np.asarray(Image.open(paths[0])))
    assert np.array_equal(np.concatenate([b[1] for b in plain]), labels)

    shuffled = image_batches(paths, labels, (32, 32, 1), batch_size=12, shuffle=True, seed=5)
    epoch1 = shuffled[0][1]
    shuffled.on_epoch_end()
    epoch2 = shuffled[0][1]
    assert sorted(epoch1) == sorted(labels) and not np.array_equal(epoch1, labels)
    assert not np.array_equal(epoch1, epoch2)  # reshuffled every epoch
    again = image_batches(paths, labels, (32, 32, 1), batch_size=12, shuffle=True, seed=5)
    assert np.array_equal(again[0][1], epoch1)  # ... from the seed alone

    augmented = image_batches(paths, labels, (32, 32, 1), batch_size=12, augment=True, seed=5)
    aug_images, aug_labels = augmented[0]
    assert aug_images.shape == images.shape and np.array_equal(aug_labels, labels)
    # rolls and flips move pixels but keep each image's pixel values
    for original, moved in zip(images, aug_images):
        assert np.array_equal(np.sort(original.ravel()), np.sort(moved.ravel()))
    assert not np.array_equal(aug_images, images)

    unlabelled = image_batches(paths, None, (32, 32, 1), batch_size=5)
    first = unlabelled[0]
    assert len(first) == 1 and first[0].shape == (5, 32, 32, 1)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P"])
def test_png_decoding_gives_what_tensorflow_decode_png_gives(tmp_path, mode):
    """One decoding rule on every backend: the numpy decoder equals tf.io.decode_png for every accepted mode."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    channels = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3, "P": 3}[mode]
    image = Image.fromarray(rng.integers(0, 256, (9, 7, 4), dtype=np.uint8), "RGBA").convert(mode)
    path = tmp_path / f"{mode}.png"
    image.save(path)
    expected = tf.io.decode_png(tf.io.read_file(str(path)), channels=channels).numpy()
    assert np.array_equal(decode_png(str(path), channels), expected)


def test_a_batch_shared_by_processes_is_the_single_process_batch_cut_in_parts():
    """Data-parallel processes each get their part of every global batch; their parts make up the batch one
    process would see, augmentation included, and a short last batch is dropped."""
    x = np.arange(26 * 4 * 4, dtype=np.uint8).reshape(26, 4, 4, 1)
    labels = np.arange(26) % 2
    whole = Batches(InMemoryRows(x), labels, 8, shuffle=True, seed=3, augment=physics_augment, drop_remainder=True)
    parts = [Batches(InMemoryRows(x), labels, 8, shuffle=True, seed=3, augment=physics_augment, shard=(i, 2),
                     drop_remainder=True) for i in range(2)]
    assert len(whole) == len(parts[0]) == 3
    for epoch in range(2):
        for index in range(3):
            joined = [np.concatenate(pieces) for pieces in zip(*(part[index] for part in parts))]
            assert all(np.array_equal(a, b) for a, b in zip(joined, whole[index]))
        for batches in (whole, *parts):
            batches.on_epoch_end()
    with pytest.raises(ValueError, match="divide"):
        Batches(InMemoryRows(x), labels, 7, shard=(0, 2), drop_remainder=True)
