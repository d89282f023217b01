"""Configuration from the environment; with nothing set, the embedded default."""

from __future__ import annotations

import getpass
import math
import os
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None


def load_settings() -> Settings:
    env = os.environ
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Settings(
        home=Path(env.get("DATRIX_HOME", ".datrix")).resolve(),
        tenant=env.get("DATRIX_TENANT", "default"),
        actor=env.get("DATRIX_ACTOR", f"cli:{user}"),
        kafka_bootstrap=env.get("DATRIX_KAFKA_BOOTSTRAP") or None,
        database_url=env.get("DATRIX_DATABASE_URL") or None,
        redis_url=env.get("DATRIX_REDIS_URL") or None,
        spark_master=env.get("DATRIX_SPARK_MASTER") or None,
        object_store=env.get("DATRIX_OBJECT_STORE") or None,
        database_schema=env.get("DATRIX_DATABASE_SCHEMA") or "public",
        job_timeout_s=_budget("DATRIX_JOB_TIMEOUT_S", DEFAULT_JOB_TIMEOUT_S, "seconds"),
        job_memory_mb=int(_budget("DATRIX_JOB_MEMORY_MB", default_job_memory_mb(), "MB")),
    )
