"""augment: physics-aware Augmentor expansion of the training split only."""
from imgen._version import __version__

__all__ = ["__version__"]
