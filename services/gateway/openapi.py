"""The public API's OpenAPI description, as clients are generated from it.

    python -m services.gateway.openapi clients/openapi.json

It is the gateway's own ``/openapi.json`` with API keys required for reads too
(``IMSEARCH_SEARCH_REQUIRES_KEY``), so that every operation that *may* need the key declares
it and generated clients send it wherever it is given. ``make clients`` regenerates the
clients under ``clients/`` from this file; a test keeps it in step with the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from imsearch.settings import Settings
from services.gateway.app import create_app


def public_spec() -> dict[str, Any]:
    # A key of the documented minimum length only marks the API as keyed; it is not written.
    settings = Settings(search_requires_key=True, api_keys="k" * 16)
    return create_app(settings).openapi()


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(render(public_spec()))
