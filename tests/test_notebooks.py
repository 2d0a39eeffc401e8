"""The Colab notebooks are part of the product: each runs top to bottom in a real kernel.

``HEPVISION_SMALL=1`` (read in each notebook's first cell) selects small settings.
"""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # the dev extra; a GPU node may run the suite without it
NotebookClient = pytest.importorskip("nbclient").NotebookClient

from tests.conftest import REPO_ROOT  # noqa: E402

NOTEBOOKS = sorted((REPO_ROOT / "examples").glob("*.ipynb"))
EXPECTED = ["01_create_images.ipynb", "02_augment.ipynb", "03_transfer_learning.ipynb",
            "04_calorimeter_arrays.ipynb", "05_load_and_predict.ipynb"]


def test_all_five_notebooks_are_there():
    assert [path.name for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_stripped_and_opens_like_a_colab_notebook(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs committed"
    assert "colab.research.google.com" in notebook.cells[0].source and "Open In Colab" in notebook.cells[0].source
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "google.colab" in setup.source and "HEPVISION_SMALL" in setup.source
    assert "GPU" in setup.source
    # installs from the source the user sets (a wheel, git URL or PyPI name), never from a guessed address
    assert setup.source.startswith("# Where to install hepvision from") and '\nHEPVISION_SOURCE = ""\n' in setup.source
    assert "git+https://" not in setup.source.replace("git+https://github.com/OWNER/hepvision", "")


def run_notebook(name: str, tmp_path: Path, monkeypatch) -> None:
    """Execute ``examples/<name>`` top to bottom in a real kernel with the small settings; fail on any error."""
    monkeypatch.setenv("HEPVISION_SMALL", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    path = REPO_ROOT / "examples" / name
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert errors == [], f"{name}: {errors}"


# One class per long notebook: ``make test`` distributes by scope (``--dist loadscope``), a class being a
# scope, so the three notebooks that train (2.5-4 minutes each on 2 busy cores) run on different workers
# instead of all on one, which was the suite's critical path.
@pytest.mark.slow
class TestDataNotebooksRun:
    @pytest.mark.parametrize("name", EXPECTED[:2])
    def test_notebook_runs_top_to_bottom(self, name, tmp_path, monkeypatch):
        run_notebook(name, tmp_path, monkeypatch)


@pytest.mark.slow
class TestTransferNotebookRuns:
    def test_notebook_runs_top_to_bottom(self, tmp_path, monkeypatch):
        run_notebook(EXPECTED[2], tmp_path, monkeypatch)


@pytest.mark.slow
class TestArraysNotebookRuns:
    def test_notebook_runs_top_to_bottom(self, tmp_path, monkeypatch):
        run_notebook(EXPECTED[3], tmp_path, monkeypatch)


@pytest.mark.slow
class TestPredictNotebookRuns:
    def test_notebook_runs_top_to_bottom(self, tmp_path, monkeypatch):
        run_notebook(EXPECTED[4], tmp_path, monkeypatch)
