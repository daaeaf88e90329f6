"""Export and import trained models: a one-line JSON header, then a pickle.

The header says what the file is before anything is unpickled::

    {"format": "cxstream-model", "version": 3, "kind": "ChurnEngine", "model": "logreg",
     "river": "0.26.1", "sha256": "...", "bytes": 123456}

:func:`import_model` refuses a file whose format, version or kind is not the
expected one, or whose payload does not match its checksum, with a message
that says so; only then does it unpickle. Unpickling runs code: import only
files this deployment exported. Files are written to a temporary name and
renamed, so a reader never sees half a file.

A :class:`~online_models.churn.ChurnEngine` is exported whole: its model (the
scaler's running statistics and the weights), its prequential figures, its
settings and its pending snapshots; a listener (``on_label``) is not.

>>> import tempfile, pathlib
>>> from online_models.churn import ChurnEngine
>>> path = pathlib.Path(tempfile.mkdtemp()) / "churn.model"
>>> header = export_model(ChurnEngine(), path)
>>> header["format"], header["version"], header["kind"], header["model"]
('cxstream-model', 3, 'ChurnEngine', 'logreg')
>>> type(import_model(path, ChurnEngine)).__name__
'ChurnEngine'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pickle
from pathlib import Path
from typing import Any, TypeVar

import orjson

FORMAT = "cxstream-model"
# 2: the models of one lane (flows.steps.score.Models), since the flow went per lane
# 3: the same bundle at its own module (online_models.bundle.Models)
FORMAT_VERSION = 3
MAX_HEADER_BYTES = 4096

T = TypeVar("T")


class ModelFileError(ValueError):
    """A model file that this version of cxstream will not load."""


def _model_name(obj: Any) -> str:
    settings = getattr(obj, "settings", None)
    churn = getattr(settings, "churn", None)
    return str(getattr(churn, "model", type(obj).__name__))


def export_model(obj: Any, path: Path | str) -> dict[str, Any]:
    """Write ``obj`` to ``path`` (atomically); return the header written."""
    path = Path(path)
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": type(obj).__name__,
        "model": _model_name(obj),
        "river": importlib.metadata.version("river"),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "bytes": len(payload),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(orjson.dumps(header) + b"\n")
        out.write(payload)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    return header


def read_header(path: Path | str) -> dict[str, Any]:
    """Return the header of a model file, checked for format and version (nothing unpickled)."""
    path = Path(path)
    with path.open("rb") as source:
        line = source.readline(MAX_HEADER_BYTES)
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        msg = f"{path} is not a cxstream model file (no {FORMAT!r} header line)"
        raise ModelFileError(msg)
    if header.get("version") != FORMAT_VERSION:
        msg = (
            f"{path} is a cxstream model file of format version {header.get('version')!r}; "
            f"this cxstream reads version {FORMAT_VERSION} only: export the model again "
            "with this version, or retrain it"
        )
        raise ModelFileError(msg)
    return header


def import_model(path: Path | str, expected: type[T]) -> T:
    """Load the object exported to ``path``, which must be an ``expected``."""
    path = Path(path)
    header = read_header(path)
    if header.get("kind") != expected.__name__:
        msg = f"{path} holds a {header.get('kind')!r}, not a {expected.__name__!r}"
        raise ModelFileError(msg)
    data = path.read_bytes()
    payload = data[data.index(b"\n") + 1 :]
    if len(payload) != header.get("bytes") or (
        hashlib.sha256(payload).hexdigest() != header.get("sha256")
    ):
        msg = f"{path} is damaged: its payload does not match the checksum in its header"
        raise ModelFileError(msg)
    obj = pickle.loads(payload)  # noqa: S301 (trusted: written by export_model, checksum verified)
    if not isinstance(obj, expected):
        msg = f"{path} unpickled to a {type(obj).__name__}, not a {expected.__name__}"
        raise ModelFileError(msg)
    return obj
