"""The command line: index · query · eval · whiten · train · vocabulary · codebook · migrate ·
stats · demo · bench · serve — one module per group of commands, above both the core and the
services (the one package of the project, with imsearch.bench, that may import both).

Model and engine settings come from ``IMSEARCH_*`` environment variables (see
:class:`~imsearch.settings.Settings`); the options before the command override them, e.g.
``imsearch --backbone efficientnet_lite0 --max-side 512 eval DATASET --json out.json``.
"""

from __future__ import annotations

import importlib

from imsearch.cli.common import app

# The commands register on the app as their modules are imported: this order is --help's.
for _group in ("index", "query", "eval", "train", "admin", "bench", "serve"):
    importlib.import_module(f"imsearch.cli.{_group}")

from imsearch.cli.serve import _claim_data_dir  # noqa: E402  (registered above)

__all__ = ["_claim_data_dir", "app", "run"]


def run() -> None:  # pragma: no cover - console entry
    app(prog_name="imsearch")
