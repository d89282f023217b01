"""A content-addressed object store in a local folder (S3-compatible stores later via fsspec).

Objects are immutable: the path is derived from the SHA-256 of the bytes, so writing the
same content twice is a no-op and a URI always names the same bytes. Writes go to a
temporary file first and are renamed into place, so a crash never leaves half an object.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

SCHEME = "datrix-object://"
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _relative(self, tenant: str, sha: str, suffix: str) -> str:
        if not _TENANT.match(tenant):
            raise ValueError(f"invalid tenant id {tenant!r}")
        return f"{tenant}/sha256/{sha[:2]}/{sha}{suffix}"

    def put_file(self, tenant: str, source: Path, suffix: str) -> tuple[str, str]:
        sha = sha256_file(source)
        rel = self._relative(tenant, sha, suffix)
        target = self.root / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            os.close(fd)
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())  # durable before it is named, as put_bytes
            os.replace(tmp, target)
        return SCHEME + rel, sha

    def put_bytes(self, tenant: str, data: bytes, suffix: str) -> tuple[str, str]:
        sha = hashlib.sha256(data).hexdigest()
        rel = self._relative(tenant, sha, suffix)
        target = self.root / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        return SCHEME + rel, sha

    def local_path(self, uri: str) -> Path:
        if not uri.startswith(SCHEME):
            raise ValueError(f"not a Datrix object URI: {uri}")
        rel = uri[len(SCHEME) :]
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object URI escapes the store: {uri}")
        return path

    def remove(self, uri: str) -> None:
        """Delete an object nothing refers to (the caller checks: objects are shared by
        every reference to the same bytes)."""
        self.local_path(uri).unlink(missing_ok=True)

    def read_bytes(self, uri: str) -> bytes:
        return self.local_path(uri).read_bytes()
