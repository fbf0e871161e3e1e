"""The container files agree with each other and keep their promises, checked without podman (the image
itself is built and run by tests/container/smoke.sh, `make container-test`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instruction(name: str) -> list[str]:
    """Every value of one Dockerfile instruction (continuation lines joined)."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.M)]


def test_compose_publishes_on_loopback_with_a_read_only_root_and_the_images_healthcheck() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    svc = compose["services"]["nmproxy"]
    assert svc["ports"] == ["127.0.0.1:8787:8787"]
    assert svc["volumes"] == ["nmproxy-data:/data"] and "nmproxy-data" in compose["volumes"]
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert svc["security_opt"] == ["no-new-privileges:true"]
    assert svc["env_file"] == "nmproxy.env"
    assert "environment" not in svc  # provider keys come from the env file only
    (check,) = _instruction("HEALTHCHECK")
    image_cmd = json.loads(check.split(" CMD ", 1)[1])
    assert svc["healthcheck"]["test"] == ["CMD", *image_cmd]
    assert "/healthz" in image_cmd[-1] and ":8787/" in image_cmd[-1]


def test_dockerfile_runs_nmproxy_as_uid_10001_with_data_as_its_volume() -> None:
    assert _instruction("FROM")[0] == "debian:bookworm-slim AS base"  # smoke.sh builds exactly this base
    assert _instruction("USER")[-1] == "10001:10001"
    assert _instruction("VOLUME") == ['["/data"]']
    assert _instruction("EXPOSE") == ["8787"]
    assert json.loads(_instruction("ENTRYPOINT")[-1]) == ["nmproxy"]  # exec form: SIGTERM reaches the proxy
    assert json.loads(_instruction("CMD")[-1]) == ["serve", "--host", "0.0.0.0", "--port", "8787"]
    env = " ".join(_instruction("ENV"))
    assert "NMPROXY_CONFIG=/etc/nmproxy/providers.yaml" in env and "NMPROXY_DB=/data/nextmodel.db" in env


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"  # everything out (venvs, ledgers, tests, env files, .git) ...
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for value in _instruction("COPY"):
        if value.startswith("--from"):
            continue
        copied.update(Path(p).parts[0] for p in value.split()[:-1])
    assert allowed == copied  # ... and back in only what a COPY needs
