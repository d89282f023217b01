"""One ``Settings``: every DATRIX_* variable is a field read by ``load_settings`` alone,
with the defaults the engines and ingest had, and one line naming the variable for a
value that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from datrix.jobs.engine import ScanTuning
from datrix.jobs.ingest import Limits, limits_from
from datrix.jobs.quality import table
from datrix.jobs.quality.near_duplicates import segments
from datrix.streams.kafka import Topics, topics_for
from datrix.streams.settings import Settings, SettingsError, load_settings

EVERY = {
    "DATRIX_HOME": "/srv/datrix",
    "DATRIX_TENANT": "acme",
    "DATRIX_ACTOR": "api:svc",
    "DATRIX_KAFKA_BOOTSTRAP": "broker:9092",
    "DATRIX_DATABASE_URL": "postgresql://db/datrix",
    "DATRIX_DATABASE_READER_URL": "postgresql://reader@db/datrix",
    "DATRIX_REDIS_URL": "redis://cache",
    "DATRIX_SPARK_MASTER": "spark://master:7077",
    "DATRIX_SPARK_DRIVER_MEMORY": "512M",
    "DATRIX_SPARK_EXECUTOR_MEMORY": "4g",
    "DATRIX_OBJECT_STORE": "s3://bucket/team",
    "DATRIX_DATABASE_SCHEMA": "staging",
    "DATRIX_TOPIC_PREFIX": "staging.",
    "DATRIX_KAFKA_REPLICATION_FACTOR": "3",
    "DATRIX_KAFKA_MIN_INSYNC_REPLICAS": "2",
    "DATRIX_KAFKA_TIMEOUT_S": "2.5",
    "DATRIX_KAFKA_SASL_USERNAME": "datrix-app",
    "DATRIX_KAFKA_SASL_PASSWORD": "pw",
    "DATRIX_KAFKA_SASL_MECHANISM": "scram-sha-256",
    "DATRIX_KAFKA_PRODUCERS": "acme-feed:acme+acme-eu, partner:p",
    "DATRIX_JOB_TIMEOUT_S": "60",
    "DATRIX_JOB_MEMORY_MB": "2048",
    "DATRIX_S3_ENDPOINT": "http://s3:9000",
    "DATRIX_S3_ACCESS_KEY": "key",
    "DATRIX_S3_SECRET_KEY": "secret",
    "DATRIX_S3_REGION": "eu-west-1",
    "DATRIX_SCAN_IN_MEMORY_MB": "64",
    "DATRIX_SCAN_IN_MEMORY_ROWS": "1e5",
    "DATRIX_SCAN_CHUNK_ROWS": "3000",
    "DATRIX_NEAR_DUP_SEGMENT_ROWS": "7000",
    "DATRIX_MAX_LINE_MB": "4",
    "DATRIX_MAX_COLUMNS": "100",
    "DATRIX_API_MAX_UPLOAD_MB": "50",
    "DATRIX_API_RATE_LIMIT": "7.5",
    "DATRIX_API_EVENTS_KEEPALIVE_S": "2.5",
    "DATRIX_API_METRICS": "off",
    "DATRIX_EXTENSIONS": " acme.datrix_ext , other ",
    "DATRIX_LOG_LEVEL": "debug",
    "DATRIX_DEBUG": "1",
    "DATRIX_AUDIT_KEY": "k" * 40,
    "DATRIX_AUDIT_CHECKPOINT_EVERY": "50",
    "DATRIX_AUDIT_PREVIOUS_KEYS": "o" * 32 + ", " + "p" * 40,
    "DATRIX_PII_SALT": "s" * 32,
    "DATRIX_TOKEN_KEY": "t" * 64,
    "DATRIX_SCHEMA_REGISTRY_URL": "http://registry:8080/apis/ccompat/v7",
    "DATRIX_CONNECT_URL": "http://connect:8083/",
    "DATRIX_OPENLINEAGE_URL": "file:///var/lib/datrix/lineage.jsonl",
}


def test_every_variable_is_a_field() -> None:
    s = load_settings(EVERY)
    assert set(Settings.model_fields) == {k.removeprefix("DATRIX_").lower() for k in EVERY}
    assert (s.home, s.tenant, s.actor) == (Path("/srv/datrix"), "acme", "api:svc")
    assert not s.embedded and s.database_schema == "staging" and s.topic_prefix == "staging."
    assert s.database_reader_url == "postgresql://reader@db/datrix"
    assert (s.job_timeout_s, s.job_memory_mb) == (60.0, 2048)
    assert (s.s3_endpoint, s.s3_access_key, s.s3_region) == ("http://s3:9000", "key", "eu-west-1")
    assert s.extensions == ("acme.datrix_ext", "other")
    assert (s.api_events_keepalive_s, s.api_metrics) == (2.5, False)
    assert (s.log_level, s.debug) == ("DEBUG", True)
    assert s.schema_registry_url == "http://registry:8080/apis/ccompat/v7"
    assert s.connect_url == "http://connect:8083"
    assert (s.kafka_sasl_username, s.kafka_sasl_mechanism) == ("datrix-app", "SCRAM-SHA-256")
    assert "pw" not in repr(s)
    assert s.producer_tenants("acme-feed") == ("acme", "acme-eu")
    assert s.producer_tenants("partner") == ("p",) and s.producer_tenants("nobody") == ()
    # what ensure_topics creates the topics with on a 3-broker cluster
    assert topics_for(s) == Topics("staging.", replication_factor=3, min_insync_replicas=2)
    assert s.kafka_timeout_s == 2.5
    assert ScanTuning.from_settings(s) == ScanTuning(
        64.0, 100_000, 3000, 7000, "spark://master:7077", "512m", "4g"
    )
    assert limits_from(s) == Limits(max_line_mb=4.0, max_columns=100)
    assert (s.api_max_upload_mb, s.api_rate_limit) == (50.0, 7.5)
    assert "secret" not in repr(s)
    # what a job process is handed on stdin comes back the same
    assert Settings.model_validate_json(s.model_dump_json()) == s


def test_defaults_are_those_of_the_engines_and_ingest(tmp_path: Path) -> None:
    s = load_settings({})
    assert s.home == Path(".datrix").resolve() and s.embedded and s.extensions == ()
    assert ScanTuning.from_settings(s) == ScanTuning()
    assert ScanTuning() == ScanTuning(
        table.IN_MEMORY_MB, table.IN_MEMORY_ROWS, 0, segments.SEGMENT_ROWS, "local[*]", "1g", None
    )
    assert limits_from(s) == Limits()
    assert (s.topic_prefix, s.log_level, s.debug) == ("datrix.", "INFO", False)
    # one replica, one in sync: the single local broker of deploy/local/up
    assert topics_for(s) == Topics("datrix.", replication_factor=1, min_insync_replicas=1)
    assert s.kafka_timeout_s == 30.0  # how long a client waits for an unreachable broker
    # empty is unset, as before
    blank = load_settings({name: "" for name in EVERY if name != "DATRIX_HOME"})
    assert ScanTuning.from_settings(blank) == ScanTuning() and limits_from(blank) == Limits()
    assert blank.kafka_bootstrap is None and blank.database_schema == "public"
    assert blank.database_reader_url is None
    assert not load_settings({"DATRIX_DEBUG": "0"}).debug


def test_only_the_mapping_given_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATRIX_TENANT", "from-the-environment")
    assert load_settings().tenant == "from-the-environment"
    assert load_settings({}).tenant == "default"
    assert Settings().tenant == "default"  # Settings(...) never reads the environment
    assert load_settings({"datrix_tenant": "lower"}).tenant == "default"  # names are upper case


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "DATRIX_SCAN_IN_MEMORY_MB",
            "lots",
            "DATRIX_SCAN_IN_MEMORY_MB must be a number, got 'lots'",
        ),
        ("DATRIX_SCAN_CHUNK_ROWS", "nan", "DATRIX_SCAN_CHUNK_ROWS must be a number, got 'nan'"),
        (
            "DATRIX_NEAR_DUP_SEGMENT_ROWS",
            "x",
            "DATRIX_NEAR_DUP_SEGMENT_ROWS must be a number, got 'x'",
        ),
        ("DATRIX_MAX_LINE_MB", "lots", "DATRIX_MAX_LINE_MB must be a positive number, got 'lots'"),
        ("DATRIX_MAX_COLUMNS", "0", "DATRIX_MAX_COLUMNS must be a positive number, got '0'"),
        (
            "DATRIX_API_RATE_LIMIT",
            "fast",
            "DATRIX_API_RATE_LIMIT must be a number of requests per second >= 0 (0: no limit), "
            "got 'fast'",
        ),
        (
            "DATRIX_API_EVENTS_KEEPALIVE_S",
            "0",
            "DATRIX_API_EVENTS_KEEPALIVE_S must be a positive number, got '0'",
        ),
        ("DATRIX_API_METRICS", "maybe", "DATRIX_API_METRICS must be true or false, got 'maybe'"),
        (
            "DATRIX_API_MAX_UPLOAD_MB",
            "-1",
            "DATRIX_API_MAX_UPLOAD_MB must be a positive number, got '-1'",
        ),
        ("DATRIX_JOB_MEMORY_MB", "-5", "DATRIX_JOB_MEMORY_MB must be a number of MB >= 0"),
        (
            "DATRIX_SPARK_DRIVER_MEMORY",
            "1.5g",
            "DATRIX_SPARK_DRIVER_MEMORY must be a size like 512m or 2g "
            "(a whole number and k, m, g or t), got '1.5g'",
        ),
        (
            "DATRIX_SPARK_EXECUTOR_MEMORY",
            "1024",
            "DATRIX_SPARK_EXECUTOR_MEMORY must be a size like 512m or 2g",
        ),
        (
            "DATRIX_SPARK_DRIVER_MEMORY",
            "256m",
            "DATRIX_SPARK_DRIVER_MEMORY must be at least 512m (Spark needs ~450 MiB of heap), "
            "got '256m'",
        ),
        (
            "DATRIX_SPARK_EXECUTOR_MEMORY",
            "500000k",
            "DATRIX_SPARK_EXECUTOR_MEMORY must be at least 512m",
        ),
        ("DATRIX_LOG_LEVEL", "loud", "DATRIX_LOG_LEVEL must be one of DEBUG, INFO"),
        ("DATRIX_EXTENSIONS", "a b,c", "DATRIX_EXTENSIONS must be comma-separated module names"),
        (
            "DATRIX_KAFKA_REPLICATION_FACTOR",
            "0",
            "DATRIX_KAFKA_REPLICATION_FACTOR must be a whole number of brokers >= 1, got '0'",
        ),
        (
            "DATRIX_KAFKA_TIMEOUT_S",
            "0",
            "DATRIX_KAFKA_TIMEOUT_S must be a positive number, got '0'",
        ),
        (
            "DATRIX_KAFKA_TIMEOUT_S",
            "soon",
            "DATRIX_KAFKA_TIMEOUT_S must be a positive number, got 'soon'",
        ),
        ("DATRIX_KAFKA_TIMEOUT_S", "inf", "DATRIX_KAFKA_TIMEOUT_S must be a number, got 'inf'"),
        (
            "DATRIX_KAFKA_MIN_INSYNC_REPLICAS",
            "two",
            "DATRIX_KAFKA_MIN_INSYNC_REPLICAS must be a whole number of brokers >= 1, got 'two'",
        ),
        (
            "DATRIX_KAFKA_MIN_INSYNC_REPLICAS",
            "2",  # with the default replication factor, 1
            "DATRIX_KAFKA_MIN_INSYNC_REPLICAS (2) cannot exceed "
            "DATRIX_KAFKA_REPLICATION_FACTOR (1)",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({name: value})
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_several_bad_values_are_named_on_one_line() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"DATRIX_JOB_TIMEOUT_S": "soon", "DATRIX_MAX_COLUMNS": "many"})
    text = str(refused.value)
    assert "DATRIX_JOB_TIMEOUT_S must be" in text and "DATRIX_MAX_COLUMNS must be" in text
    assert "\n" not in text and "pydantic" not in text


def test_the_audit_key_is_checked_and_never_shown() -> None:
    with pytest.raises(SettingsError, match="DATRIX_AUDIT_KEY must be at least 32 characters"):
        load_settings({"DATRIX_AUDIT_KEY": "short"})
    assert load_settings({"DATRIX_AUDIT_KEY": "  "}).audit_key is None  # empty: unset
    s = load_settings({"DATRIX_AUDIT_KEY": "s" * 40})
    assert s.audit_key == "s" * 40 and "s" * 40 not in repr(s)
    # the retired keys of a rotation: verify-only, each checked, never shown
    old = load_settings({"DATRIX_AUDIT_PREVIOUS_KEYS": " " + "o" * 32 + ",," + "p" * 40 + " "})
    assert old.audit_previous_keys == ("o" * 32, "p" * 40) and "o" * 32 not in repr(old)
    assert Settings.model_validate_json(old.model_dump_json()) == old  # to a job process
    assert load_settings({}).audit_previous_keys == ()
    with pytest.raises(SettingsError, match="key 2 is shorter") as refused:
        load_settings({"DATRIX_AUDIT_PREVIOUS_KEYS": "o" * 32 + ",tiny-secret"})
    assert "tiny-secret" not in str(refused.value)  # a key is never shown, even a bad one
    with pytest.raises(SettingsError, match="DATRIX_AUDIT_CHECKPOINT_EVERY"):
        load_settings({"DATRIX_AUDIT_CHECKPOINT_EVERY": "0"})


def test_kafka_client_config_is_built_in_one_place_from_the_settings() -> None:
    """Every Kafka client takes streams.kafka.client_config: the broker and, when set,
    the SASL principal; none is built from a bare bootstrap string."""
    from datrix.streams.kafka import client_config, producer_config

    plain = load_settings({"DATRIX_KAFKA_BOOTSTRAP": "b:1"})
    logging_keys = {"logger", "error_cb", "stats_cb", "statistics.interval.ms"}  # kafka_logging

    def without_logging(config: dict[str, object]) -> dict[str, object]:
        assert logging_keys <= config.keys()  # librdkafka's lines go through logging
        return {k: v for k, v in config.items() if k not in logging_keys}

    assert without_logging(client_config(plain)) == {"bootstrap.servers": "b:1"}
    secured = plain.replace(kafka_sasl_username="u", kafka_sasl_password="p")
    assert without_logging(client_config(secured, **{"group.id": "g"})) == {
        "bootstrap.servers": "b:1",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
        "group.id": "g",
    }
    assert producer_config(secured)["sasl.username"] == "u"
    with pytest.raises(RuntimeError, match="DATRIX_KAFKA_BOOTSTRAP"):
        client_config(Settings())
    root = Path(__file__).resolve().parents[2]
    for path in [
        *root.glob("streams/*.py"),
        *root.glob("runtime/**/*.py"),
        *root.glob("tests/**/*.py"),
    ]:
        text = path.read_text()
        if path.name != "kafka.py" and path.name != Path(__file__).name:
            assert '"bootstrap.servers"' not in text, path


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATRIX_KAFKA_SASL_USERNAME": "u"}, "go together"),
        ({"DATRIX_KAFKA_SASL_PASSWORD": "p"}, "go together"),
        ({"DATRIX_KAFKA_SASL_MECHANISM": "GSSAPI"}, "DATRIX_KAFKA_SASL_MECHANISM must be one of"),
        ({"DATRIX_KAFKA_PRODUCERS": "acme"}, "name:tenant"),
        ({"DATRIX_KAFKA_PRODUCERS": "Acme:a"}, "name:tenant"),
        ({"DATRIX_KAFKA_PRODUCERS": "acme:"}, "name:tenant"),
        ({"DATRIX_KAFKA_PRODUCERS": "acme:a,acme:b"}, "names 'acme' twice"),
    ],
)
def test_bad_kafka_security_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_openlineage_url_takes_four_forms_and_refuses_others() -> None:
    for given, kept in [
        ("console", "console"),
        ("https://marquez:5000/api/v1/lineage/", "https://marquez:5000/api/v1/lineage"),
        ("file:///tmp/lineage.jsonl", "file:///tmp/lineage.jsonl"),
        ("kafka://openlineage.events", "kafka://openlineage.events"),
        ("", None),
    ]:
        assert load_settings({"DATRIX_OPENLINEAGE_URL": given}).openlineage_url == kept
    for bad in ["ftp://x", "file://relative.jsonl", "kafka://", "kafka://a b", "http://u:p@h", "x"]:
        with pytest.raises(SettingsError, match="DATRIX_OPENLINEAGE_URL"):
            load_settings({"DATRIX_OPENLINEAGE_URL": bad})
