"""Configuration from the environment; with nothing set, the embedded default."""

from __future__ import annotations

import getpass
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from streams.object_store import S3Location

DEFAULT_JOB_TIMEOUT_S = 3600.0


class SettingsError(ValueError):
    """A setting in the environment that cannot be used (the CLI says so, exit 2)."""


def default_job_memory_mb() -> int:
    """80 % of the machine's memory: a job that needs more fails with the reason instead
    of swapping the machine or meeting the kernel's out-of-memory killer."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
    return max(int(total * 0.8) // 2**20, 1)


def _budget(name: str, default: float, unit: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"{name} must be a number of {unit} >= 0 (0: no limit), got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    tenant: str
    actor: str
    kafka_bootstrap: str | None
    database_url: str | None
    redis_url: str | None
    spark_master: str | None
    object_store: str | None
    database_schema: str = "public"
    # Budgets of one job (a scan); 0 turns a budget off. A job over budget is stopped and
    # its scan fails, saying which budget it passed.
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S
    job_memory_mb: int = 0
    # The S3-API service of DATRIX_OBJECT_STORE=s3://... (None: AWS and its own
    # AWS_* environment); read only when the object store is S3.
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_region: str | None = None
    # Importable modules that extend the registry (aggregates, policies, job kinds): each
    # has ``register(registry)`` (DATRIX_EXTENSIONS, comma-separated).
    extensions: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9_.=-]+$")
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")


def _object_store(raw: str | None) -> str | None:
    """DATRIX_OBJECT_STORE: unset (objects under DATRIX_HOME/objects) or
    ``s3://bucket[/prefix]``, returned without a trailing slash."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    usage = (
        "DATRIX_OBJECT_STORE must be s3://bucket[/prefix] "
        "(unset: objects under DATRIX_HOME/objects)"
    )
    if not value.startswith("s3://"):
        raise SettingsError(f"{usage}, got {raw!r}")
    bucket, _, prefix = value[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise SettingsError(
            f"DATRIX_OBJECT_STORE: {bucket!r} is not an S3 bucket name (3-63 characters: "
            f"a-z, 0-9, '.', '-'), got {raw!r}"
        )
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    if any(p in (".", "..") or not _PREFIX_PART.match(p) for p in parts):
        raise SettingsError(
            f"DATRIX_OBJECT_STORE: the prefix must be folder names of A-Z a-z 0-9 _ . = - "
            f"separated by '/', got {raw!r}"
        )
    return f"s3://{bucket}/{'/'.join(parts)}" if parts else f"s3://{bucket}"


def _s3_endpoint(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
        or (port is not None and not 0 < port < 65536)
    ):
        raise SettingsError(f"DATRIX_S3_ENDPOINT must be an http(s)://host[:port] URL, got {raw!r}")
    return value


def s3_location(url: str, settings: Settings) -> S3Location:
    """The S3 store at ``url`` (an ``s3://`` DATRIX_OBJECT_STORE) with the settings' service."""
    from streams.object_store import S3Location

    checked = _object_store(url)
    assert checked is not None
    bucket, _, prefix = checked[len("s3://") :].partition("/")
    return S3Location(
        bucket=bucket,
        prefix=prefix,
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        region=settings.s3_region,
    )


def _s3_settings(env: os._Environ[str] | dict[str, str]) -> dict[str, str | None]:
    endpoint = _s3_endpoint(env.get("DATRIX_S3_ENDPOINT"))
    access = env.get("DATRIX_S3_ACCESS_KEY") or None
    secret = env.get("DATRIX_S3_SECRET_KEY") or None
    if (access is None) != (secret is None):
        raise SettingsError(
            "DATRIX_S3_ACCESS_KEY and DATRIX_S3_SECRET_KEY go together: set both, or neither "
            "(then the AWS_* environment or the machine's role is used)"
        )
    region = (env.get("DATRIX_S3_REGION") or "").strip() or None
    if region is not None and not _REGION.match(region):
        raise SettingsError(f"DATRIX_S3_REGION must look like us-east-1, got {region!r}")
    if region is None and endpoint is not None:
        region = "us-east-1"  # what S3-API servers other than AWS expect in the signature
    return {
        "s3_endpoint": endpoint,
        "s3_access_key": access,
        "s3_secret_key": secret,
        "s3_region": region,
    }


def load_settings() -> Settings:
    env = os.environ
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    object_store = _object_store(env.get("DATRIX_OBJECT_STORE"))
    s3 = _s3_settings(env) if object_store is not None else {}
    return Settings(
        home=Path(env.get("DATRIX_HOME", ".datrix")).resolve(),
        tenant=env.get("DATRIX_TENANT", "default"),
        actor=env.get("DATRIX_ACTOR", f"cli:{user}"),
        kafka_bootstrap=env.get("DATRIX_KAFKA_BOOTSTRAP") or None,
        database_url=env.get("DATRIX_DATABASE_URL") or None,
        redis_url=env.get("DATRIX_REDIS_URL") or None,
        spark_master=env.get("DATRIX_SPARK_MASTER") or None,
        object_store=object_store,
        database_schema=env.get("DATRIX_DATABASE_SCHEMA") or "public",
        job_timeout_s=_budget("DATRIX_JOB_TIMEOUT_S", DEFAULT_JOB_TIMEOUT_S, "seconds"),
        job_memory_mb=int(_budget("DATRIX_JOB_MEMORY_MB", default_job_memory_mb(), "MB")),
        extensions=tuple(
            m.strip() for m in env.get("DATRIX_EXTENSIONS", "").split(",") if m.strip()
        ),
        **s3,
    )
