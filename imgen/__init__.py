"""imgen: CMS-style collision events and calorimeter arrays to eta-phi images.

Never imports TensorFlow: rendering on a batch farm must stay light.
"""
from imgen._version import __version__

__all__ = ["__version__"]
