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
    from transfer.models.backbones import get_backbone
    from transfer.weights import resolve_weights

    with pytest.raises(TransferError, match="trained from scratch"):
        resolve_weights(get_backbone("cnn"), "imagenet")


# --- the training command's flags, generated from the fields ------------------------------------------------

def test_every_field_is_one_flag_in_its_group_with_its_help():
    import dataclasses

    from transfer.cli.train import build_train_parser
    from transfer.config import OPTION_GROUPS, cli_options

    parser = build_train_parser()
    flags = {action.dest: action for action in parser._actions}
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(fields) <= set(flags)
    titles = {action.dest: group.title for group in parser._action_groups for action in group._group_actions}
    for option in cli_options():
        assert titles[option.name] == OPTION_GROUPS[fields[option.name].metadata["group"]]
        assert flags[option.name].option_strings[0] == option.flag
        assert "{" not in option.arguments["help"] and option.arguments["help"]  # every placeholder filled
    assert "default: 0.8,0.1,0.1" in flags["split"].help
    assert "default: 0.001 for pretrained backbones" in flags["lr"].help
    assert "vgg19" in flags["backbone"].help and "smallcnn are compact" in flags["backbone"].help
    assert "rmsprop" in flags["optimizer"].help


def test_flags_parse_into_the_config_with_the_fields_types(tmp_path):
    from transfer.cli.train import build_train_parser

    args = vars(build_train_parser().parse_args([
        "--data", "a=x.h5", "b=y.h5", "--x-key", "X", "--lr", "3e-4", "--epochs", "2", "--no-feature-cache",
        "--crop", "--scale", "log", "--verbose", "0", "--split", "0.6,0.2,0.2", "--image-size", "40"]))
    args.pop("config")
    config = load_config(None, **args)
    assert config.data == ["a=x.h5", "b=y.h5"] and config.lr == 3e-4 and config.epochs == 2
    assert config.feature_cache is False and config.crop is True and config.verbose == 0
    assert config.split == (0.6, 0.2, 0.2) and config.image_size == (40, 40) and config.scale == "log"
    assert config.batch_size == 32  # not given: the field's default
    assert "batch_size" not in args  # so that --config values are not overridden by defaults
    parser = build_train_parser()
    for bad in (["--scale", "sqrt"], ["--epochs", "two"], ["--verbose", "3"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["--data", "d", *bad])


def test_a_new_field_is_a_new_flag():
    import dataclasses
    from typing import Optional

    from transfer.config import cli_options, option

    Extended = dataclasses.make_dataclass("Extended", [
        ("warmup_epochs", Optional[int], option(None, group="training", metavar="N",
                                                  help="epochs of linear warm-up ({default})")),
        ("ema", bool, option(False, group="training", help="keep an average of the weights"))])
    first, second = cli_options(Extended)
    assert (first.flag, first.group, first.arguments["type"], first.arguments["metavar"]) == \
        ("--warmup-epochs", "training", int, "N")
    assert first.arguments["help"] == "epochs of linear warm-up (default: None)"
    assert second.flag == "--ema" and second.arguments["action"].__name__ == "BooleanOptionalAction"


def test_a_network_with_a_measured_recipe_gets_its_own_default_rate_and_an_explicit_one_wins(tmp_path):
    """Issue 26: cnn collapsed at the shared from-scratch rate on realistic towers; its registry entry carries
    1e-3. Other networks keep the shared defaults, and --lr given is never replaced."""
    from transfer.config import RECIPE_DEFAULTS

    assert TrainConfig(data=str(tmp_path), backbone="cnn").lr == 1e-3
    assert TrainConfig(data=str(tmp_path), backbone="smallcnn").lr == RECIPE_DEFAULTS[False]["lr"]
    assert TrainConfig(data=str(tmp_path), backbone="cnn").epochs == RECIPE_DEFAULTS[False]["epochs"]
    assert TrainConfig(data=str(tmp_path), backbone="cnn", lr=3e-3).lr == 3e-3
