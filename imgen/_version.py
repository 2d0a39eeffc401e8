"""The package version, read from the one VERSION file that setup.py also reads."""
from pathlib import Path

__version__ = (Path(__file__).with_name("VERSION")).read_text().strip()
