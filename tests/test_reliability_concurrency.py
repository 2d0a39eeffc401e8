"""Issue 24, point 1: one writer per output. Two processes on one ``--out`` (a run, a grid, a pretraining) or one
toy-cms backbone in a shared Keras cache, through the commands as two users (or two batch jobs) start them.

Each case asserts the refusal (one line naming the process that holds the output), its exit status, that the
first process's work is untouched, and that no lock file or staging folder is left.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("keras")

from imgen.locking import exclusive_lock  # noqa: E402
from tests._transfer_data import make_blob_dataset  # noqa: E402
from transfer.files import lock_path, output_lock  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FAST = ["--backbone", "mlp", "--patience", "0", "--verbose", "0", "--baseline", "none"]


def _transfer(*args, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "transfer", *map(str, args)], cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the command ended before the test could start the second one"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and
                  (p.name.endswith(".lock") or ".partial-" in p.name))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_blob_dataset(tmp_path_factory.mktemp("concurrency") / "images", classes=("a", "b"), per_class=9,
                             size=8)


def test_a_second_run_on_the_same_out_is_refused_and_the_first_keeps_its_staging(data, tmp_path):
    out = tmp_path / "conc"
    first = _transfer("--data", data, *FAST, "--epochs", "100000", "--out", out)
    _wait_for(lambda: any(tmp_path.glob(".conc.partial-*")), first)
    staging = next(tmp_path.glob(".conc.partial-*"))
    code, _, err = _finish(_transfer("--data", data, *FAST, "--epochs", "2", "--out", out))
    line = _one_error_line(err)
    assert code == 2 and f"--out {out}" in line and f"another transfer run (process {first.pid})" in line
    assert first.poll() is None and staging.is_dir()        # the first goes on, its staging folder untouched
    first.send_signal(signal.SIGTERM)
    assert _finish(first)[0] == 143
    assert not out.exists() and _leftovers(tmp_path) == []


def test_staging_of_a_live_process_is_kept_and_of_a_dead_one_removed(data, tmp_path):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live = tmp_path / f".run.partial-{alive.pid}-live"
        dead = tmp_path / ".run.partial-999999999-dead"        # no such process id
        for folder in (live, dead):
            folder.mkdir()
            (folder / "history.csv").write_text("epoch\n")
        code, _, err = _finish(_transfer("--data", data, *FAST, "--epochs", "1", "--out", tmp_path / "run"))
        assert code == 0, err
        assert live.is_dir() and not dead.exists() and (tmp_path / "run" / "model.keras").is_file()
        assert f"its process {alive.pid} is still running" in err
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("command, what", [(["grid", "--backbones", "mlp"], "transfer grid"),
                                            (["pretrain", "--backbone", "mlp", "--image-size", "8"], "pretraining")])
def test_a_grid_or_pretraining_on_a_held_folder_is_refused_and_writes_nothing(data, tmp_path, command, what):
    out = tmp_path / "held"
    with output_lock(out, what):                               # what the first grid or pretraining holds
        extra = ["--data", data] if command[0] == "grid" else []
        code, _, err = _finish(_transfer(*command, *extra, "--epochs", "1", "--out", out))
    line = _one_error_line(err)
    assert code == 2 and f"another {what} (process {os.getpid()})" in line and str(out) in line
    assert not out.exists() and _leftovers(tmp_path) == []


def test_two_runs_building_one_toy_cms_backbone_share_it(tmp_path):
    """Two jobs on one KERAS_HOME (as the README recommends for clusters): one builds, the other waits and uses it."""
    from imgen.pipeline import render_files
    from imgen.synth import generate

    generate(tmp_path / "json", events=20, seed=1)
    render_files([tmp_path / "json"], tmp_path / "images", size=16, workers=1)
    env = {"KERAS_HOME": str(tmp_path / "keras"), "HEPVISION_TOY_CMS_EVENTS": "12", "HEPVISION_TOY_CMS_EPOCHS": "1"}
    args = ["--data", tmp_path / "images", "--backbone", "mlp", "--weights", "toy-cms", "--image-size", "16",
            "--epochs", "1", "--fine-tune-epochs", "1", "--patience", "0", "--verbose", "0",
            "--baseline", "none"]
    runs = [_transfer(*args, "--out", tmp_path / name, env=env) for name in ("one", "two")]
    results = [_finish(run) for run in runs]
    for code, _, err in results:
        assert code in (0, 3) and "Traceback" not in err, err      # 3: a network of one epoch may collapse
    cache = tmp_path / "keras" / "models" / "hepvision-toy-cms"
    built = [p for p in cache.iterdir()]
    assert len(built) == 1 and (built[0] / "backbone.weights.h5").is_file(), built
    stderr = "".join(err for _, _, err in results)
    assert stderr.count("pretraining it now") == 1
    assert "waiting for it" in stderr or stderr.count("using the cached") == 2
    assert (tmp_path / "one" / "model.keras").is_file() and (tmp_path / "two" / "model.keras").is_file()


def test_the_wait_for_another_toy_cms_build_is_bounded(tmp_path):
    from imgen.synth import GENERATOR_VERSION

    env = {"KERAS_HOME": str(tmp_path / "keras"), "HEPVISION_TOY_CMS_EVENTS": "12", "HEPVISION_TOY_CMS_EPOCHS": "1",
           "HEPVISION_TOY_CMS_WAIT": "2"}
    folder = tmp_path / "keras" / "models" / "hepvision-toy-cms" / f"mlp-16px-12ev-1ep-seed42-gen{GENERATOR_VERSION}"
    folder.parent.mkdir(parents=True)
    data = make_blob_dataset(tmp_path / "images", classes=("a", "b"), per_class=6, size=16, channels=3)
    with exclusive_lock(lock_path(folder), busy=RuntimeError):   # another node building that backbone
        started = time.monotonic()
        code, _, err = _finish(_transfer("--data", data, "--backbone", "mlp", "--weights", "toy-cms",
                                         "--image-size", "16", "--out", tmp_path / "run", env=env))
        waited = time.monotonic() - started
    line = _one_error_line(err)
    assert code == 2 and f"process {os.getpid()}" in line and "HEPVISION_TOY_CMS_WAIT" in line and "2 s" in line
    assert waited < 120 and not folder.exists() and not (tmp_path / "run").exists()
