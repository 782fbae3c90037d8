"""deploy/k8s: manifests validate against the Kubernetes schemas (kubernetes-validate, strict), the
kustomizations list real files, the pieces refer to each other consistently, the embedded config
loads, and the PrometheusRule carries exactly the rules of deploy/prometheus/rnnstream.rules.yml."""

import re
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from rnnstream.config import load_config_text

K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
CONFIG_ENV = {"KAFKA_BOOTSTRAP": "kafka:9093", "KAFKA_USERNAME": "u", "KAFKA_PASSWORD": "p", "POD_NAME": "rnnstream-0"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _generated_configmaps(base_dir: Path) -> list[dict]:
    """The ConfigMaps kustomize's configMapGenerator makes (before it appends the content hash)."""
    k = yaml.safe_load((base_dir / "kustomization.yaml").read_text())
    out = []
    for gen in k.get("configMapGenerator", []):
        data = {}
        for entry in gen["files"]:
            key, _, path = entry.rpartition("=") if "=" in entry else (Path(entry).name, "", entry)
            data[key] = (base_dir / path).read_text()
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    return out


@pytest.fixture(scope="module")
def base(deploy_dir) -> dict[str, dict]:
    out = {}
    for f in sorted((deploy_dir / "k8s" / "base").glob("*.yaml")):
        if f.name != "kustomization.yaml":
            for d in _docs(f):
                out[d["kind"]] = d
    for d in _generated_configmaps(deploy_dir / "k8s" / "base"):
        out[d["kind"]] = d
    return out


@pytest.fixture(scope="module")
def pod(base) -> dict:
    return base["StatefulSet"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def main(pod) -> dict:
    return next(c for c in pod["containers"] if c["name"] == "rnnstream")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_base_manifests_validate_strictly(deploy_dir, version):
    files = [f for f in (deploy_dir / "k8s" / "base").glob("*.yaml") if f.name != "kustomization.yaml"]
    assert len(files) >= 4
    for f in files:
        for d in _docs(f):
            kubernetes_validate.validate(d, version, strict=True)
    for d in _generated_configmaps(deploy_dir / "k8s" / "base"):
        kubernetes_validate.validate(d, version, strict=True)


def test_strict_validation_catches_a_typo(base):
    bad = yaml.safe_load(yaml.safe_dump(base["StatefulSet"]))
    bad["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("sub", ["base", "monitoring"])
def test_kustomization_lists_exactly_the_manifests(deploy_dir, sub):
    d = deploy_dir / "k8s" / sub
    k = yaml.safe_load((d / "kustomization.yaml").read_text())
    assert k["kind"] == "Kustomization"
    listed = k["resources"]
    assert len(listed) == len(set(listed))
    for r in listed:
        assert (d / r).is_file(), f"{sub}/kustomization.yaml lists missing {r}"
    present = {f.name for f in d.glob("*.yaml")} - {"kustomization.yaml"}
    assert present == set(listed), f"manifests not listed: {present - set(listed)}"


def test_kustomize_image_matches_the_containers(deploy_dir, pod):
    k = yaml.safe_load((deploy_dir / "k8s" / "base" / "kustomization.yaml").read_text())
    names = {i["name"] for i in k["images"]}
    for c in pod["initContainers"] + pod["containers"]:
        assert c["image"] in names


def test_statefulset_hardening_and_probes(base, pod, main):
    sts = base["StatefulSet"]
    assert pod["terminationGracePeriodSeconds"] >= 45   # the worst measured stop (hung broker) took ~30 s
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    for c in pod["initContainers"] + pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert "memory" in c["resources"]["limits"] and c["resources"]["requests"], c["name"]
    port = next(p for p in main["ports"] if p["name"] == "metrics")
    assert port["containerPort"] == 9108
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["args"] == ["run", "-c", "/etc/rnnstream/config.yaml"]
    vct = {v["metadata"]["name"]: v for v in sts["spec"]["volumeClaimTemplates"]}
    assert "state" in vct
    assert sts["spec"]["serviceName"] == base["Service"]["metadata"]["name"]
    assert pod["serviceAccountName"] == base["ServiceAccount"]["metadata"]["name"]


def test_every_mount_has_a_volume_and_writable_paths_are_volumes(base, pod, main):
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {v["metadata"]["name"] for v in base["StatefulSet"]["spec"]["volumeClaimTemplates"]}
    for c in pod["initContainers"] + pod["containers"]:
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes or m["name"] in claims, f"{c['name']}: no volume {m['name']}"
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {e["name"]: e for e in main["env"]}
    cache = env["NUMBA_CACHE_DIR"]["value"]
    assert cache in mounts and "emptyDir" in volumes[mounts[cache]], "numba cache must be a writable volume"
    assert volumes[mounts["/etc/rnnstream"]]["configMap"]["name"] == base["ConfigMap"]["metadata"]["name"]
    assert mounts["/var/lib/rnnstream"] in claims


def test_init_container_copies_the_cache_baked_into_the_image(deploy_dir, pod, main):
    baked = re.search(r"NUMBA_CACHE_DIR=(\S+)", (deploy_dir / "docker" / "Dockerfile").read_text()).group(1)
    init = next(c for c in pod["initContainers"] if c["name"] == "numba-cache")
    target = next(e["value"] for e in main["env"] if e["name"] == "NUMBA_CACHE_DIR")
    assert init["command"][:2] == ["cp", "-a"]
    assert init["command"][2].rstrip("/.") == baked.rstrip("/")
    assert init["command"][3].rstrip("/") == target.rstrip("/")
    assert target in {m["mountPath"] for m in init["volumeMounts"]}


def test_kafka_credentials_come_from_a_secret(main, base):
    env = {e["name"]: e for e in main["env"]}
    for var in ("KAFKA_USERNAME", "KAFKA_PASSWORD"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "rnnstream-kafka"
    text = base["ConfigMap"]["data"]["config.yaml"]
    assert "${KAFKA_PASSWORD}" in text and "password:" not in text.replace("sasl_password:", "")


def test_embedded_config_loads_and_agrees_with_the_pod(base, main):
    cfg = load_config_text(base["ConfigMap"]["data"]["config.yaml"], source="configmap.yaml", env=CONFIG_ENV)
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert cfg.state_dir == mounts["state"]
    assert cfg.metrics.port == 9108
    assert cfg.kafka.sasl_password.reveal() == "p"


def test_service_and_pdb_select_the_pods(base, main):
    labels = base["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        sel = base[kind]["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        assert sel.items() <= labels.items(), kind
    assert base["StatefulSet"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc_port = base["Service"]["spec"]["ports"][0]
    assert svc_port["targetPort"] in {p["name"] for p in main["ports"]} and svc_port["port"] == 9108
    assert base["Service"]["metadata"]["name"] == "rnnstream", "the alert rules expect job=\"rnnstream\""


def _monitoring(deploy_dir) -> dict[str, dict]:
    return {d["kind"]: d for f in (deploy_dir / "k8s" / "monitoring").glob("*.yaml") for d in _docs(f)
            if d["kind"] != "Kustomization"}


def test_crds_are_not_in_the_builtin_schemas_so_checked_structurally(deploy_dir, base):
    mon = _monitoring(deploy_dir)
    for d in mon.values():
        assert d["apiVersion"] == "monitoring.coreos.com/v1"
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(d, K8S_VERSIONS[0], strict=True)
    sm = mon["ServiceMonitor"]["spec"]
    assert sm["selector"]["matchLabels"].items() <= base["Service"]["metadata"]["labels"].items()
    ports = {p["name"] for p in base["Service"]["spec"]["ports"]}
    for ep in sm["endpoints"]:
        assert ep["port"] in ports and ep["path"] == "/metrics"
    pr = mon["PrometheusRule"]
    assert set(pr) == {"apiVersion", "kind", "metadata", "spec"} and set(pr["spec"]) == {"groups"}


def test_prometheusrule_embeds_the_rule_file(deploy_dir, rules_doc):
    pr = _monitoring(deploy_dir)["PrometheusRule"]
    assert pr["spec"]["groups"] == rules_doc["groups"]
    sys.path.insert(0, str(deploy_dir / "k8s" / "monitoring"))
    try:
        import build_prometheusrule
    finally:
        sys.path.pop(0)
    committed = (deploy_dir / "k8s" / "monitoring" / "prometheusrule.yaml").read_text()
    assert committed == build_prometheusrule.render(), "run: python deploy/k8s/monitoring/build_prometheusrule.py"


def test_config_change_rolls_the_pods(deploy_dir, pod):
    """The config comes from a configMapGenerator with its content hash in the name, so kustomize
    renames the ConfigMap (and the StatefulSet's reference) on every change: a new pod template."""
    k = yaml.safe_load((deploy_dir / "k8s" / "base" / "kustomization.yaml").read_text())
    gen = next(g for g in k["configMapGenerator"] if g["name"] == "rnnstream-config")
    assert not gen.get("options", {}).get("disableNameSuffixHash")
    assert not k.get("generatorOptions", {}).get("disableNameSuffixHash")
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == gen["name"]
    assert not list((deploy_dir / "k8s" / "base").glob("configmap*.yaml")), "a static ConfigMap would not roll"


def test_base_hard_codes_no_kafka_address(deploy_dir, main):
    env = {e["name"]: e for e in main["env"]}
    assert env["KAFKA_BOOTSTRAP"]["valueFrom"]["secretKeyRef"] == {"name": "rnnstream-kafka", "key": "bootstrap"}
    for f in (deploy_dir / "k8s" / "base").rglob("*.yaml"):
        text = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert not re.search(r"[a-z0-9.-]+\.svc(\.cluster\.local)?:\d+|:9092|:9093", text), f"{f.name}: a Kafka address"
