"""``python -m imsearch.cli``: the same command line as ``imsearch``."""

from imsearch.cli import run

run()
