"""``python -m imgen``: help, version, errors, a real run, the ``arrays`` dispatch."""
import subprocess
import sys

import pytest

from imgen import __version__
from imgen.__main__ import build_parser, main
from imgen.output.manifest import read_manifest

from tests.conftest import CMS_SHORT_JSON as SHORT
from tests.conftest import REPO_ROOT as REPO


def run(*args):
    return subprocess.run([sys.executable, "-m", "imgen", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_help_and_version_in_a_subprocess():
    result = run("--help")
    assert result.returncode == 0
    text = result.stdout
    for words in ("--selection", "--btag-wp", "GeV", "--shard I/N", "merge-shards OUT", "python -m imgen arrays --help",
                  "Wjets_json.json -> Wjets", "json_files/Wjets/part1.json -> Wjets", "+pi on top", "64 + round(191"):
        assert words in text, words
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"hepvision {__version__}"


def test_every_option_explains_itself():
    from imgen.__main__ import build_arrays_parser, build_merge_shards_parser, build_synth_parser

    for build in (build_parser, build_arrays_parser, build_synth_parser, build_merge_shards_parser):
        for action in build()._actions:
            assert action.help, (build.__name__, action.option_strings)


def test_subcommands_share_option_names():
    from imgen.__main__ import COMMANDS, build_arrays_parser

    assert set(COMMANDS) == {"render", "arrays", "synth", "merge-shards"}
    for build in (build_parser, build_arrays_parser):
        options = {o for a in build()._actions for o in a.option_strings}
        assert {"--split", "--seed", "--out", "--overwrite", "--no-progress"} <= options, build.__name__


def test_render_is_the_default_subcommand(tmp_path, capsys):
    def cut_flow(argv):
        assert main(argv) == 0
        printed = capsys.readouterr().out
        return printed[printed.index("cut flow"):]  # without the timing line

    explicit = cut_flow(["render", str(SHORT), "--dry-run", "--workers", "1"])
    assert explicit == cut_flow([str(SHORT), "--dry-run", "--workers", "1"]) and "short" in explicit


def test_synth_subcommand_and_its_errors(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--events", "3", "--classes", "Wjets"]) == 0
    assert (tmp_path / "Wjets.json").is_file() and "Wjets: 3 events" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path), "--classes", "QCD"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown class(es) QCD")


@pytest.mark.slow
def test_cli_renders_the_real_sample_and_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "images"
    assert main([str(SHORT), "--out", str(out), "--size", "32", "--workers", "1", "--selection", "paper",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    # paper preset on the real sample: no lepton passes pt > 20 GeV with tight ID and isolation
    assert "leptons == 1" in printed and "read 4 events" in printed
    assert read_manifest(out) == [] and not (out / "short").exists()   # no empty class folder
    assert main([str(SHORT), "--out", str(out / "all"), "--size", "32", "--workers", "1", "--format", "both",
                 "--style", "outline", "--objects", "jet,electron", "--split", "0.5,0.5,0"]) == 0
    rows = read_manifest(out / "all")
    assert len(rows) == 4 and {r["split"] for r in rows} <= {"train", "validation"}
    assert (out / "all" / "images.h5").is_file()


@pytest.mark.parametrize("args, words", [
    (["missing.json"], "missing.json: no such file or folder"),
    ([str(SHORT), "--split", "0.9,0.9,0.1"], "summing to 1"),
    ([str(SHORT), "--shard", "4/4"], "--shard"),
    ([str(SHORT), "--n-jets", "many"], "count 'many'"),
    ([str(SHORT), "--pt-scale", "10"], "--pt-scale"),
])
def test_bad_arguments_print_error_and_exit_2(args, words, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "o"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err


@pytest.mark.slow
def test_bad_file_exits_2_naming_file_and_event(tmp_path):
    bad = tmp_path / "Wjets_json.json"
    bad.write_text('{"Event": {"7": {"met": 1.0}, "8": {"muon": {"0": {"pt": -5, "eta": 0, "phi": 0}}}}}')
    result = run(bad, "--out", tmp_path / "o", "--size", "32", "--workers", "1", "--strict")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {bad.as_posix()}: event 8: muon 0: negative pt -5 GeV (--strict)"
    assert not list((tmp_path / "o").rglob("*.png"))


@pytest.mark.slow
def test_arrays_subcommand_is_dispatched():
    result = run("arrays", "--help")
    assert result.returncode == 0
    assert "python -m imgen arrays" in result.stdout or "arrays" in result.stdout
