"""DATRIX_OBJECT_STORE and DATRIX_S3_*: what is accepted, and one clear refusal for the
rest (the CLI exits 2 with it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datrix.streams.object_store import LocalObjectStore, S3ObjectStore, open_object_store
from datrix.streams.settings import SettingsError, load_settings, s3_location


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment ``load_settings`` reads (a given mapping, not this process's)."""
    return {"DATRIX_HOME": str(tmp_path / "home")}


def test_unset_is_the_local_folder_under_home(tmp_path: Path, env: dict[str, str]) -> None:
    settings = load_settings(env)
    assert settings.object_store is None
    store = open_object_store(settings)
    assert isinstance(store, LocalObjectStore)
    assert store.location == str(tmp_path / "home" / "objects")


def test_s3_url_and_service(env: dict[str, str]) -> None:
    env["DATRIX_OBJECT_STORE"] = "s3://my-bucket/team/objects/"
    env["DATRIX_S3_ENDPOINT"] = "http://127.0.0.1:19000/"
    env["DATRIX_S3_ACCESS_KEY"] = "key"
    env["DATRIX_S3_SECRET_KEY"] = "secret"
    settings = load_settings(env)
    assert settings.object_store == "s3://my-bucket/team/objects"
    assert settings.s3_endpoint == "http://127.0.0.1:19000"
    assert settings.s3_region == "us-east-1"  # what non-AWS servers expect
    assert "secret" not in repr(settings)
    where = s3_location(settings.object_store, settings)
    assert (where.bucket, where.prefix, where.access_key) == ("my-bucket", "team/objects", "key")
    store = open_object_store(settings)
    assert isinstance(store, S3ObjectStore) and store.location == "s3://my-bucket/team/objects"
    # a job process is handed its parent's location, which wins over the environment
    other = open_object_store(settings, "s3://other-bucket")
    assert other.location == "s3://other-bucket"


def test_bucket_without_prefix_and_aws_defaults(env: dict[str, str]) -> None:
    env["DATRIX_OBJECT_STORE"] = "s3://bucket.with.dots"
    settings = load_settings(env)
    assert settings.object_store == "s3://bucket.with.dots"
    assert (settings.s3_endpoint, settings.s3_access_key, settings.s3_region) == (None, None, None)


def test_s3_settings_are_ignored_for_the_local_store(env: dict[str, str]) -> None:
    env["DATRIX_S3_ENDPOINT"] = "not a url"
    assert load_settings(env).s3_endpoint is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATRIX_OBJECT_STORE", "/data/objects", "must be s3://bucket[/prefix]"),
        ("DATRIX_OBJECT_STORE", "gs://bucket", "must be s3://bucket[/prefix]"),
        ("DATRIX_OBJECT_STORE", "s3://", "is not an S3 bucket name"),
        ("DATRIX_OBJECT_STORE", "s3://Upper_Case", "is not an S3 bucket name"),
        ("DATRIX_OBJECT_STORE", "s3://b..b", "is not an S3 bucket name"),
        ("DATRIX_OBJECT_STORE", "s3://bucket/../escape", "the prefix must be"),
        ("DATRIX_OBJECT_STORE", "s3://bucket/a b", "the prefix must be"),
        ("DATRIX_S3_ENDPOINT", "127.0.0.1:19000", "must be an http(s)://host[:port] URL"),
        ("DATRIX_S3_ENDPOINT", "ftp://host", "must be an http(s)://host[:port] URL"),
        ("DATRIX_S3_ENDPOINT", "http://host:99999", "must be an http(s)://host[:port] URL"),
        ("DATRIX_S3_ENDPOINT", "http://user:pw@host", "must be an http(s)://host[:port] URL"),
        ("DATRIX_S3_ACCESS_KEY", "only-the-key", "go together"),
        ("DATRIX_S3_SECRET_KEY", "only-the-secret", "go together"),
        ("DATRIX_S3_REGION", "US East", "must look like us-east-1"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    env: dict[str, str], name: str, value: str, message: str
) -> None:
    if name != "DATRIX_OBJECT_STORE":
        env["DATRIX_OBJECT_STORE"] = "s3://bucket"
    env[name] = value
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    text = str(refused.value)
    assert message in text and name in text and "\n" not in text
