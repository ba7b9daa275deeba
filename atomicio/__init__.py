"""Atomic file writes, the one primitive every layer (lm, experiments, sweeps, analysis, scaling) shares.

A reader never sees half a file: the bytes go to a temp file in the target's own folder (so the rename
stays on one filesystem), are flushed and fsynced, get the permissions a plain `open()` would have given
(mkstemp creates 0600), and are renamed over the target with `os.replace`, which is atomic on POSIX and
on NFS. On any error the temp file is removed and the old target, if any, is left as it was.

`writing(path)` yields a binary file object for writers that stream (torch.save, savefig, np.save);
`write_bytes`, `write_text` and `write_json` cover the rest. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace `path` atomically when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with writing(path) as stream:
        stream.write(data)


def write_text(path: str | Path, text: str) -> None:
    """UTF-8, newlines as given."""
    write_bytes(path, text.encode("utf-8"))


def strict_json(value):
    """`value` with every non-finite float replaced by None, so json.dumps(allow_nan=False) accepts it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_json(path: str | Path, obj, *, indent: int | None = 1) -> None:
    """Strict JSON (non-finite floats as null) with a final newline."""
    write_text(path, json.dumps(strict_json(obj), indent=indent, allow_nan=False) + "\n")
