"""deploy/k8s/base/spark.yaml reaches Spark as the jobs pod would hand it over: the
ConfigMap's spark-defaults.conf in ``SPARK_CONF_DIR``, the jobs container's environment
(its ConfigMap keys, the downward API's values), and Datrix's own ``spark_session`` (the
jobs role's) in a fresh process, since the file is read when the JVM starts. Spark's
``${env:X}`` substitution then gives the executors' image, the namespace and the driver's
pod; the driver's address is SPARK_LOCAL_IP (the pod's IP). The master is ``local[1]``: no
cluster runs here, so what Kubernetes would do with these settings is not checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"

PROBE = """
import json
from datrix.jobs.quality.spark_engine import spark_session

spark = spark_session("local[1]")
sc = spark.sparkContext
conf = sc._jsc.sc().conf()
k8s = sc._jvm.org.apache.spark.deploy.k8s.Config
found = {
    "namespace": conf.get(k8s.KUBERNETES_NAMESPACE()),
    "image": conf.get(k8s.CONTAINER_IMAGE()).get(),
    "driver_pod": conf.get(k8s.KUBERNETES_DRIVER_POD_NAME()).get(),
    # the address a driver on a cluster master advertises (on local[*] it is localhost)
    "driver_host": sc._jvm.org.apache.spark.util.Utils.localHostName(),
    "executor_memory": sc.getConf().get("spark.executor.memory"),
}
spark.stop()
print(json.dumps(found))
"""


def _objects(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]


def test_the_jobs_pods_spark_settings_reach_spark(tmp_path: Path) -> None:
    spark_map = next(o for o in _objects("spark.yaml") if o["kind"] == "ConfigMap")["data"]
    jobs = next(o for o in _objects("workers.yaml") if o["metadata"]["name"] == "datrix-jobs")
    container = jobs["spec"]["template"]["spec"]["containers"][0]
    downward = {
        "status.podIP": "127.0.0.2",  # not the machine's own default
        "metadata.name": "datrix-jobs-7d9f-abcde",
        "metadata.namespace": "datrix-prod",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATRIX_", "SPARK_"))}
    env["PYTHONPATH"] = str(ROOT)
    for var in container["env"]:
        source = var.get("valueFrom", {})
        if "fieldRef" in source:
            env[var["name"]] = downward[source["fieldRef"]["fieldPath"]]
        elif source.get("configMapKeyRef", {}).get("name") == "datrix-spark":
            env[var["name"]] = spark_map[source["configMapKeyRef"]["key"]]
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(spark_map["spark-defaults.conf"])
    env["SPARK_CONF_DIR"] = str(conf_dir)
    assert env["DATRIX_SPARK_MASTER"].startswith("k8s://")
    del env["DATRIX_SPARK_MASTER"]  # the probe runs on local[1]

    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "namespace": "datrix-prod",
        "image": spark_map["SPARK_EXECUTOR_IMAGE"],
        "driver_pod": "datrix-jobs-7d9f-abcde",
        "driver_host": "127.0.0.2",
        "executor_memory": "2g",
    }
