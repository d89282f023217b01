"""deploy/k8s (issue 11, item 5): the kustomize base and its example overlay, checked
without a cluster.

- Rendered the way ``kustomize build`` renders what they use (``render`` below: the
  ``resources``, ``namespace``, ``labels`` without selectors, ``images`` and
  strategic-merge ``patches`` of maps; any other field of a kustomization is refused, so
  a feature this renderer does not know cannot be silently skipped).
- Every rendered object is valid for Kubernetes ``K8S_VERSION`` against the official
  OpenAPI-derived JSON schemas (kubernetes-validate, offline, strict: an unknown or
  misspelt field fails).
- Cross-checks of what a schema cannot see: selectors match the pods they mean; every
  Service, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy, Ingress and
  RoleBinding points at something that exists; every ``--roles`` value is a role of
  ``datrix worker`` and every role has its Deployment; the HPAs read the gauge the API
  defines, on groups it reports (or that the README lists as not reported yet), with no
  more replicas than the topic has partitions; every ``DATRIX_*`` variable a
  Datrix container gets is a setting, and the settings accept the values; the probes'
  paths are routes of the API; every Secret and key the pods read is listed in
  deploy/k8s/README.md; Spark's settings agree with the jobs container.
Each cross-check is also shown to fail on a broken copy of the manifests.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from datrix.gateway.api.routes import ROUTERS
from datrix.runtime.worker import ROLES
from datrix.streams.kafka import PARTITIONS
from datrix.streams.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
README = K8S / "README.md"
K8S_VERSION = "1.35.0"  # the Kubernetes whose schemas the manifests must satisfy

Obj = dict[str, Any]
KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "patches",
}
# what the namespace transformer leaves alone (cluster-scoped kinds this base could use)
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass"}
# roles scaled on their consumer lag (issue 11: processor, jobs, monitor)
AUTOSCALED = {"processor", "jobs", "monitor"}
# the topic each autoscaled role consumes, whose partitions bound its useful replicas
# (the monitor's are its streams' data topics, the producer's choice)
CONSUMES = {"processor": "commands", "jobs": "jobs"}
# HPA groups the API does not report yet (deploy/k8s/README.md "Autoscaling": kafka_lag
# reports the processor's, the projector's and the jobs role's groups)
NOT_YET_SERVED = {"monitor"}
METRICS_SOURCE = ROOT / "gateway" / "api" / "metrics.py"


def served_lag() -> tuple[set[str], set[tuple[str, tuple[str, ...]]]]:
    """From gateway/api/metrics.py's code: the consumer groups ``kafka_lag`` reports and
    the gauges it defines as (name, labels)."""
    tree = ast.parse(METRICS_SOURCE.read_text())
    gauges = {
        (node.args[0].value, tuple(e.value for e in kw.value.elts))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "GaugeMetricFamily"
        and isinstance(node.args[0], ast.Constant)
        for kw in node.keywords
        if kw.arg == "labels" and isinstance(kw.value, ast.List)
    }
    function = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "kafka_lag"
    )
    groups = {
        pair.elts[0].value
        for loop in ast.walk(function)
        if isinstance(loop, ast.For) and isinstance(loop.iter, ast.Tuple)
        for pair in loop.iter.elts
        if isinstance(pair, ast.Tuple) and isinstance(pair.elts[0], ast.Constant)
    }
    return groups, gauges


API_PORT = 8000


class KustomizeError(ValueError):
    """A kustomization this renderer cannot render as kustomize would."""


# -- rendering ------------------------------------------------------------------------------


def _documents(path: Path) -> list[Obj]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc:
            raise KustomizeError(f"{path}: every document must be a Kubernetes object")
    return docs


def _key(obj: Obj) -> tuple[str, str]:
    return (obj["kind"], obj["metadata"]["name"])


def _merge(target: Obj, patch: Obj, where: str) -> None:
    """A strategic merge patch of maps: a list in the patch would need kustomize's merge
    keys, which this renderer does not implement, so it is refused."""
    for name, value in patch.items():
        if isinstance(value, list):
            raise KustomizeError(f"{where}: patching a list ({name}) is not supported here")
        if isinstance(value, dict) and isinstance(target.get(name), dict):
            _merge(target[name], value, f"{where}.{name}")
        else:
            target[name] = copy.deepcopy(value)


def _containers(node: Any) -> Iterator[Obj]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def render(folder: Path) -> list[Obj]:
    """What ``kustomize build folder`` prints, for the fields in KUSTOMIZATION_FIELDS, in
    kustomize's order: resources, patches, namespace, labels, images. Compared by hand
    with kustomize v5.8.1's output for deploy/k8s/base and overlays/example: the same
    objects, equal field by field (deploy/k8s/README.md)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = sorted(set(spec) - KUSTOMIZATION_FIELDS)
    if unknown:
        raise KustomizeError(
            f"{folder}/kustomization.yaml: {', '.join(unknown)} not supported by this "
            f"renderer (only {', '.join(sorted(KUSTOMIZATION_FIELDS))})"
        )
    if spec.get("kind") != "Kustomization":
        raise KustomizeError(f"{folder}/kustomization.yaml: kind must be Kustomization")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        objects.extend(render(path) if path.is_dir() else _documents(path))
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        if _key(obj) in seen:  # kustomize: "may not add resource with an already registered id"
            raise KustomizeError(f"{folder}: {_key(obj)} defined twice")
        seen.add(_key(obj))
    for entry in spec.get("patches", []):
        if set(entry) != {"path"}:
            raise KustomizeError(f"{folder}: only patches given by path are supported")
        for patch in _documents(folder / entry["path"]):
            targets = [o for o in objects if _key(o) == _key(patch)]
            if not targets:
                raise KustomizeError(f"{folder}/{entry['path']}: no {_key(patch)} to patch")
            _merge(targets[0], patch, f"{entry['path']}")
    if "namespace" in spec:
        for obj in objects:
            before = obj["metadata"].get("namespace")
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
            if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
                # kustomize moves a ServiceAccount subject with its binding: one without a
                # namespace, or in the binding's namespace before
                for subject in obj.get("subjects", []):
                    if subject["kind"] == "ServiceAccount" and subject.get("namespace") in (
                        None,
                        before,
                    ):
                        subject["namespace"] = spec["namespace"]
    for entry in spec.get("labels", []):
        if set(entry) - {"pairs"}:  # includeSelectors/includeTemplates: not supported
            raise KustomizeError(f"{folder}: labels take only pairs here")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
    for entry in spec.get("images", []):
        if set(entry) - {"name", "newName", "newTag"}:
            raise KustomizeError(f"{folder}: images take name, newName, newTag here")
        for obj in objects:
            for container in _containers(obj.get("spec")):
                if _image_name(container["image"]) == entry["name"]:
                    name = entry.get("newName", entry["name"])
                    tag = entry.get("newTag")
                    container["image"] = f"{name}:{tag}" if tag else name
    return objects


@functools.cache
def _rendered(folder: Path) -> tuple[Obj, ...]:
    return tuple(render(folder))


def rendered_copy(folder: Path) -> list[Obj]:
    """``render(folder)``, rendered once per session; a copy a test may change."""
    return copy.deepcopy(list(_rendered(folder)))


@pytest.fixture(scope="module", params=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return rendered_copy(BASE if request.param == "base" else OVERLAY)


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate parses its schema files again on every call (its 1 MB
    _definitions.json included: 20 ms an object); read each once."""
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.cache(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield


# -- the cross-checks: each returns its problems --------------------------------------------


def _of(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def _named(objects: list[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in _of(objects, kind) if o["metadata"]["name"] == name), None)


def _pod_templates(objects: list[Obj]) -> list[tuple[Obj, Obj]]:
    return [(o, o["spec"]["template"]) for o in _of(objects, "Deployment")]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _selected(objects: list[Obj], selector: dict[str, str]) -> list[Obj]:
    return [t for _, t in _pod_templates(objects) if _matches(selector, t["metadata"]["labels"])]


def _port_names(template: Obj) -> set[str]:
    return {
        p["name"] for c in template["spec"]["containers"] for p in c.get("ports", []) if "name" in p
    }


def selector_problems(objects: list[Obj]) -> list[str]:
    problems = []
    for deployment, template in _pod_templates(objects):
        name = deployment["metadata"]["name"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        if not _matches(selector, template["metadata"]["labels"]):
            problems.append(f"Deployment {name}: selector {selector} misses its pods")
        others = [t for t in _selected(objects, selector) if t is not template]
        if others:
            problems.append(f"Deployment {name}: selector {selector} also takes other pods")
    return problems


def reference_problems(objects: list[Obj]) -> list[str]:
    problems = []
    for service in _of(objects, "Service"):
        name = service["metadata"]["name"]
        pods = _selected(objects, service["spec"]["selector"])
        if not pods:
            problems.append(f"Service {name}: selects no pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and any(target not in _port_names(t) for t in pods):
                problems.append(f"Service {name}: targetPort {target} is no port of its pods")
    deployments = {d["metadata"]["name"] for d in _of(objects, "Deployment")}
    for pdb in _of(objects, "PodDisruptionBudget"):
        if not _selected(objects, pdb["spec"]["selector"]["matchLabels"]):
            problems.append(f"PodDisruptionBudget {pdb['metadata']['name']}: selects no pods")
    covered = {
        d["metadata"]["name"]
        for d in _of(objects, "Deployment")
        for pdb in _of(objects, "PodDisruptionBudget")
        if _matches(
            pdb["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]
        )
    }
    problems += [f"Deployment {d}: no PodDisruptionBudget" for d in sorted(deployments - covered)]
    for hpa in _of(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or target["name"] not in deployments:
            problems.append(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: no {target}")
        elif "replicas" in (_named(objects, "Deployment", target["name"]) or {})["spec"]:
            problems.append(f"Deployment {target['name']}: replicas set, but its HPA owns them")
    for policy in _of(objects, "NetworkPolicy"):
        pods = _selected(objects, policy["spec"]["podSelector"]["matchLabels"])
        if not pods:
            problems.append(f"NetworkPolicy {policy['metadata']['name']}: selects no pods")
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                if any(port["port"] not in _port_names(t) for t in pods):
                    problems.append(
                        f"NetworkPolicy {policy['metadata']['name']}: port {port['port']} "
                        "is no port of its pods"
                    )
    for ingress in _of(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = _named(objects, "Service", backend["name"])
                ports = {p.get("name") for p in (service or {}).get("spec", {}).get("ports", [])}
                if service is None or backend["port"].get("name") not in ports:
                    problems.append(f"Ingress {ingress['metadata']['name']}: no {backend}")
    for binding in _of(objects, "RoleBinding"):
        if _named(objects, binding["roleRef"]["kind"], binding["roleRef"]["name"]) is None:
            problems.append(f"RoleBinding {binding['metadata']['name']}: no {binding['roleRef']}")
        for subject in binding["subjects"]:
            if _named(objects, subject["kind"], subject["name"]) is None:
                problems.append(f"RoleBinding {binding['metadata']['name']}: no {subject}")
    for _, template in _pod_templates(objects):
        account = template["spec"].get("serviceAccountName")
        if account and _named(objects, "ServiceAccount", account) is None:
            problems.append(f"no ServiceAccount {account}")
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume:
                found = _named(objects, "ConfigMap", volume["configMap"]["name"])
                keys = {i["key"] for i in volume["configMap"].get("items", [])}
                if found is None or keys - set(found["data"]):
                    problems.append(f"volume {volume['name']}: no ConfigMap keys {keys}")
    return problems


def _datrix_containers(objects: list[Obj]) -> list[tuple[str, Obj]]:
    """(Deployment, container) of every container that runs the datrix CLI."""
    return [
        (d["metadata"]["name"], c)
        for d, t in _pod_templates(objects)
        for c in t["spec"]["containers"]
        if c.get("command", [""])[0] == "datrix"
    ]


def role_problems(objects: list[Obj]) -> list[str]:
    problems = []
    roles: list[str] = []
    for deployment, container in _datrix_containers(objects):
        command = container["command"]
        if command[:2] == ["datrix", "worker"]:
            if len(command) != 4 or command[2] != "--roles":
                problems.append(f"{deployment}: {command} is not `datrix worker --roles ROLE`")
                continue
            chosen = command[3].split(",")
            problems += [
                f"{deployment}: no role {r!r} (ROLES: {ROLES})" for r in chosen if r not in ROLES
            ]
            roles += chosen
        elif command[:2] != ["datrix", "serve"]:
            problems.append(f"{deployment}: {command} is neither worker nor serve")
    problems += [f"role {r}: no Deployment" for r in ROLES if r not in roles]
    problems += [f"role {r}: more than one Deployment" for r in set(roles) if roles.count(r) > 1]
    for hpa in _of(objects, "HorizontalPodAutoscaler"):
        for metric in hpa["spec"]["metrics"]:
            external = metric["external"]["metric"]
            group = external["selector"]["matchLabels"].get("group")
            if external["name"] != "datrix_consumer_lag" or group not in ROLES:
                problems.append(f"HPA {hpa['metadata']['name']}: {external} is no role's lag")
    scaled = {
        h["spec"]["scaleTargetRef"]["name"].removeprefix("datrix-")
        for h in _of(objects, "HorizontalPodAutoscaler")
    }
    problems += [f"role {r}: no HorizontalPodAutoscaler" for r in sorted(AUTOSCALED - scaled)]
    groups, gauges = served_lag()
    hpa_groups = {
        m["external"]["metric"]["selector"]["matchLabels"].get("group")
        for h in _of(objects, "HorizontalPodAutoscaler")
        for m in h["spec"]["metrics"]
    }
    if ("datrix_consumer_lag", ("group",)) not in gauges:
        problems.append("gateway/api/metrics.py defines no datrix_consumer_lag{group}")
    if hpa_groups - groups != NOT_YET_SERVED:
        problems.append(
            f"HPAs on groups the API does not report: {sorted(hpa_groups - groups)}, the "
            f"README says {sorted(NOT_YET_SERVED)} (it reports {sorted(groups)})"
        )
    for hpa in _of(objects, "HorizontalPodAutoscaler"):
        role = hpa["spec"]["scaleTargetRef"]["name"].removeprefix("datrix-")
        if role in CONSUMES and hpa["spec"]["maxReplicas"] > PARTITIONS[CONSUMES[role]]:
            problems.append(
                f"HPA {hpa['metadata']['name']}: maxReplicas {hpa['spec']['maxReplicas']} > "
                f"the {PARTITIONS[CONSUMES[role]]} partitions of {CONSUMES[role]}"
            )
    return problems


def _config_maps(objects: list[Obj]) -> dict[str, dict[str, str]]:
    return {c["metadata"]["name"]: c.get("data", {}) for c in _of(objects, "ConfigMap")}


# a value of the right shape for each Secret key the pods read (no values are committed)
PLACEHOLDERS = {
    "url": "postgresql://datrix_writer:secret@postgres:5432/datrix",
    "reader-url": "postgresql://datrix_reader:secret@postgres:5432/datrix",
}
SECRET = "s" * 40  # any other key: keys and salts need at least 32 characters


def environment(objects: list[Obj], container: Obj) -> tuple[dict[str, str], list[str]]:
    """The container's environment as Kubernetes would set it (Secrets as placeholders),
    and the problems found: a ConfigMap or key that does not exist."""
    maps = _config_maps(objects)
    env: dict[str, str] = {}
    problems = []
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        if name not in maps:
            problems.append(f"envFrom: no ConfigMap {name}")
        env.update(maps.get(name, {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            if key_ref["key"] not in maps.get(key_ref["name"], {}):
                problems.append(f"{var['name']}: no ConfigMap key {key_ref}")
            env[var["name"]] = maps.get(key_ref["name"], {}).get(key_ref["key"], "")
        elif "secretKeyRef" in ref:
            env[var["name"]] = PLACEHOLDERS.get(ref["secretKeyRef"]["key"], SECRET)
        else:
            env[var["name"]] = "from-the-downward-api"
    return env, problems


SETTINGS_VARS = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}


def settings_problems(objects: list[Obj]) -> list[str]:
    problems = []
    for deployment, container in _datrix_containers(objects):
        env, found = environment(objects, container)
        problems += [f"{deployment}: {p}" for p in found]
        unknown = sorted(v for v in env if v.startswith(ENV_PREFIX) and v not in SETTINGS_VARS)
        problems += [f"{deployment}: {v} is not a setting (streams/settings.py)" for v in unknown]
        if not unknown:
            try:
                settings = load_settings(env)
            except ValueError as exc:
                problems.append(f"{deployment}: the settings refuse its environment: {exc}")
                continue
            if settings.embedded or not settings.database_url:
                problems.append(f"{deployment}: not in Kafka mode with a database")
            if not settings.kafka_sasl_username:
                problems.append(f"{deployment}: no Kafka principal of its own")
    for name, data in _config_maps(objects).items():
        unknown = sorted(k for k in data if k.startswith(ENV_PREFIX) and k not in SETTINGS_VARS)
        problems += [f"ConfigMap {name}: {k} is not a setting" for k in unknown]
    return problems


ROUTES = {
    path
    for router in ROUTERS
    for route in router.routes
    for path in [getattr(route, "path", None)]
    if path and "GET" in getattr(route, "methods", set())
}


def probe_problems(objects: list[Obj]) -> list[str]:
    problems = []
    for deployment, container in _datrix_containers(objects):
        probes = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        if container["command"][:2] == ["datrix", "serve"]:
            if (
                container.get("readinessProbe", {}).get("httpGet", {}).get("path")
                != "/health/ready"
            ):
                problems.append(f"{deployment}: readiness is not /health/ready")
            port = container["command"][container["command"].index("--port") + 1]
            if {p["containerPort"] for p in container["ports"]} != {int(port)}:
                problems.append(f"{deployment}: serves on {port}, not on its container port")
        for probe in probes:
            path = (probe or {}).get("httpGet", {}).get("path")
            if path is not None and path not in ROUTES:
                problems.append(f"{deployment}: probe path {path} is no GET route of the API")
    return problems


def _secret_refs(objects: list[Obj]) -> set[tuple[str, str]]:
    return {
        (var["valueFrom"]["secretKeyRef"]["name"], var["valueFrom"]["secretKeyRef"]["key"])
        for _, template in _pod_templates(objects)
        for container in template["spec"]["containers"]
        for var in container.get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }


def secret_problems(objects: list[Obj], readme: str) -> list[str]:
    """Every Secret and key a pod reads is in the README's table of Secrets (``| name |
    key, key |``), and nothing else is."""
    listed: set[tuple[str, str]] = set()
    for name, keys in re.findall(r"^\| `(datrix-[a-z0-9-]+)` \| ([^|]+)\|", readme, re.M):
        listed |= {(name, k) for k in re.findall(r"`([a-z0-9-]+)`", keys)}
    used = _secret_refs(objects)
    return [
        f"Secret {n} key {k}: not in deploy/k8s/README.md" for n, k in sorted(used - listed)
    ] + [f"Secret {n} key {k}: in the README, read by no pod" for n, k in sorted(listed - used)]


def spark_problems(objects: list[Obj]) -> list[str]:
    problems = []
    jobs = _named(objects, "Deployment", "datrix-jobs")
    assert jobs is not None
    container = jobs["spec"]["template"]["spec"]["containers"][0]
    env, _ = environment(objects, container)
    conf_dir = env.get("SPARK_CONF_DIR")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    if conf_dir not in mounts:
        problems.append(f"SPARK_CONF_DIR {conf_dir} is not mounted")
    conf = _config_maps(objects)["datrix-spark"]["spark-defaults.conf"]
    lines = [
        line for line in conf.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    settings = dict(line.split(None, 1) for line in lines)
    for name in re.findall(r"\$\{env:([A-Z_]+)\}", "\n".join(lines)):
        if name not in env:
            problems.append(f"spark-defaults.conf reads ${{env:{name}}}, the jobs pod has none")
    if env.get("SPARK_EXECUTOR_IMAGE") != container["image"]:
        problems.append(
            f"executors' image {env.get('SPARK_EXECUTOR_IMAGE')} is not the driver's "
            f"{container['image']}"
        )
    if not env.get("DATRIX_SPARK_MASTER", "").startswith("k8s://"):
        problems.append("DATRIX_SPARK_MASTER is not a k8s:// master")
    ports = {p["name"]: str(p["containerPort"]) for p in container.get("ports", [])}
    for key, port in (
        ("spark.driver.port", "spark-driver"),
        ("spark.driver.blockManager.port", "spark-blocks"),
    ):
        if settings.get(key, "").strip() != ports.get(port):
            problems.append(f"{key} is not the container port {port}")
    if jobs["spec"]["template"]["spec"].get("serviceAccountName") != "datrix-jobs":
        problems.append("the jobs pod does not run as datrix-jobs (executors need its Role)")
    return problems


CHECKS: dict[str, Callable[[list[Obj]], list[str]]] = {
    "selectors": selector_problems,
    "references": reference_problems,
    "roles": role_problems,
    "settings": settings_problems,
    "probes": probe_problems,
    "secrets": lambda objects: secret_problems(objects, README.read_text()),
    "spark": spark_problems,
}


# -- the tests ------------------------------------------------------------------------------


def test_every_object_is_valid_for_the_kubernetes_version(rendered: list[Obj]) -> None:
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )


def test_a_misspelt_field_fails_validation() -> None:
    deployment = _named(rendered_copy(BASE), "Deployment", "datrix-api")
    assert deployment is not None
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_cross_checks_pass(rendered: list[Obj], check: str) -> None:
    assert CHECKS[check](rendered) == []


def test_the_base_renders_as_kustomize_would() -> None:
    objects = rendered_copy(BASE)
    assert {o["metadata"]["namespace"] for o in objects} == {"datrix"}
    assert all(o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "datrix" for o in objects)
    images = {c["image"] for o in objects for c in _containers(o.get("spec"))}
    assert images == {
        "datrix:latest",
        "datrix-spark:latest",
        "quay.io/debezium/connect:3.6.1.Final",
    }
    binding = _named(objects, "RoleBinding", "datrix-spark-driver")
    assert binding is not None
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "datrix-jobs", "namespace": "datrix"}
    ]
    # labels without includeSelectors: selectors stay as written
    api = _named(objects, "Deployment", "datrix-api")
    assert api is not None
    assert api["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "datrix-api"}


def test_the_overlay_moves_namespace_images_and_the_executors_image() -> None:
    objects = rendered_copy(OVERLAY)
    assert {o["metadata"]["namespace"] for o in objects} == {"datrix-prod"}
    assert all(o["metadata"]["labels"]["environment"] == "production" for o in objects)
    images = {c["image"] for o in objects for c in _containers(o.get("spec"))}
    assert "registry.example.com/datrix:0.1.0" in images
    assert _config_maps(objects)["datrix-spark"]["SPARK_EXECUTOR_IMAGE"] == (
        "registry.example.com/datrix-spark:0.1.0"
    )
    assert _named(objects, "Ingress", "datrix-api") is not None


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "configMapGenerator:\n  - name: x\n    literals: [a=b]\n"
    )
    with pytest.raises(KustomizeError, match="configMapGenerator not supported"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "kind: Kustomization\nresources: [../base]\n".replace("../base", str(BASE))
        + "patches:\n  - path: p.yaml\n"
    )
    (tmp_path / "p.yaml").write_text(
        "kind: Deployment\nmetadata: {name: datrix-api}\n"
        "spec: {template: {spec: {containers: []}}}\n"
    )
    with pytest.raises(KustomizeError, match=r"patching a list \(containers\)"):
        render(tmp_path)


def _break(kind: str, name: str, change: Callable[[Obj], None]) -> list[Obj]:
    broken = rendered_copy(BASE)
    target = _named(broken, kind, name)
    assert target is not None
    change(target)
    return broken


def _container(obj: Obj) -> Obj:
    container: Obj = obj["spec"]["template"]["spec"]["containers"][0]
    return container


BREAKAGES: dict[str, tuple[str, str, str, Callable[[Obj], None], str]] = {
    "selector": (
        "selectors",
        "Deployment",
        "datrix-relay",
        lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "relay"}),
        "selector",
    ),
    "service": (
        "references",
        "Service",
        "datrix-api",
        lambda s: s["spec"]["selector"].update({"app.kubernetes.io/name": "api"}),
        "Service datrix-api: selects no pods",
    ),
    "partitions": (
        "roles",
        "HorizontalPodAutoscaler",
        "datrix-jobs",
        lambda h: h["spec"].update({"maxReplicas": 10}),
        "maxReplicas 10 > the 3 partitions of jobs",
    ),
    "served": (
        "roles",
        "HorizontalPodAutoscaler",
        "datrix-jobs",
        lambda h: h["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"].update(
            {"group": "dispatcher"}
        ),
        "HPAs on groups the API does not report: ['dispatcher', 'monitor']",
    ),
    "hpa": (
        "references",
        "HorizontalPodAutoscaler",
        "datrix-jobs",
        lambda h: h["spec"]["scaleTargetRef"].update({"name": "datrix-job"}),
        "HorizontalPodAutoscaler datrix-jobs",
    ),
    "pdb": (
        "references",
        "PodDisruptionBudget",
        "datrix-monitor",
        lambda p: p["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "x"}),
        "Deployment datrix-monitor: no PodDisruptionBudget",
    ),
    "role": (
        "roles",
        "Deployment",
        "datrix-projector",
        lambda d: _container(d).update({"command": ["datrix", "worker", "--roles", "projection"]}),
        "no role 'projection'",
    ),
    "setting": (
        "settings",
        "ConfigMap",
        "datrix-services",
        lambda c: c["data"].update({"DATRIX_KAFKA_BOOTSTRAPS": "kafka:9092"}),
        "DATRIX_KAFKA_BOOTSTRAPS is not a setting",
    ),
    "value": (
        "settings",
        "ConfigMap",
        "datrix-services",
        lambda c: c["data"].update({"DATRIX_KAFKA_REPLICATION_FACTOR": "three"}),
        "DATRIX_KAFKA_REPLICATION_FACTOR",
    ),
    "probe": (
        "probes",
        "Deployment",
        "datrix-api",
        lambda d: _container(d)["livenessProbe"]["httpGet"].update({"path": "/healthz"}),
        "probe path /healthz is no GET route",
    ),
    "secret": (
        "secrets",
        "Deployment",
        "datrix-policies",
        lambda d: _container(d)["env"][0]["valueFrom"]["secretKeyRef"].update(
            {"name": "datrix-policy-kafka"}
        ),
        "Secret datrix-policy-kafka key username: not in deploy/k8s/README.md",
    ),
    "spark": (
        "spark",
        "ConfigMap",
        "datrix-spark",
        lambda c: c["data"].update({"SPARK_EXECUTOR_IMAGE": "datrix:latest"}),
        "is not the driver's datrix-spark:latest",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_cross_checks_catch_a_broken_copy(breakage: str) -> None:
    check, kind, name, change, expected = BREAKAGES[breakage]
    problems = CHECKS[check](_break(kind, name, change))
    assert any(expected in p for p in problems), problems
