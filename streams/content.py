"""Content addressing: the SHA-256 that names an object (the object store's keys, a
dataset version's source checksum). Shared by the object-store adapters and the ingest job."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
