"""Packaging for hepvision: three top-level packages, one distribution.

The Keras backend is chosen through an extra on purpose (see README, "Installing"):
``pip install -e .[cpu]`` takes the small CPU-only TensorFlow wheel, ``.[gpu]`` its
CUDA build, ``.[jax]`` / ``.[jax-gpu]`` JAX (``--backend jax``), and on Colab the
preinstalled TensorFlow is used as it is. ``imgen`` and ``augment`` import
neither, so a rendering node needs none.

The metadata lives here and only here (pyproject.toml names the build backend and nothing else); the version
lives in ``imgen/VERSION``, read below and by ``imgen._version`` at run time, so it is spelled once. The wheel
must carry every file the packages read at run time: ``package_data`` lists them (today only that VERSION
file), and ``tests/test_packaging.py`` fails when a file of the packages is missing from the wheel.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = (HERE / "imgen" / "VERSION").read_text().strip()

setup(
    name="hepvision",
    version=VERSION,
    description=(
        "Collision events to eta-phi images, physics-aware augmentation, "
        "and transfer learning with pretrained CNNs"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["imgen", "imgen.*", "augment", "augment.*", "transfer", "transfer.*"]),
    package_data={"imgen": ["VERSION"]},
    python_requires=">=3.10",
    install_requires=[
        "keras>=3.0",
        "numpy>=1.23",
        "pandas>=1.5",
        "pillow>=9.0",
        "Augmentor>=0.2.12",
        # headless: batch nodes and CI have no libGL; we never open a window
        "opencv-python-headless>=4.8",
        "scikit-learn>=1.4",  # HistGradientBoosting early stopping on a given validation split (X_val)
        "h5py>=3.8",
        "matplotlib>=3.6",
        # the field's plot styles (--plot-style cms|atlas|lhcb: style sheets, experiment labels, histplot)
        "mplhep>=1.3",
        "tqdm>=4.64",
        # streaming JSON parser: multi-GB CMS files must not be loaded whole
        "ijson>=3.2",
        # --config FILE and every run's config.yaml
        "pyyaml>=6.0",
        # ISA-L deflate for PNG encoding: 4-5x faster than zlib, the main cost per image
        "isal>=1.6",
        # NanoAOD ROOT input without a ROOT installation: what the field reads NanoAOD with
        "uproot>=5.0",
        "awkward>=2.0",
    ],
    extras_require={
        # CPU-only wheel: a quarter of the download, no CUDA (laptops, CI)
        "cpu": ["tensorflow-cpu>=2.16"],
        # CUDA build plus NVIDIA runtime libraries from PyPI (GPU nodes)
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # Keras on JAX (--backend jax): GPU nodes without TensorFlow, data-parallel training across processes
        # and nodes (Keras 3 cannot train multi-worker on TensorFlow); CPU build here, CUDA build below
        "jax": ["jax>=0.4.30"],
        "jax-gpu": ["jax[cuda12]>=0.4.30"],
        # python -m transfer export: ONNX (Keras' own export runs tf2onnx; onnxruntime checks it),
        # hls4ml firmware for FPGAs (its C++ emulation is built with the system g++)
        "export": ["onnx>=1.16", "onnxruntime>=1.17", "tf2onnx>=1.16", "hls4ml>=1.1"],
        "dev": [
            # python -m build makes the wheel and sdist; tests/test_packaging.py builds and installs them
            "build>=1.0",
            "pytest>=7.4",
            "pytest-xdist>=3.3",
            "nbclient>=0.9",
            "nbformat>=5.9",
            "ipykernel>=6.25",
        ],
    },
    entry_points={
        "console_scripts": [
            "hepvision-imgen=imgen.__main__:main",
            "hepvision-augment=augment.__main__:main",
            "hepvision-transfer=transfer.cli:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Physics",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
