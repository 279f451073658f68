"""The container recipe (Containerfile, compose.yaml, container/entrypoint.sh) as far as
this machine can exercise it without a container engine: the recipe's promises are
checked in its text (non-root user, read-only root, only volumes writable, health
check), the shell scripts pass shellcheck where it is installed, and the entrypoint
runs for real outside a container against the test PostgreSQL: it waits for the store,
creates the first admin key once (mode 600), and starts a 2-worker `assay serve` that
becomes ready and answers with that key."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from service_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "container" / "entrypoint.sh"


def test_containerfile_runs_as_non_root_with_volumes_only() -> None:
    text = (ROOT / "Containerfile").read_text()
    kept = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    lines = [ln.strip() for ln in kept.replace("\\\n", " ").splitlines() if ln.strip()]
    assert lines[0].startswith("ARG BASE=") and "FROM ${BASE} AS build" in lines
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user == ["USER 10001:10001"]  # numeric: runtimes can check it is not root
    assert lines.index(user[0]) > max(i for i, ln in enumerate(lines) if ln.startswith(("RUN", "COPY")))
    assert any(ln.startswith("HEALTHCHECK") and "/status/live" in ln for ln in lines)
    assert 'ENTRYPOINT ["/usr/local/bin/assay-entrypoint"]' in lines
    assert not any(ln.startswith("ADD ") for ln in lines)  # nothing fetched by the recipe itself
    assert 'VOLUME ["/var/lib/assay"]' in lines and "ASSAY_DATA_DIR=/var/lib/assay" in text


def test_compose_runs_assay_read_only_with_postgres_and_redis() -> None:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"db", "redis", "assay"}
    assay = services["assay"]
    assert assay["read_only"] is True and assay["user"] == "10001:10001"
    assert assay["tmpfs"] == ["/tmp"] and assay["volumes"] == ["assay-data:/var/lib/assay"]
    env = assay["environment"]
    assert env["ASSAY_DB"].startswith("postgresql://") and "@db:" in env["ASSAY_DB"]
    assert env["ASSAY_REDIS_URL"].startswith("redis://redis:")
    assert env["ASSAY_SERVICE_METRICS_ROLE"] == "off" and env["ASSAY_SERVICE_METRICS_LISTEN"].endswith(":9464")
    assert assay["depends_on"]["db"] == {"condition": "service_healthy"}


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_scripts_pass_shellcheck() -> None:
    for script in (ENTRYPOINT, ROOT / "container" / "build-base.sh"):
        r = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def _env(tmp: Path, db: str, **extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where this environment's `assay` is
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "ASSAY_DB": db,
            "ASSAY_DATA_DIR": str(tmp / "data"), "ASSAY_HOST": "127.0.0.1", **extra}


def test_entrypoint_refuses_to_start_without_a_store(tmp_path: Path) -> None:
    r = subprocess.run(["sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=120,
                       env=_env(tmp_path, "postgresql://postgres@127.0.0.1:1/none", ASSAY_DB_WAIT_SECONDS="2"))
    assert r.returncode == 1 and "the store did not answer within 2 s" in r.stderr, r.stderr


@pytest.mark.postgres
def test_entrypoint_bootstraps_a_key_and_serves(tmp_path: Path) -> None:
    """First start: the key is created (mode 600) and the server answers with it. A
    restart keeps that key: the entrypoint's arguments go to `assay serve`, so the
    restart runs the same store check and bootstrap step, then `serve --help` (which
    exits at once) instead of a second 2-worker server: the first start already shows
    that serving with this key works."""
    from conftest import pg_schema

    key_file = tmp_path / "secrets" / "admin.key"
    key_file.parent.mkdir()
    with pg_schema() as db:
        port = free_port()
        env = _env(tmp_path, db, ASSAY_PORT=str(port), ASSAY_WORKERS="2",
                   ASSAY_BOOTSTRAP_ADMIN_KEY_FILE=str(key_file))
        log_path = tmp_path / "entrypoint-0.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(["sh", str(ENTRYPOINT)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
                    time.sleep(0.1)
                key = key_file.read_text().strip()
                assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key.startswith("assay_")
                r = httpx.get(f"http://127.0.0.1:{port}/v1/limits", headers={"X-API-Key": key}, timeout=30)
                assert r.status_code == 200, r.text
                r = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"X-API-Key": key}, timeout=30)
                assert r.status_code == 200 and "assay_index_loaded" in r.text
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        assert "created the first admin key" in log_path.read_text()
        again = subprocess.run(["sh", str(ENTRYPOINT), "--help"], env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0 and "--workers" in again.stdout, again.stdout + again.stderr
        assert "created the first admin key" not in again.stderr, again.stderr
        assert key_file.read_text().strip() == key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
