"""deploy/docker: static checks of the Dockerfile (Docker cannot run here), parsed with the
`dockerfile` package (Docker's own Go parser), and of its BuildKit ignore file."""

import fnmatch
import json
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
        assert image == "python:3.11-slim-bookworm"
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
