"""deploy/k8s/changelog: the overlay that keeps state in Kafka instead of a volume per replica."""

from pathlib import Path

import kubernetes_validate
import yaml

from rnnstream.config import load_config_text

from .test_k8s import CONFIG_ENV, K8S_VERSIONS


def _one(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _apply(doc: dict, ops: list[dict]) -> dict:
    """The two JSON-patch operations the overlay uses (remove a key, append to a list)."""
    doc = yaml.safe_load(yaml.safe_dump(doc))
    for op in ops:
        *parents, last = op["path"].strip("/").split("/")
        node = doc
        for p in parents:
            node = node[p]
        if op["op"] == "remove":
            del node[last]
        else:
            assert op["op"] == "add" and last == "-"
            node.append(op["value"])
    return doc


def test_overlay_replaces_the_volume_claim_by_an_empty_dir(deploy_dir):
    d = deploy_dir / "k8s" / "changelog"
    k = _one(d / "kustomization.yaml")
    assert k["resources"] == ["../base"]
    inline = next(p for p in k["patches"] if "patch" in p)
    assert inline["target"] == {"kind": "StatefulSet", "name": "rnnstream"}
    sts = _apply(_one(deploy_dir / "k8s" / "base" / "statefulset.yaml"), yaml.safe_load(inline["patch"]))
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["state"]
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(sts, version, strict=True)


def test_overlay_config_is_the_base_config_with_exactly_once_and_the_changelog(deploy_dir):
    k = _one(deploy_dir / "k8s" / "changelog" / "kustomization.yaml")
    assert k["configMapGenerator"] == [{"name": "rnnstream-config", "behavior": "replace",
                                        "files": ["config.yaml=config/config.yaml"]}]
    base_text = (deploy_dir / "k8s" / "base" / "config" / "config.yaml").read_text()
    over_text = (deploy_dir / "k8s" / "changelog" / "config" / "config.yaml").read_text()
    b, o = yaml.safe_load(base_text), yaml.safe_load(over_text)
    assert o.pop("processing") == {"guarantee": "exactly_once", "changelog": True, "standby_replicas": 1}
    assert o == b                                             # nothing else differs: no drift
    cfg = load_config_text(over_text, env=CONFIG_ENV)
    assert cfg.processing.guarantee == "exactly_once" and cfg.processing.changelog
    assert cfg.processing.standby_replicas == 1
