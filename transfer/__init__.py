"""transfer: fine-tune pretrained CNN backbones on event images and report.

TensorFlow is imported lazily (inside functions), so ``--help`` is instant.
"""
from imgen._version import __version__

__all__ = ["__version__"]
