"""deploy/docker: static checks of the Dockerfile (Docker cannot run here), parsed with the
`dockerfile` package (Docker's own Go parser), and of its BuildKit ignore file."""

import fnmatch
import json
import re
from pathlib import Path

import pytest

import dockerfile  # a test extra: Docker's own Go parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cmds(deploy_dir):
    return dockerfile.parse_file(str(deploy_dir / "docker" / "Dockerfile"))


def _stages(cmds):
    stages: list[list] = []
    for c in cmds:
        if c.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(c)
    return stages


def _arg_defaults(cmds) -> dict[str, str]:
    out = {}
    for c in cmds:
        if c.cmd == "ARG" and "=" in c.value[0]:
            k, v = c.value[0].split("=", 1)
            out[k] = v.strip('"')
    return out


def test_multi_stage_on_python_slim_bookworm(cmds):
    stages = _stages(cmds)
    assert len(stages) >= 2
    args = _arg_defaults(cmds)
    for stage in stages:
        image = stage[0].value[0]
        image = args.get(image.strip("${}"), image)
        name, _, digest = image.partition("@")
        assert name == "python:3.11-slim-bookworm"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), "the base image is pinned by digest"
    final = stages[-1]
    assert any(c.cmd == "COPY" and any(f.startswith("--from=") for f in c.flags) for c in final)
    assert not any(c.cmd == "COPY" and "/src" in c.value for c in final), "sources must not reach the runtime image"


def test_runtime_user_ports_and_entrypoint(cmds):
    final = _stages(cmds)[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    assert any(c.cmd == "EXPOSE" and "9108" in c.value for c in final)
    entry = [c for c in final if c.cmd == "ENTRYPOINT"][-1]
    cmd = [c for c in final if c.cmd == "CMD"][-1]
    assert entry.json and list(entry.value) == ["rnnstream"]
    assert cmd.json and list(cmd.value) == ["run", "-c", "/etc/rnnstream/config.yaml"]


def test_numba_cache_is_set_then_warmed_as_the_runtime_user(cmds):
    final = _stages(cmds)[-1]
    names = [c.cmd for c in final]
    env_i = next(i for i, c in enumerate(final) if c.cmd == "ENV" and "NUMBA_CACHE_DIR" in c.value)
    warm_i = next(i for i, c in enumerate(final) if c.cmd == "RUN" and "rnnstream warmup" in c.value[0])
    user_i = max(i for i, n in enumerate(names) if n == "USER")
    assert env_i < warm_i and user_i < warm_i, "warm up after NUMBA_CACHE_DIR is set, as uid 10001"
    env = final[env_i].value
    cache = env[env.index("NUMBA_CACHE_DIR") + 1]
    creates = " ".join(c.value[0] for c in final[:warm_i] if c.cmd == "RUN")
    assert cache in creates and "-o 10001" in creates, "the cache dir must exist and belong to the runtime user"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything under it."""
    ignored = False
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(x, pat) for x in prefixes):
            ignored = not neg
    return ignored


def test_copy_sources_exist_and_survive_the_ignore_file(cmds, deploy_dir):
    patterns = [line.strip() for line in (deploy_dir / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for c in cmds:
        if c.cmd != "COPY" or any(f.startswith("--from=") for f in c.flags):
            continue
        for src in c.value[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: missing in the repository"
            assert not _ignored(src.rstrip("/"), patterns), f"COPY {src}: excluded by Dockerfile.dockerignore"
    for junk in (".venv", ".git", "tests", "out", "rnnstream/__pycache__", "rnnstream/x/__pycache__"):
        assert _ignored(junk, patterns), f"{junk} would be sent to the build context"


def test_healthcheck_is_exec_form_and_hits_healthz(cmds):
    hc = [c for c in cmds if c.cmd == "HEALTHCHECK"]
    assert hc and "/healthz" in json.dumps(hc[-1].value)


def test_dependencies_come_from_the_hash_lock(cmds, deploy_dir):
    """Every dependency pinned with hashes, installed with --require-hashes before the project (--no-deps)."""
    builder = _stages(cmds)[0]
    runs = [c.value[0] for c in builder if c.cmd == "RUN"]
    lock_run = next(r for r in runs if "requirements.lock" in r)
    assert "--require-hashes" in lock_run
    project_run = next(r for r in runs if "rnnstream-*.whl" in r)
    assert "pip install --no-deps /wheels/rnnstream-*.whl" in project_run
    lock = (deploy_dir / "docker" / "requirements.lock").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.M)}
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower()
        assert name in pinned, f"{name} is not in requirements.lock (regenerate it)"
    hashed = re.findall(r"^[A-Za-z0-9_.-]+==\S+(?: \\\n\s+--hash=sha256:[0-9a-f]{64})+", lock, re.M)
    assert len(hashed) == len(pinned) == len(re.findall(r"==", lock)), "every pin carries its hashes"


def test_no_config_is_baked_in(cmds):
    for c in cmds:
        assert not (c.cmd == "COPY" and any("config" in v for v in c.value)), "mount the config; do not bake the example"
