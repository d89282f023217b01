"""Content-addressed object stores: a local folder (the default) and S3 (``s3://``).

Objects are immutable: the key is derived from the SHA-256 of the bytes
(``<tenant>/sha256/ab/<sha><suffix>``), so writing the same content twice is a no-op and
a URI (``datrix-object://<key>``) always names the same bytes, whichever store holds
them. Local writes go to a temporary file first and are renamed into place, so a crash
never leaves half an object; an S3 PUT (or a completed multipart upload) is atomic.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datrix.streams.content import sha256_file
from datrix.streams.private_state import private_dirs

if TYPE_CHECKING:
    from obstore.store import ClientConfig

    from datrix.streams.ports import ObjectStore
    from datrix.streams.settings import Settings

SCHEME = "datrix-object://"
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# what a stored object's key looks like (checked before a remote store is asked for it)
_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,64})/sha256/([0-9a-f]{2})/([0-9a-f]{64})([A-Za-z0-9.]*)$")


class ObjectStoreError(OSError):
    """A store that cannot be reached, refuses the credentials, or holds other bytes than
    a URI names: one line saying which store and why."""


def _key_of(uri: str) -> tuple[str, str]:
    """(key, sha256) of a Datrix object URI; ValueError when it is not one."""
    if not uri.startswith(SCHEME):
        raise ValueError(f"not a Datrix object URI: {uri}")
    key = uri[len(SCHEME) :]
    found = _KEY.match(key)
    if found is None or found.group(1) in (".", ".."):
        raise ValueError(f"not a Datrix object URI: {uri}")
    return key, found.group(3)


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        private_dirs(root)  # datasets: the owner's alone (streams/private_state.py)

    @property
    def location(self) -> str:
        return str(self.root)

    def _relative(self, tenant: str, sha: str, suffix: str) -> str:
        return _relative(tenant, sha, suffix)

    def put_file(self, tenant: str, source: Path, suffix: str) -> tuple[str, str]:
        sha = sha256_file(source)
        rel = self._relative(tenant, sha, suffix)
        target = self.root / rel
        if not target.exists():
            private_dirs(target.parent)
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
            private_dirs(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        return SCHEME + rel, sha

    def probe(self) -> None:
        """Raise OSError unless the folder can be read (``/health/ready``)."""
        os.listdir(self.root)

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

    def local_copy(self, uri: str, folder: Path) -> Path:
        """The stored file itself (nothing is copied into ``folder``)."""
        path = self.local_path(uri)
        if not path.is_file():
            raise FileNotFoundError(f"object not in the store: {uri}")
        return path

    def exists(self, uri: str) -> bool:
        return self.local_path(uri).is_file()


# -- S3 ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Location:
    """Where and how to reach an S3-API store (from DATRIX_OBJECT_STORE and DATRIX_S3_*)."""

    bucket: str
    prefix: str  # "" or "a/b" (no leading or trailing slash)
    endpoint: str | None = None  # None: AWS itself
    access_key: str | None = None  # None (both): the AWS_* environment / instance role
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class S3ObjectStore:
    """The same content-addressed layout under ``s3://bucket/prefix/``, through obstore
    (the Rust object_store crate: multipart uploads, retries, streaming downloads). A
    read checks the bytes against the SHA-256 the URI names."""

    def __init__(self, where: S3Location) -> None:
        from obstore.store import S3Store

        self.where = where
        config: dict[str, Any] = {"virtual_hosted_style_request": where.endpoint is None}
        if where.endpoint is not None:
            config["endpoint"] = where.endpoint
        if where.access_key is not None:
            config["access_key_id"] = where.access_key
            config["secret_access_key"] = where.secret_key
        if where.region is not None:
            config["region"] = where.region
        client: ClientConfig = {"connect_timeout": timedelta(seconds=10)}
        if where.endpoint is not None and where.endpoint.startswith("http://"):
            client["allow_http"] = True
        self._store = S3Store(
            where.bucket,
            client_options=client,
            # a store that is down fails within seconds, not after the default 3 minutes
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)},
            **config,
        )

    @property
    def location(self) -> str:
        return self.where.url

    def _key(self, rel: str) -> str:
        return f"{self.where.prefix}/{rel}" if self.where.prefix else rel

    def probe(self) -> None:
        """Raise ObjectStoreError unless the bucket answers a listing (one key at most)
        with these credentials (``/health/ready``): a real request, not the address."""
        import obstore

        try:
            stream = obstore.list(self._store, prefix=self.where.prefix or None, chunk_size=1)
            next(iter(stream), None)
        except Exception as exc:
            raise self._fail("cannot list the bucket", exc) from None

    def _fail(self, what: str, exc: Exception) -> ObjectStoreError:
        first = (str(exc).splitlines() or [""])[0]
        return ObjectStoreError(f"object store {self.location}: {what}: {first[:300]}")

    def _present(self, key: str) -> bool:
        import obstore

        try:
            obstore.head(self._store, key)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._fail(f"cannot read {key}", exc) from None
        return True

    def _put(self, rel: str, data: bytes | Path) -> None:
        import obstore

        key = self._key(rel)
        if self._present(key):
            return  # content-addressed: the same bytes are already there
        try:
            obstore.put(self._store, key, data)
        except Exception as exc:
            raise self._fail(f"cannot store {key}", exc) from None

    def put_file(self, tenant: str, source: Path, suffix: str) -> tuple[str, str]:
        sha = sha256_file(source)
        rel = _relative(tenant, sha, suffix)
        self._put(rel, source)
        return SCHEME + rel, sha

    def put_bytes(self, tenant: str, data: bytes, suffix: str) -> tuple[str, str]:
        sha = hashlib.sha256(data).hexdigest()
        rel = _relative(tenant, sha, suffix)
        self._put(rel, data)
        return SCHEME + rel, sha

    def _chunks(self, uri: str) -> Iterator[bytes]:
        """The object's bytes, streamed; FileNotFoundError when it is not there, and
        ObjectStoreError when they are not the bytes the URI names."""
        import obstore

        rel, sha = _key_of(uri)
        key = self._key(rel)
        digest = hashlib.sha256()
        try:
            result = obstore.get(self._store, key)
            for chunk in result:
                part = bytes(chunk)
                digest.update(part)
                yield part
        except FileNotFoundError:
            raise FileNotFoundError(f"object not in the store: {uri}") from None
        except Exception as exc:
            raise self._fail(f"cannot read {key}", exc) from None
        if digest.hexdigest() != sha:
            raise ObjectStoreError(
                f"object store {self.location}: {key} does not hold the bytes its name says "
                f"(sha256 {digest.hexdigest()})"
            )

    def read_bytes(self, uri: str) -> bytes:
        return b"".join(self._chunks(uri))

    def local_copy(self, uri: str, folder: Path) -> Path:
        """Download the object into ``folder`` (a scratch folder its caller removes)."""
        rel, _ = _key_of(uri)
        private_dirs(folder)
        target = folder / rel.rsplit("/", 1)[-1]
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in self._chunks(uri):
                    fh.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def exists(self, uri: str) -> bool:
        rel, _ = _key_of(uri)
        return self._present(self._key(rel))

    def remove(self, uri: str) -> None:
        """Delete an object nothing refers to (the caller checks, as for the local store)."""
        import obstore

        rel, _ = _key_of(uri)
        try:
            obstore.delete(self._store, self._key(rel))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail(f"cannot delete {rel}", exc) from None


def _relative(tenant: str, sha: str, suffix: str) -> str:
    if not _TENANT.match(tenant) or tenant in (".", ".."):
        raise ValueError(f"invalid tenant id {tenant!r}")
    return f"{tenant}/sha256/{sha[:2]}/{sha}{suffix}"


def open_object_store(settings: Settings, location: str | None = None) -> ObjectStore:
    """The store the settings name: S3 when DATRIX_OBJECT_STORE is ``s3://...``, else the
    folder ``DATRIX_HOME/objects``. ``location`` (a job process is given its parent's
    ``store.location``) overrides DATRIX_OBJECT_STORE."""
    if location is None:
        location = settings.object_store or str(settings.home / "objects")
    if location.startswith("s3://"):
        from datrix.streams.settings import s3_location

        return S3ObjectStore(s3_location(location, settings))
    return LocalObjectStore(Path(location))
