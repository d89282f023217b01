"""All configuration, in one ``Settings`` (pydantic-settings); with nothing set, the
embedded default.

``load_settings()`` is the one function that reads the environment: every ``DATRIX_*``
variable is a field of ``Settings`` (``DATRIX_HOME`` -> ``home``...), checked here, so a
bad value ends as one ``SettingsError`` line naming the variable (the CLI: exit 2) before
any work starts. ``Settings(...)`` itself never reads the environment: it is the given
values and the defaults, which is what tests and the job process (handed its parent's
settings on stdin) want. The composition root (``runtime/bootstrap.py``) builds everything
else from one ``Settings``.

Not a setting: ``DATRIX_TEST_JOB_FAULT`` (``streams/faults.py``), a crash switch for tests
that is read where it acts and is no part of the product's configuration.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseSettingsSource

if TYPE_CHECKING:
    from datrix.streams.object_store import S3Location

ENV_PREFIX = "DATRIX_"
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


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def _var(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _budget(name: str, raw: Any, default: float, unit: str) -> float:
    text = _text(raw).strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"{name} must be a number of {unit} >= 0 (0: no limit), got {text!r}")
    return value


def _number(name: str, raw: Any, default: float, positive: bool = False) -> float:
    """A number (``default`` when empty); ``positive``: > 0."""
    text = _text(raw).strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if positive and not value > 0:
        raise SettingsError(f"{name} must be a positive number, got {_text(raw)!r}")
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a number, got {_text(raw)!r}")
    return value


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9_.=-]+$")
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PRODUCER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_S3_FIELDS = ("s3_endpoint", "s3_access_key", "s3_secret_key", "s3_region")
# A JVM memory size as Spark takes it (spark.driver.memory, spark.executor.memory): a whole
# number and a unit k, m, g or t (either case). Spark refuses a heap under ~450 MiB
# ("System memory ... must be at least 471859200") only once the JVM runs: 512m is the floor.
_SPARK_SIZE = re.compile(r"^([1-9][0-9]*)([kmgt])$", re.IGNORECASE)
_SPARK_SIZE_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
SPARK_MIN_MEMORY_MIB = 512
DEFAULT_SPARK_MEMORY = "1g"


def spark_memory(name: str, raw: Any, default: str | None = DEFAULT_SPARK_MEMORY) -> str | None:
    """A Spark memory size (``512m``, ``2g``; empty: ``default``), lower-cased."""
    text = _text(raw).strip()
    if not text:
        return default
    match = _SPARK_SIZE.match(text)
    if match is None:
        raise SettingsError(
            f"{name} must be a size like 512m or 2g (a whole number and k, m, g or t), got {text!r}"
        )
    mib = int(match.group(1)) * _SPARK_SIZE_MIB[match.group(2).lower()]
    if mib < SPARK_MIN_MEMORY_MIB:
        raise SettingsError(
            f"{name} must be at least {SPARK_MIN_MEMORY_MIB}m (Spark needs ~450 MiB of heap), "
            f"got {text!r}"
        )
    return text.lower()


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
    return _http_url("DATRIX_S3_ENDPOINT", raw)


def _http_url(name: str, raw: str | None) -> str | None:
    """An http(s)://host[:port][/path] URL without credentials, query or fragment, returned
    without a trailing slash (unset or empty: None)."""
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
        raise SettingsError(f"{name} must be an http(s)://host[:port] URL, got {raw!r}")
    return value


def _openlineage_url(raw: str | None) -> str | None:
    """``DATRIX_OPENLINEAGE_URL``: http(s)://..., file:///absolute/path, kafka://topic or
    console (unset or empty: None)."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    name = "DATRIX_OPENLINEAGE_URL"
    if value == "console":
        return value
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        base = _http_url(name, f"{parts.scheme}://{parts.netloc}")
        if parts.query or parts.fragment:
            raise SettingsError(f"{name} takes no query or fragment, got {raw!r}")
        return f"{base}{parts.path.rstrip('/')}"
    if value.startswith("file://"):
        path = value[len("file://") :]
        if not path.startswith("/") or path.endswith("/"):
            raise SettingsError(f"{name} file://PATH needs an absolute file path, got {raw!r}")
        return value
    if value.startswith("kafka://"):
        topic = value[len("kafka://") :]
        if not topic or not all(c.isalnum() or c in "._-" for c in topic) or len(topic) > 249:
            raise SettingsError(f"{name} kafka://TOPIC needs a Kafka topic name, got {raw!r}")
        return value
    raise SettingsError(
        f"{name} must be http(s)://host[:port][/path], file:///path, kafka://topic or "
        f"console, got {raw!r}"
    )


def _s3_settings(given: Mapping[str, Any]) -> dict[str, str | None]:
    """The S3 service of an ``s3://`` store, from the raw (or already checked) fields."""

    def raw(name: str) -> str | None:
        value = given.get(name)
        return None if value is None else _text(value)

    endpoint = _s3_endpoint(raw("s3_endpoint"))
    access = raw("s3_access_key") or None
    secret = raw("s3_secret_key") or None
    if (access is None) != (secret is None):
        raise SettingsError(
            "DATRIX_S3_ACCESS_KEY and DATRIX_S3_SECRET_KEY go together: set both, or neither "
            "(then the AWS_* environment or the machine's role is used)"
        )
    region = (raw("s3_region") or "").strip() or None
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


class Settings(BaseSettings):
    """Every setting, each read from ``DATRIX_<FIELD NAME>`` by ``load_settings()``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    home: Path = Path(".datrix")  # resolved against the working folder when read
    tenant: str = "default"
    actor: str = Field(default_factory=_default_actor)
    kafka_bootstrap: str | None = None  # set: Kafka mode
    database_url: str | None = None  # the writer role (datrix_writer): workers, migrations
    # The reader role (datrix_reader) the tenant-scoped queries run as; Kafka mode needs it.
    database_reader_url: str | None = None
    redis_url: str | None = None
    spark_master: str | None = None  # --engine spark: unset is local[*]
    # The heap of the Spark driver (the job process's JVM) and of each executor.
    # Unset executor memory: the cluster's spark-defaults.conf (deploy/k8s), else Spark's 1g.
    spark_driver_memory: str = DEFAULT_SPARK_MEMORY
    spark_executor_memory: str | None = None
    object_store: str | None = None  # s3://bucket[/prefix]; unset: DATRIX_HOME/objects
    database_schema: str = "public"
    topic_prefix: str = "datrix."
    # Replication of the topics ensure_topics creates (streams/kafka.py): 1 for the single
    # local broker; 3 and 2 on a 3-broker cluster (a write then survives one broker lost).
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1
    # How long a client (the CLI, a starting worker) waits for an unreachable broker
    # before it gives up with one line (exit 2); streams/kafka_logging.py.
    kafka_timeout_s: float = 30.0
    # Who this process is to the broker (docs/security.md "Who can produce"): SASL
    # credentials, both or neither; unset: an unauthenticated client, which the broker of
    # deploy/local refuses. Every Kafka client is configured from them by
    # streams/kafka.py client_config, and nowhere else.
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = Field(default=None, repr=False)
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    # External producers and the tenants each may produce for:
    # "name:tenant[+tenant...],..." (the intake worker role reads <prefix>intake.<name>).
    kafka_producers: Annotated[tuple[tuple[str, tuple[str, ...]], ...], NoDecode] = ()
    # Budgets of one job (a scan); 0 turns a budget off. A job over budget is stopped and
    # its scan fails, saying which budget it passed.
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S
    job_memory_mb: int = Field(default_factory=default_job_memory_mb)
    # The S3-API service of DATRIX_OBJECT_STORE=s3://... (None: AWS and its own
    # AWS_* environment); read only when the object store is S3.
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = Field(default=None, repr=False)
    s3_region: str | None = None
    # How the Polars engine reads a table (jobs/quality/table.py, near_duplicates/segments.py;
    # datrix.jobs.engine.ScanTuning carries them into the engines): decoded whole up to this size
    # and row count, else bounded; chunk_rows forces the rows of a bounded chunk (tests and
    # benchmarks; 0: from the row width).
    scan_in_memory_mb: float = 512.0
    scan_in_memory_rows: int = 1_500_000
    scan_chunk_rows: int = 0
    near_dup_segment_rows: int = 500_000
    # Bounds on malformed text input (jobs/ingest.py Limits).
    max_line_mb: float = 16.0
    max_columns: int = 20_000
    # Extension modules (comma-separated) that register aggregates, read models, job kinds.
    extensions: Annotated[tuple[str, ...], NoDecode] = ()
    # The audit anchor (projections/audit.py, docs/security.md "Audit anchor"): the key
    # that signs each audit chain's head, and how many entries a chain may grow before the
    # Kafka-mode projector checkpoints it (the embedded default checkpoints after each
    # catch-up). Unset key: the embedded default keeps one in DATRIX_HOME/audit.key (0600);
    # Kafka mode does not anchor and says so.
    audit_key: str | None = Field(default=None, repr=False)
    # Keys that signed earlier checkpoints (comma-separated): verify-only, so the signing
    # key can be rotated (DATRIX_AUDIT_KEY: the new one) and old checkpoints still check.
    audit_previous_keys: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)
    audit_checkpoint_every: int = 1000
    # The fixes' PII secrets (jobs/fixes.py, docs/security.md "PII salt and token key"):
    # the salt of the salted hash (Pii action "hash") and the key of reversible tokens
    # (action "tokenise"). Each tenant gets its own, derived as HMAC-SHA256(secret,
    # tenant); unset, a fix that asks for that action fails saying which variable to set.
    # Secrets: never in a repr, a log line or an event.
    pii_salt: str | None = Field(default=None, repr=False)
    token_key: str | None = Field(default=None, repr=False)
    # The HTTP API (`datrix serve`): the largest upload it takes (413 beyond).
    api_max_upload_mb: float = 1024.0
    # Requests per second one API key may make (bursts of twice that); 0: no limit. Shared
    # by every server process in Redis when DATRIX_REDIS_URL is set, else per process.
    api_rate_limit: float = 100.0
    # Seconds between keep-alive comments of an idle event stream (GET /v1/jobs/{id}/events).
    api_events_keepalive_s: float = 15.0
    # Whether GET /metrics answers (Prometheus text; no key: docs/security.md "/metrics").
    api_metrics: bool = True
    # A Confluent-compatible schema registry (Apicurio's /apis/ccompat/v7, Confluent's):
    # the stream monitor reads format avro-confluent with it (jobs/streams/formats.py);
    # unset, such a stream is refused in one line.
    schema_registry_url: str | None = None
    # The Kafka Connect REST API `datrix connectors` drives (deploy/local/up connect prints
    # it): http(s)://host:port; unset, those commands say so.
    connect_url: str | None = None
    # Where OpenLineage run events of scans go (runtime/lineage.py): http(s)://host[:port]
    # [/path] (a Marquez or DataHub endpoint; path default /api/v1/lineage), file:///path
    # (JSON lines), kafka://topic (the deployment's broker) or console; unset: none emitted.
    openlineage_url: str | None = None
    log_level: str = "INFO"  # datrix worker
    debug: bool = False  # tracebacks instead of one-line errors

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: the environment is read by ``load_settings`` alone."""
        return (init_settings,)

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (field names), checked like the environment's values."""
        return _checked({**self.model_dump(), **changes})

    # -- checks: each takes the environment's text or an already checked value --------------
    @model_validator(mode="before")
    @classmethod
    def _s3_only_for_s3(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        store = data.get("object_store")
        if store is None or not _text(store).strip():
            return {k: v for k, v in data.items() if k not in _S3_FIELDS}
        return {**data, **_s3_settings(data)}

    @field_validator("home", mode="after")
    @classmethod
    def _resolved(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator(
        "kafka_bootstrap",
        "database_url",
        "database_reader_url",
        "redis_url",
        "spark_master",
        "schema_registry_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return value or None

    @field_validator("object_store", mode="before")
    @classmethod
    def _store(cls, value: Any) -> str | None:
        return _object_store(None if value is None else _text(value))

    @field_validator("connect_url", mode="before")
    @classmethod
    def _connect_url(cls, value: Any) -> str | None:
        return _http_url("DATRIX_CONNECT_URL", None if value is None else _text(value))

    @field_validator("openlineage_url", mode="before")
    @classmethod
    def _openlineage_url(cls, value: Any) -> str | None:
        return _openlineage_url(None if value is None else _text(value))

    @field_validator("spark_driver_memory", mode="before")
    @classmethod
    def _spark_driver_memory(cls, value: Any) -> str | None:
        return spark_memory("DATRIX_SPARK_DRIVER_MEMORY", value)

    @field_validator("spark_executor_memory", mode="before")
    @classmethod
    def _spark_executor_memory(cls, value: Any) -> str | None:
        return spark_memory("DATRIX_SPARK_EXECUTOR_MEMORY", "" if value is None else value, None)

    @field_validator("database_schema", mode="before")
    @classmethod
    def _schema(cls, value: Any) -> Any:
        return value or "public"

    @field_validator("job_timeout_s", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        return _budget("DATRIX_JOB_TIMEOUT_S", value, DEFAULT_JOB_TIMEOUT_S, "seconds")

    @field_validator("job_memory_mb", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int:
        if not _text(value).strip():
            return default_job_memory_mb()
        return int(_budget("DATRIX_JOB_MEMORY_MB", value, 0, "MB"))

    @field_validator(
        "scan_in_memory_mb",
        "scan_in_memory_rows",
        "scan_chunk_rows",
        "near_dup_segment_rows",
        mode="before",
    )
    @classmethod
    def _tuning(cls, value: Any, info: ValidationInfo) -> float:
        name = info.field_name or ""
        default = cls.model_fields[name].default
        number = _number(_var(name), value, default)
        return number if name == "scan_in_memory_mb" else int(number)

    @field_validator("kafka_timeout_s", mode="before")
    @classmethod
    def _kafka_timeout(cls, value: Any) -> float:
        return _number("DATRIX_KAFKA_TIMEOUT_S", value, 30.0, positive=True)

    @field_validator("kafka_replication_factor", "kafka_min_insync_replicas", mode="before")
    @classmethod
    def _replicas(cls, value: Any, info: ValidationInfo) -> int:
        name = info.field_name or ""
        text = _text(value).strip()
        if not text:
            return int(cls.model_fields[name].default)
        if not text.isdigit() or not 1 <= int(text) <= 32767:
            raise SettingsError(
                f"{_var(name)} must be a whole number of brokers >= 1, got {text!r}"
            )
        return int(text)

    @field_validator("kafka_sasl_username", "kafka_sasl_password", mode="before")
    @classmethod
    def _sasl_text(cls, value: Any) -> str | None:
        return None if value is None or not _text(value).strip() else _text(value).strip()

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _sasl_mechanism(cls, value: Any) -> str:
        name = _text(value).strip().upper() or "SCRAM-SHA-512"
        if name not in SASL_MECHANISMS:
            raise SettingsError(
                f"DATRIX_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                f"got {_text(value)!r}"
            )
        return name

    @model_validator(mode="after")
    def _sasl_pair(self) -> Settings:
        if (self.kafka_sasl_username is None) != (self.kafka_sasl_password is None):
            raise SettingsError(
                "DATRIX_KAFKA_SASL_USERNAME and DATRIX_KAFKA_SASL_PASSWORD go together: set "
                "both (the exports of deploy/local/up), or neither (an unauthenticated client)"
            )
        return self

    @field_validator("kafka_producers", mode="before")
    @classmethod
    def _producers(cls, value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if not isinstance(value, str):
            return tuple((str(n), tuple(str(t) for t in ts)) for n, ts in value)
        usage = (
            "DATRIX_KAFKA_PRODUCERS must be name:tenant[+tenant...] separated by commas "
            "(e.g. acme:a+b,partner:c)"
        )
        found: dict[str, tuple[str, ...]] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name, sep, tenants = part.partition(":")
            names = tuple(t.strip() for t in tenants.split("+") if t.strip())
            if not sep or not _PRODUCER.match(name.strip()) or not names:
                raise SettingsError(f"{usage}, got {value!r}")
            if name.strip() in found:
                raise SettingsError(f"DATRIX_KAFKA_PRODUCERS names {name.strip()!r} twice")
            found[name.strip()] = names
        return tuple(found.items())

    def producer_tenants(self, principal: str) -> tuple[str, ...]:
        """The tenants external producer ``principal`` may produce for (none if unbound)."""
        return dict(self.kafka_producers).get(principal, ())

    @model_validator(mode="after")
    def _isr_within_replicas(self) -> Settings:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise SettingsError(
                f"DATRIX_KAFKA_MIN_INSYNC_REPLICAS ({self.kafka_min_insync_replicas}) cannot "
                f"exceed DATRIX_KAFKA_REPLICATION_FACTOR ({self.kafka_replication_factor}): "
                "no write could ever be acknowledged"
            )
        return self

    @field_validator("api_max_upload_mb", mode="before")
    @classmethod
    def _upload_limit(cls, value: Any) -> float:
        return _number("DATRIX_API_MAX_UPLOAD_MB", value, 1024.0, positive=True)

    @field_validator("api_events_keepalive_s", mode="before")
    @classmethod
    def _keepalive(cls, value: Any) -> float:
        return _number("DATRIX_API_EVENTS_KEEPALIVE_S", value, 15.0, positive=True)

    @field_validator("api_metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = _text(value).strip().lower()
        if text in ("", "1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"DATRIX_API_METRICS must be true or false, got {_text(value)!r}")

    @field_validator("api_rate_limit", mode="before")
    @classmethod
    def _rate_limit(cls, value: Any) -> float:
        text = _text(value).strip()
        if not text:
            return 100.0
        try:
            rate = float(text)
        except ValueError:
            rate = math.nan
        if not math.isfinite(rate) or rate < 0:
            raise SettingsError(
                f"DATRIX_API_RATE_LIMIT must be a number of requests per second >= 0 "
                f"(0: no limit), got {text!r}"
            )
        return rate

    @field_validator("max_line_mb", "max_columns", mode="before")
    @classmethod
    def _limit(cls, value: Any, info: ValidationInfo) -> float:
        name = info.field_name or ""
        number = _number(_var(name), value, cls.model_fields[name].default, positive=True)
        return number if name == "max_line_mb" else int(number)

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> tuple[str, ...]:
        names = value.split(",") if isinstance(value, str) else list(value)
        found = tuple(n.strip() for n in names if n.strip())
        bad = [n for n in found if not _MODULE.match(n)]
        if bad:
            raise SettingsError(
                f"DATRIX_EXTENSIONS must be comma-separated module names (like "
                f"my_package.datrix_extension), got {_text(value)!r}"
            )
        return found

    @field_validator("audit_key", mode="before")
    @classmethod
    def _audit_key(cls, value: Any) -> str | None:
        if value is None or not _text(value).strip():
            return None
        key = _text(value).strip()
        if len(key) < 32:
            raise SettingsError(
                f"DATRIX_AUDIT_KEY must be at least 32 characters (a random secret, e.g. "
                f"`openssl rand -hex 32`), got {len(key)}"
            )
        return key

    @field_validator("pii_salt", "token_key", mode="before")
    @classmethod
    def _fix_secret(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None or not _text(value).strip():
            return None
        secret = _text(value).strip()
        if len(secret) < 32:
            raise SettingsError(
                f"{_var(info.field_name or '')} must be at least 32 characters (a random "
                f"secret, e.g. `openssl rand -hex 32`), got {len(secret)}"
            )
        return secret

    @field_validator("audit_previous_keys", mode="before")
    @classmethod
    def _previous_keys(cls, value: Any) -> tuple[str, ...]:
        keys = value.split(",") if isinstance(value, str) else list(value)
        found = tuple(k.strip() for k in keys if k.strip())
        short = [i for i, k in enumerate(found, 1) if len(k) < 32]
        if short:
            raise SettingsError(
                "DATRIX_AUDIT_PREVIOUS_KEYS must be comma-separated keys of at least 32 "
                f"characters each; key {short[0]} is shorter"
            )
        return found

    @field_validator("audit_checkpoint_every", mode="before")
    @classmethod
    def _checkpoint_every(cls, value: Any) -> int:
        return int(_number("DATRIX_AUDIT_CHECKPOINT_EVERY", value, 1000, positive=True))

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> str:
        level = _text(value).strip().upper() or "INFO"
        if level not in logging.getLevelNamesMapping():
            raise SettingsError(
                "DATRIX_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
                f"got {_text(value)!r}"
            )
        return level

    @field_validator("debug", mode="before")
    @classmethod
    def _debug(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        return _text(value).strip().lower() not in ("", "0", "false", "no", "off")


def s3_location(url: str, settings: Settings) -> S3Location:
    """The S3 store at ``url`` (an ``s3://`` DATRIX_OBJECT_STORE) with the settings' service."""
    from datrix.streams.object_store import S3Location

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


class _Environment(EnvSettingsSource):
    """pydantic-settings' reading of ``DATRIX_*`` variables, from a given mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items() if k.startswith(ENV_PREFIX)}


def _message(exc: ValidationError) -> str:
    """One line: each refused setting's own message, or pydantic's naming the variable."""
    lines = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, SettingsError):
            lines.append(str(cause))
            continue
        where = ".".join(str(part) for part in error["loc"])
        name = _var(where) if where else "settings"
        lines.append(f"{name}: {error['msg']}, got {error.get('input')!r}")
    return "; ".join(dict.fromkeys(" ".join(line.split()) for line in lines))


def _checked(values: Mapping[str, Any]) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_message(exc)) from None


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """The settings in ``environ`` (default: this process's environment), then
    ``overrides`` (field names); a value that cannot be used raises ``SettingsError``."""
    found = _Environment(os.environ if environ is None else environ)()
    return _checked({**found, **overrides})
