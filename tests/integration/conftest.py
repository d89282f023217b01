from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DATRIX = str(Path(sys.executable).with_name("datrix"))


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    home: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
        env["DATRIX_HOME"] = str(self.home)
        return env

    def on_spark(self, master: str) -> Cli:
        """This CLI with ``--engine spark`` submitting to ``master`` (SPARK_TEST_ENV's
        sizes)."""
        return SparkCli(self.home, {"DATRIX_SPARK_MASTER": master, **SPARK_TEST_ENV})

    def __call__(self, *args: str, timeout: float = 600) -> Run:
        proc = subprocess.run(
            [DATRIX, *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [DATRIX, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )


@dataclass
class SparkCli(Cli):
    spark_env: dict[str, str]

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.spark_env}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


ROOT = Path(__file__).resolve().parents[2]


def exports(text: str) -> dict[str, str]:
    """The ``export NAME=value`` lines of ``text`` (what deploy/local scripts print)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            found[key] = value.strip().strip("'\"")
    return found


def deploy_local(
    script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``deploy/local/SCRIPT ARGS`` (up, down, kafka-user...), its output captured."""
    return subprocess.run(
        [str(ROOT / "deploy" / "local" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def kafka_user(*args: str) -> dict[str, str]:
    """``deploy/local/kafka-user ARGS``: the credentials of a principal of the local broker
    (``worker``, ``app``, ``producer NAME [PREFIX]``), as the exports it prints."""
    proc = deploy_local("kafka-user", *args)
    if proc.returncode != 0:
        pytest.fail(f"deploy/local/kafka-user {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return exports(proc.stdout)


@pytest.fixture(scope="session")
def worker_credentials(services: dict[str, str]) -> dict[str, str]:
    """The workers' principal (trusted: may write the commands topic)."""
    return kafka_user("worker")


# the export of `up registry` that `services` leaves out (the fixture schema_registry_url)
REGISTRY_EXPORT = "DATRIX_SCHEMA_REGISTRY_URL"


def make_services() -> tuple[list[str], dict[str, str]]:
    """The Makefile's SERVICES (what ``deploy/local/up`` starts for the integration tier)
    and SERVICES_ENV (the sizes it starts them with): the one list ``make test`` and the
    ``service_exports`` fixture both start."""
    import re
    import shlex

    text = (ROOT / "Makefile").read_text()
    found: dict[str, str] = {}
    for name in ("SERVICES", "SERVICES_ENV"):
        m = re.search(rf"^{name} := (.*)$", text, re.MULTILINE)
        if m is None:
            raise RuntimeError(f"the Makefile has no `{name} := ...` line")
        found[name] = m.group(1)
    env = dict(pair.split("=", 1) for pair in shlex.split(found["SERVICES_ENV"]))
    return found["SERVICES"].split(), env


SPARK_EXPORT = "DATRIX_SPARK_MASTER"


@pytest.fixture(scope="session")
def service_exports() -> dict[str, str]:
    """Kafka, PostgreSQL, Redis, Kafka Connect, the S3-API server (S3Proxy) and the schema
    registry (Apicurio) started by the project's own script (idempotent): every line it
    exports (the Makefile's SERVICES but spark: ``spark_master`` starts that).

    Never skips: a test that needs the services fails when they cannot be started. On
    pytest-xdist each worker runs this once: the first ``up`` starts the services (on a
    fresh machine, downloads first: minutes), the others wait on its lock, as long as the
    first may take, then reuse what it started. ``make test`` starts the same services in
    the background before lint and the unit tier (the Makefile's SERVICES and
    SERVICES_ENV, read here), so here ``up`` usually waits for that one and reuses them."""
    names, _ = make_services()
    # Spark: the spark_master fixture's own `up spark`, so that only the Spark tests wait
    # for (or fail with) the cluster
    env = {**os.environ, "DATRIX_LOCK_WAIT_S": "1500"}
    proc = deploy_local("up", *(n for n in names if n != "spark"), env=env, timeout=1600)
    if proc.returncode != 0:
        pytest.fail(f"deploy/local/up failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found = exports(proc.stdout)
    for key in (
        "DATRIX_KAFKA_BOOTSTRAP",
        "DATRIX_KAFKA_SASL_USERNAME",
        "DATRIX_KAFKA_SASL_PASSWORD",
        "DATRIX_DATABASE_URL",
        "DATRIX_DATABASE_READER_URL",
        "DATRIX_REDIS_URL",
        "DATRIX_OBJECT_STORE",
        "DATRIX_S3_ENDPOINT",
        "DATRIX_CONNECT_URL",
        REGISTRY_EXPORT,
    ):
        if key not in found:
            pytest.fail(f"deploy/local/up did not export {key}")
    return found


@pytest.fixture(scope="session")
def services(service_exports: dict[str, str]) -> dict[str, str]:
    """What the Kafka-mode tests run with: the exports of ``up``, the objects in S3, but
    no schema registry: that is optional configuration (only the ``avro-confluent`` stream
    format uses it), so a test opts in with ``schema_registry_url``, and the others see
    what a deployment without one does (test_stream_monitor: that format refused). No
    Spark master either: a test opts in with ``spark_master`` (with one, ``--engine auto``
    may pick Spark)."""
    return {k: v for k, v in service_exports.items() if k != REGISTRY_EXPORT}


# What a test's Spark application may take of the tier's cluster (2 workers x 2 cores x
# 1g, a core per application): a 512m executor, so two fit a worker. The driver: the
# issue's 512 MB.
SPARK_TEST_ENV = {"DATRIX_SPARK_EXECUTOR_MEMORY": "512m", "DATRIX_SPARK_DRIVER_MEMORY": "512m"}


def spark_webui() -> str:
    """The master's web UI (its JSON state at /json/), at the port ``up`` used."""
    return f"http://127.0.0.1:{os.environ.get('DATRIX_SPARK_WEBUI_PORT', '18088')}"


def spark_state() -> dict[str, Any]:
    """The master's state: workers, active and completed applications."""
    import urllib.request

    with urllib.request.urlopen(f"{spark_webui()}/json/", timeout=10) as r:
        doc: dict[str, Any] = json.load(r)
    return doc


@pytest.fixture(scope="session")
def spark_master() -> str:
    """``DATRIX_SPARK_MASTER`` of the tier's standalone cluster (``spark://127.0.0.1:17077``
    by default), started by ``deploy/local/up spark`` with the Makefile's SERVICES_ENV
    sizes (idempotent; ``make test`` starts it with the other SERVICES): for CLI and worker
    processes, with SPARK_TEST_ENV. Never skips: fails when the cluster cannot start, or
    when one running from an earlier ``up`` has other sizes (``up`` says so)."""
    names, sizes = make_services()
    if "spark" not in names:
        pytest.fail("the Makefile's SERVICES do not start spark")
    # the cluster runs the pyspark of the Python running the tests (the driver's)
    env = {"DATRIX_PYTHON": sys.executable, **os.environ, **sizes, "DATRIX_LOCK_WAIT_S": "1500"}
    proc = deploy_local("up", "spark", env=env, timeout=1600)
    if proc.returncode != 0:
        pytest.fail(f"deploy/local/up spark failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found = exports(proc.stdout)
    if SPARK_EXPORT not in found:
        pytest.fail(f"deploy/local/up spark did not export {SPARK_EXPORT}")
    return found[SPARK_EXPORT]


@pytest.fixture(scope="session")
def spark_on_cluster(spark_master: str) -> str:
    """This test process's one SparkSession, on the tier's cluster: ``spark_session`` is
    process-wide (the first call's master wins), so every in-process Spark test asks for
    this fixture before its first Spark call, and this checks that no test made a local
    session first. One application per test process: its executors start once."""
    from datrix.jobs.quality.spark_engine import spark_session

    spark = spark_session(
        spark_master,
        SPARK_TEST_ENV["DATRIX_SPARK_DRIVER_MEMORY"],
        SPARK_TEST_ENV["DATRIX_SPARK_EXECUTOR_MEMORY"],
    )
    master = str(spark.sparkContext.master)
    if master != spark_master:
        pytest.fail(
            f"this process's SparkSession runs on {master}, not the cluster {spark_master}:"
            " a test used Spark without the spark_on_cluster fixture before this one"
        )
    return master


@pytest.fixture(scope="session")
def schema_registry_url(service_exports: dict[str, str]) -> str:
    """``DATRIX_SCHEMA_REGISTRY_URL`` as ``up registry`` exports it: Apicurio Registry's
    Confluent-compatible API (``http://127.0.0.1:18081/apis/ccompat/v7`` by default)."""
    return service_exports[REGISTRY_EXPORT]


def admin_url(services: dict[str, str]) -> str:
    """The superuser ``deploy/local/up`` creates (``datrix``, administration only: nothing
    of Datrix runs as it, so ``up`` does not export it), on the server ``up`` started."""
    from urllib.parse import urlparse

    parts = urlparse(services["DATRIX_DATABASE_URL"])
    return f"postgresql://datrix:datrix@{parts.hostname}:{parts.port}/datrix"


@dataclass
class KafkaCli(Cli):
    """The CLI in Kafka mode, isolated by a topic prefix, a Postgres schema and an object
    prefix in S3 of its own. The workers run with DATRIX_HOMEs of their own (``home`` is
    the CLI's): they share nothing with the CLI but the services."""

    extra: dict[str, str] | None = None
    workers: list[subprocess.Popen[str]] | None = None
    # the workers' Kafka principal (DATRIX_KAFKA_SASL_*), over the CLI's in ``extra``
    worker_env: dict[str, str] | None = None

    def worker_home(self, n: int) -> Path:
        return self.home.parent / f"worker-home-{n}"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(self.extra or {})
        return env

    def start_worker(
        self, roles: str | None = None, log: Path | None = None
    ) -> subprocess.Popen[str]:
        args = [DATRIX, "worker"] + (["--roles", roles] if roles else [])
        n = len(self.workers or [])
        out = open(log or (self.home.parent / f"worker-{n}.log"), "a")  # noqa: SIM115
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env(), **(self.worker_env or {}), "DATRIX_HOME": str(self.worker_home(n))},
            stdin=subprocess.DEVNULL,
        )
        assert self.workers is not None
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers or []:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers or []:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def kafka_cli(services: dict[str, str], worker_credentials: dict[str, str], tmp_path: Path) -> Any:
    import uuid

    import psycopg

    tag = uuid.uuid4().hex[:10]
    schema = f"t_{tag}"
    extra = {
        **services,
        "DATRIX_TOPIC_PREFIX": f"t{tag}.",
        "DATRIX_DATABASE_SCHEMA": schema,
        "DATRIX_OBJECT_STORE": f"{services['DATRIX_OBJECT_STORE']}/{schema}",
    }
    cli = KafkaCli(home=tmp_path / "home", extra=extra, workers=[], worker_env=worker_credentials)
    try:
        yield cli
    finally:
        cli.stop_workers()
        with psycopg.connect(services["DATRIX_DATABASE_URL"], autocommit=True) as db:
            for (name,) in db.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{schema}%",)
            ).fetchall():
                db.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
