"""Export of the Experience API's OpenAPI document, next to the JSON Schemas.

``cxstream schema openapi DIR`` writes ``DIR/openapi.json``, beside the event schemas of
``cxstream schema export DIR`` (the same document ``cxstream serve`` serves at
``/openapi.json``; ``docs/openapi.json`` is a copy, which a test keeps current).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from api.app import create_app
from api.publish import FileResponses
from api.routes import Services
from api.stream import Hub
from flows.api_settings import ApiSettings
from state.actions import MemoryActionBoard
from state.memory import MemoryProfileStore


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document of the API (built over empty in-memory parts)."""
    services = Services(
        conf=ApiSettings(),
        store=MemoryProfileStore(),
        board=MemoryActionBoard(),
        hub=Hub(1, 1),
        publisher=FileResponses(Path("/dev/null")),
    )
    return create_app(services).openapi()


def export_openapi(out_dir: Path) -> Path:
    """Write ``openapi.json`` into ``out_dir``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "openapi.json"
    path.write_bytes(
        orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    return path
