"""transfer.config: options, YAML files, CLI overrides (no TensorFlow needed)."""
import pytest
import yaml

from transfer.config import TrainConfig, load_config, read_config_file, save_config
from transfer.errors import TransferError


def test_defaults_and_normalisation():
    config = TrainConfig(data="images", image_size="64x48", split="0.7,0.2,0.1", classes="b,a")
    assert config.image_size == (64, 48)
    assert config.split == (0.7, 0.2, 0.1)
    assert config.classes == ["b", "a"]
    assert TrainConfig(data="x", image_size=64).image_size == (64, 64)
    assert config.uses_feature_cache
    assert not TrainConfig(data="x", augment_on_the_fly=True).uses_feature_cache


@pytest.mark.parametrize("options, words", [
    ({"backbone": "alexnet"}, ["unknown backbone 'alexnet'", "vgg19"]),
    ({"optimizer": "adagrad"}, ["unknown optimizer 'adagrad'", "rmsprop"]),
    ({"fine_tune": "half"}, ["fine_tune", "partial"]),
    ({"split": "0.5,0.5"}, ["split"]),
    ({"split": "0.8,0.1,0.2"}, ["sum to 1"]),
    ({"image_size": "big"}, ["image_size"]),
    ({"lr": 0}, ["lr"]),
    ({"epochs": 0}, ["epochs"]),
    ({"epochs": 2.5}, ["integer"]),
    ({"dropout": 1.0}, ["dropout"]),
    ({"classes": "a,a"}, ["distinct"]),
    ({"augment_on_the_fly": "maybe"}, ["true or false"]),
])
def test_bad_values_are_named(options, words):
    with pytest.raises(TransferError) as info:
        TrainConfig(data="images", **options)
    for word in words:
        assert word in str(info.value)


def test_data_is_required():
    with pytest.raises(TransferError, match="--data"):
        load_config(None)


def test_yaml_round_trip_with_cli_override(tmp_path):
    config = TrainConfig(data="images", backbone="resnet50", optimizer="rmsprop", image_size=64,
                         classes=["sig", "bkg"], lr=3e-4, augment_on_the_fly=True)
    path = save_config(config, tmp_path / "config.yaml", {"weights_used": "none", "weights_reason": "offline"})
    text = path.read_text()
    assert text.startswith("#") and "weights_used: none" in text
    assert yaml.safe_load(text)["weights_reason"] == "offline"
    again = load_config(path)
    assert again == config
    overridden = load_config(path, optimizer="adam", epochs=3)
    assert overridden.optimizer == "adam" and overridden.epochs == 3 and overridden.backbone == "resnet50"


def test_unknown_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: images\nlearning_rate: 0.1\n")
    with pytest.raises(TransferError, match="unknown option.*learning_rate"):
        read_config_file(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(TransferError, match="mapping"):
        read_config_file(path)
    with pytest.raises(TransferError, match="cannot read"):
        read_config_file(tmp_path / "missing.yaml")


def test_weights_default_to_imagenet_for_pretrained_and_none_for_compact_networks(tmp_path):
    from transfer.config import TrainConfig
    from transfer.errors import TransferError

    assert TrainConfig(data=str(tmp_path), backbone="vgg19").weights == "imagenet"
    assert TrainConfig(data=str(tmp_path), backbone="cnn").weights == "none"
    # Asking for ImageNet weights on a network that has none stays an error at run time.
    assert TrainConfig(data=str(tmp_path), backbone="cnn", weights="imagenet").weights == "imagenet"
    from transfer.backbones import get_backbone
    from transfer.weights import resolve_weights

    with pytest.raises(TransferError, match="trained from scratch"):
        resolve_weights(get_backbone("cnn"), "imagenet")
