"""augment.pipeline: registry, --ops parsing, pipelines, and augment_dataset on real image folders."""
import csv
import hashlib
from pathlib import Path

import Augmentor
import numpy as np
import pytest
from PIL import Image

from augment.operations import EtaFlip, PhiShift
from augment.pipeline import (OPERATIONS, PRESETS, AugmentError, AugmentSummary, augment_dataset, augment_image,
                              build_pipeline, default_output_dir, image_seed, parse_ops)
from imgen.output.manifest import AUGMENTED_FROM, COLUMNS, read_manifest, write_manifest

CHANNELS = {"L": None, "RGB": 3, "RGBA": 4}


def blob_image(mode, seed, size=32):
    rng = np.random.default_rng(seed)
    channels = CHANNELS[mode]
    shape = (size, size) if channels is None else (size, size, channels)
    array = np.zeros(shape, dtype=np.uint8)
    for _ in range(3):
        row, col = rng.integers(0, size - 3, 2)
        array[row:row + 3, col:col + 2] = rng.integers(80, 256)
    if channels == 4:
        array[..., 3] = 255
    return Image.fromarray(array)


def make_dataset(root, classes=None, mode="L"):
    """An imgen-like folder: <class>/<class>_<event>.png + manifest.csv. classes: name -> (train, val, test)."""
    classes = classes or {"qcd": (4, 2, 2), "top": (2, 1, 1)}
    rows, seed = [], 0
    for name, counts in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for split, count in zip(("train", "validation", "test"), counts):
            for _ in range(count):
                seed += 1
                path = f"{name}/{name}_{seed}.png"
                blob_image(mode, seed).save(root / path)
                rows.append({"path": path, "class": name, "event": str(seed), "source": f"{name}.json",
                             "split": split})
    write_manifest(root, rows)
    return root


def manifest(folder):
    with (Path(folder) / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tree_digest(folder):
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def count(rows, name, split="train"):
    return sum(1 for r in rows if r["class"] == name and r["split"] == split)


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "images")


# ---------------------------------------------------------------- registry, parsing, pipelines

def test_parse_ops_with_and_without_probabilities():
    assert parse_ops("phi_shift:1.0, eta_flip:0.5,rotate:1") == [("phi_shift", 1.0), ("eta_flip", 0.5),
                                                                ("rotate", 1.0)]
    assert parse_ops("phi_flip") == [("phi_flip", OPERATIONS["phi_flip"].default_probability)]


@pytest.mark.parametrize("spec, words", [("warp:1.0", ["warp", "phi_shift"]), ("eta_flip:half", ["half"]),
                                         ("", ["no operations"])])
def test_parse_ops_errors_name_the_problem(spec, words):
    with pytest.raises(AugmentError) as info:
        parse_ops(spec)
    for word in words:
        assert word in str(info.value)


def test_probability_outside_0_1_is_refused():
    with pytest.raises(AugmentError, match="rotate.*between 0 and 1"):
        build_pipeline(ops="rotate:1.5")


def test_presets_build_augmentor_pipelines():
    physics = build_pipeline("physics")
    assert isinstance(physics, Augmentor.Pipeline)
    assert [type(op).__name__ for op in physics.operations] == ["PhiShift", "EtaFlip", "PhiFlip"]
    assert all(OPERATIONS[name].physical for name, _ in PRESETS["physics"][1])
    paper = build_pipeline("paper")
    assert [str(op) for op in paper.operations] == ["RotateRange", "EtaFlip", "ZoomRandom", "PhiFlip",
                                                    "SafeShear", "QuietSkew"]
    assert [op.probability for op in paper.operations] == [1, 0.5, 0.5, 0.5, 0.5, 0.3]
    assert paper.operations[0].operation.max_left_rotation == -5
    assert paper.operations[4].operation.max_shear_right == 20
    with pytest.raises(AugmentError, match="preset 'nope'"):
        build_pipeline("nope")


def test_ops_take_names_and_own_operations():
    pipeline = build_pipeline(ops=[("eta_flip", 1.0), PhiShift(1.0, shift=3)])
    image = blob_image("L", 1)
    out = augment_image(pipeline, image, seed=0)
    np.testing.assert_array_equal(np.asarray(out), np.roll(np.asarray(image)[:, ::-1], 3, axis=0))


def test_augment_image_probabilities_0_and_1_are_exact():
    image = blob_image("L", 2)
    never = build_pipeline(ops="eta_flip:0,phi_flip:0")
    always = build_pipeline(ops="eta_flip:1")
    for seed in range(50):
        assert augment_image(never, image, seed).tobytes() == image.tobytes()
        assert augment_image(always, image, seed).tobytes() == EtaFlip(1).perform_operation([image])[0].tobytes()


def test_augment_image_is_deterministic_and_leaves_global_random_state_alone():
    import random
    pipeline = build_pipeline("paper")
    image = blob_image("RGB", 3)
    random.seed(123)
    np.random.seed(5)
    before = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(5)
    first = augment_image(pipeline, image, image_seed(1, "a.png", 1))
    assert (random.random(), np.random.random()) == before
    assert augment_image(pipeline, image, image_seed(1, "a.png", 1)).tobytes() == first.tobytes()
    others = {augment_image(pipeline, image, image_seed(s, "a.png", 1)).tobytes() for s in range(2, 8)}
    assert first.tobytes() not in others


# ---------------------------------------------------------------- counts and splits

def test_per_class_balances_training_classes_and_keeps_other_splits(dataset, tmp_path):
    out = tmp_path / "out"
    summary = augment_dataset(dataset, out, per_class=7, seed=1, progress=False)
    rows = manifest(out)
    assert list(rows[0]) == [*COLUMNS, AUGMENTED_FROM]
    assert (count(rows, "qcd"), count(rows, "top")) == (7, 7)
    assert (count(rows, "qcd", "validation"), count(rows, "qcd", "test")) == (2, 2)
    assert (count(rows, "top", "validation"), count(rows, "top", "test")) == (1, 1)
    by_name = {c.name: c for c in summary.classes}
    assert (by_name["qcd"].originals, by_name["qcd"].generated, by_name["qcd"].total) == (4, 3, 7)
    assert (by_name["top"].originals, by_name["top"].generated, by_name["top"].total) == (2, 5, 7)
    assert summary.output_dir == out.resolve() and summary.copied == {"validation": 3, "test": 3}
    for row in rows:                            # every row names a real, readable PNG of its class
        assert (out / row["path"]).is_file() and row["path"].startswith(row["class"] + "/")
    assert read_manifest(out)                   # imgen's reader (used by transfer) accepts it
    assert sorted(r["path"] for r in rows if r["augmented_from"]) == sorted(
        ["qcd/qcd_1_aug1.png", "qcd/qcd_2_aug1.png", "qcd/qcd_3_aug1.png",
         "top/top_10_aug1.png", "top/top_10_aug2.png", "top/top_10_aug3.png",
         "top/top_9_aug1.png", "top/top_9_aug2.png"])


def test_class_already_above_per_class_keeps_everything_and_gets_nothing(dataset, tmp_path):
    summary = augment_dataset(dataset, tmp_path / "out", per_class=3, progress=False)
    rows = manifest(tmp_path / "out")
    qcd = next(c for c in summary.classes if c.name == "qcd")
    assert (qcd.originals, qcd.generated, qcd.total) == (4, 0, 4)
    assert "already has 4" in summary.format()
    assert count(rows, "qcd") == 4 and count(rows, "top") == 3


def test_factor_multiplies_each_class_rounded(tmp_path):
    data = make_dataset(tmp_path / "images", {"a": (3, 1, 1), "b": (5, 1, 0)})
    summary = augment_dataset(data, tmp_path / "out", factor=1.5, progress=False)
    rows = manifest(tmp_path / "out")
    assert (count(rows, "a"), count(rows, "b")) == (5, 8)       # 4.5 -> 5, 7.5 -> 8
    assert [c.total for c in summary.classes] == [5, 8]
    assert "wrote 5 new training images" in summary.format()


def test_default_is_factor_2_and_output_next_to_input(dataset):
    summary = augment_dataset(dataset, progress=False)
    assert summary.output_dir == dataset.parent / "images_augmented" == default_output_dir(dataset)
    assert [c.total for c in summary.classes] == [8, 4]


def test_validation_and_test_images_are_byte_identical_and_never_sources(dataset, tmp_path):
    out = tmp_path / "out"
    augment_dataset(dataset, out, per_class=10, progress=False)
    rows = manifest(out)
    splits = {r["path"]: r["split"] for r in read_manifest(dataset)}
    for row in rows:
        if row["path"] in splits:               # carried over (all splits), unchanged
            assert row["augmented_from"] == "" and row["split"] == splits[row["path"]]
            assert (out / row["path"]).read_bytes() == (dataset / row["path"]).read_bytes()
        else:                                   # generated: from a training image of its own class
            assert row["split"] == "train"
            assert splits[row["augmented_from"]] == "train"
            source = next(r for r in rows if r["path"] == row["augmented_from"])
            assert source["class"] == row["class"] and source["event"] == row["event"]
    assert len([r for r in rows if r["path"] not in splits]) == 6 + 8


# ---------------------------------------------------------------- determinism, modes

def test_same_seed_same_bytes_different_seed_different_images(dataset, tmp_path):
    for preset in ("physics", "paper"):
        a = tree_digest(augment_dataset(dataset, tmp_path / f"{preset}1", preset=preset, per_class=6,
                                        seed=11, progress=False).output_dir)
        b = tree_digest(augment_dataset(dataset, tmp_path / f"{preset}2", preset=preset, per_class=6,
                                        seed=11, progress=False).output_dir)
        c = tree_digest(augment_dataset(dataset, tmp_path / f"{preset}3", preset=preset, per_class=6,
                                        seed=12, progress=False).output_dir)
        assert a == b
        generated = [p for p in a if "_aug" in p]
        assert len(generated) == 6
        assert sum(a[p] != c[p] for p in generated) >= 4
        assert all(a[p] == c[p] for p in a if "_aug" not in p and p not in ("manifest.csv", "augment-config.json"))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("preset", ["physics", "paper"])
def test_image_modes_sizes_and_png_are_preserved(tmp_path, mode, preset):
    data = make_dataset(tmp_path / "images", {"a": (2, 1, 1)}, mode=mode)
    out = tmp_path / "out"
    augment_dataset(data, out, preset=preset, per_class=5, progress=False)
    generated = [r for r in manifest(out) if r["augmented_from"]]
    assert len(generated) == 3
    for row in generated:
        with Image.open(out / row["path"]) as image:
            assert (image.format, image.mode, image.size) == ("PNG", mode, (32, 32))
            array = np.asarray(image)
        assert array.dtype == np.uint8
        if preset == "physics":                 # whole pixels moved: same values, same total
            with Image.open(data / row["augmented_from"]) as source:
                original = np.asarray(source)
            assert array.astype(int).sum() == original.astype(int).sum()
            assert sorted(array.ravel()) == sorted(original.ravel())


def test_summary_is_plain_data(dataset, tmp_path):
    summary = augment_dataset(dataset, tmp_path / "out", per_class=5, progress=False)
    assert isinstance(summary, AugmentSummary)
    data = summary.to_dict()
    assert data["classes"][0] == {"name": "qcd", "originals": 4, "generated": 1, "total": 5, "target": 5}
    assert data["operations"] == ["phi_shift:1", "eta_flip:0.5", "phi_flip:0.5"]
    text = summary.format()
    assert "qcd" in text and str(tmp_path / "out") in text


# ---------------------------------------------------------------- bad input

def test_no_manifest(tmp_path):
    (tmp_path / "images" / "a").mkdir(parents=True)
    with pytest.raises(AugmentError, match="manifest.csv"):
        augment_dataset(tmp_path / "images", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_manifest_names_a_missing_file(dataset, tmp_path):
    (dataset / "qcd" / "qcd_3.png").unlink()
    with pytest.raises(AugmentError, match="qcd/qcd_3.png"):
        augment_dataset(dataset, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_unreadable_or_truncated_png(dataset, tmp_path, damage):
    path = dataset / "top" / "top_10.png"          # a training image
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a png at all")
    with pytest.raises(AugmentError, match="top_10.png"):
        augment_dataset(dataset, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["images"]     # no temporary folder left either


def test_every_input_image_is_checked_before_any_is_generated(dataset, tmp_path):
    calls = []

    class Recording(PhiShift):
        def perform_operation(self, images):
            calls.append(images[0].size)
            return super().perform_operation(images)

    path = dataset / "top" / "top_9.png"          # a training image of the last class
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(AugmentError, match="top_9.png"):
        augment_dataset(dataset, tmp_path / "out", ops=[Recording(1.0)], progress=False)
    assert calls == []


def test_class_without_training_images(tmp_path):
    data = make_dataset(tmp_path / "images", {"qcd": (2, 1, 1), "wprime": (0, 1, 1)})
    with pytest.raises(AugmentError, match="class 'wprime'.*no training images"):
        augment_dataset(data, tmp_path / "nested" / "out", progress=False)
    assert not (tmp_path / "nested").exists()


def test_failure_after_validation_leaves_nothing(dataset, tmp_path):
    class Boom(PhiShift):
        def perform_operation(self, images):
            raise RuntimeError("boom")
    with pytest.raises(AugmentError, match="qcd_1.png.*boom"):
        augment_dataset(dataset, tmp_path / "out", ops=[Boom(1.0)], progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


@pytest.mark.parametrize("where", ["same", "inside"])
def test_refuses_to_write_into_the_input(dataset, where):
    out = dataset if where == "same" else dataset / "qcd" / "more"
    before = tree_digest(dataset)
    with pytest.raises(AugmentError, match="inside it|is the input"):
        augment_dataset(dataset, out, progress=False)
    assert tree_digest(dataset) == before


def test_existing_output_needs_overwrite_and_must_be_ours(dataset, tmp_path):
    out = tmp_path / "out"
    augment_dataset(dataset, out, per_class=5, progress=False)
    with pytest.raises(AugmentError, match="already exists.*--overwrite"):
        augment_dataset(dataset, out, per_class=6, progress=False)
    summary = augment_dataset(dataset, out, per_class=6, overwrite=True, progress=False)
    assert summary.classes[0].total == 6 and count(manifest(out), "qcd") == 6
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(AugmentError, match="not written by augment"):
        augment_dataset(dataset, precious, overwrite=True, progress=False)
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_refuses_an_already_augmented_folder(dataset, tmp_path):
    out = augment_dataset(dataset, tmp_path / "once", per_class=5, progress=False).output_dir
    with pytest.raises(AugmentError, match="already augmented"):
        augment_dataset(out, tmp_path / "twice", progress=False)


@pytest.mark.parametrize("kwargs, words", [
    ({"per_class": 5, "factor": 2.0}, "not both"),
    ({"per_class": 0}, "--per-class 0"),
    ({"factor": 0.5}, "--factor 0.5"),
    ({"ops": "spin:1"}, "spin"),
])
def test_bad_options(dataset, tmp_path, kwargs, words):
    with pytest.raises(AugmentError, match=words):
        augment_dataset(dataset, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_path_escaping_the_dataset_is_refused(dataset, tmp_path):
    (tmp_path / "evil.png").write_bytes((dataset / "qcd" / "qcd_1.png").read_bytes())
    rows = read_manifest(dataset)
    rows[0]["path"] = "../evil.png"
    write_manifest(dataset, rows)
    with pytest.raises(AugmentError, match=r"\.\./evil\.png"):
        augment_dataset(dataset, tmp_path / "out", progress=False)


def test_run_configuration_is_recorded_next_to_the_output(dataset, tmp_path):
    import json

    augment_dataset(dataset, tmp_path / "out", preset="paper", per_class=5, seed=11, progress=False)
    config = json.loads((tmp_path / "out" / "augment-config.json").read_text())
    assert config["preset"] == "paper" and config["seed"] == 11 and config["per_class"] == 5
    assert config["train_images_per_class"] == {"qcd": 5, "top": 5}
    assert [op.split(":")[0] for op in config["operations"]] == [name for name, _ in PRESETS["paper"][1]]
