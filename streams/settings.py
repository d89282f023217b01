"""Configuration from the environment; with nothing set, the embedded default."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path


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
    )
