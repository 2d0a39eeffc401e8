"""``python -m transfer``: the subcommands live in :mod:`transfer.cli`, one module each."""
import sys

from transfer.cli import main

if __name__ == "__main__":
    sys.exit(main())
