"""The Dask engine (`assay scan --engine dask`) against real `dask scheduler` and `dask
worker` processes on 127.0.0.1: the same records as the local engine (banks and case links
included), partitioned output written exactly once, and a worker killed with SIGKILL
mid-scan costs nothing but time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from assay.config import ScanSettings  # noqa: E402
from assay.scan.dask_engine import read_records, run_dask_scan  # noqa: E402
from assay.scan.run import run_scan  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout} s")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on loopback."""
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-7f3a",
          "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def cluster(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`dask scheduler` and two `dask worker` processes (one thread each) on 127.0.0.1."""
    port = _free_port()
    cache = tmp_path_factory.mktemp("worker-cache")
    env = dict(os.environ, ASSAY_WORKER_CACHE=str(cache), FSSPEC_S3=json.dumps({"endpoint_url": s3_endpoint}),
               **S3_ENV)
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    logs = tmp_path_factory.mktemp("dask-logs")
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        p = subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=log, stderr=log,
                             start_new_session=True)
        procs.append(p)
        return p

    sched = start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
                  "scheduler")
    _wait_port(port, sched, "dask scheduler")
    address = f"tcp://127.0.0.1:{port}"
    for i in range(2):
        start(["worker", address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
               "--no-dashboard", "--local-directory", str(logs / f"w{i}")], f"worker{i}")
    from distributed import Client

    client = Client(address, timeout=60)
    client.wait_for_workers(2, timeout=120)
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield {"address": address, "client": client, "cache": cache, "logs": logs}
    finally:
        client.close()
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _strip(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without its timing fields (file times move when a scan reads a file)."""
    rec = dict(rec)
    rec.pop("times", None)
    return rec


def _local_records(inputs: list[Any], settings: ScanSettings, matcher: Any, **kw: Any) -> dict[str, dict[str, Any]]:
    got: list[dict[str, Any]] = []
    run_scan(inputs, settings, matcher, lambda r: got.append(r.to_json_dict()), **kw)
    return {r["path"]: _strip(r) for r in got}


def _dist_records(out: str) -> tuple[dict[str, dict[str, Any]], Counter[str]]:
    recs = list(read_records(out))
    return {r["path"]: _strip(r) for r in recs}, Counter(r["path"] for r in recs)


# ------------------------------------------------------------------- a case with everything


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Demo images with a bank of four of them, an archive of edits, broken files, and a
    model file named by an image's generator metadata (a case link)."""
    import shutil
    import zipfile

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from assay.demo import prepare_demo
    root = tmp_path_factory.mktemp("case")
    db = f"sqlite:///{root / 'store.sqlite3'}"
    prepare_demo(root / "data", db)
    images = root / "data" / "images"
    with zipfile.ZipFile(root / "data" / "edits.zip", "w") as z:
        for p in sorted((images / "edits").iterdir())[:6]:
            z.write(p, f"edits/{p.name}")
    model = images / "other" / "random-weights.safetensors"
    autov2 = __import__("hashlib").sha256(model.read_bytes()).hexdigest()[:10]  # A1111's "Model hash"
    meta = PngInfo()
    meta.add_text("parameters", f"a test pattern\nSteps: 20, Seed: 1, Model hash: {autov2}, Model: test-model")
    Image.new("RGB", (64, 64), (120, 30, 200)).save(images / "uploads" / "made-with-model.png", pnginfo=meta)
    shutil.copy(images / "uploads" / "upload-blobs-a.jpg", images / "uploads" / "same-bytes.jpg")
    return {"root": root, "data": root / "data", "db": db}


def _matcher(db: str) -> Any:
    from assay.banks.matcher import Matcher
    from assay.banks.store import Store

    store = Store(db)
    m = Matcher(store)
    m.load()
    return m


def test_dask_engine_gives_the_local_engines_records_banks_and_links_included(
        cluster: dict[str, Any], case: dict[str, Any], tmp_path: Path) -> None:
    settings = ScanSettings(workers=2, lineage_db=case["db"])
    matcher = _matcher(case["db"])
    local = _local_records([case["data"]], settings, matcher)
    out = tmp_path / "out"
    summary = run_dask_scan([str(case["data"])], settings, matcher, str(out), client=cluster["client"],
                            partition_size=4)
    dist, counts = _dist_records(str(out))
    assert [p for p, n in counts.items() if n > 1] == []
    assert set(dist) == set(local)
    assert [p for p in local if dist[p] != local[p]] == []
    # the case has what makes the comparison worth something
    assert sum(1 for r in local.values() if r.get("matches")) >= 5
    assert any(p.endswith("edits.zip!/edits/" + Path(p).name) for p in local)
    linked = [r for r in dist.values() if r.get("case_links")]
    assert {Path(r["path"]).name for r in linked} == {"made-with-model.png", "random-weights.safetensors"}
    assert summary.files == len(local) and summary.matched_files == sum(1 for r in local.values() if r.get("matches"))
    assert summary.case_links is not None and summary.case_links.links == 1
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["summary"]["files"] == len(local)
    assert manifest["header"]["banks"][0]["name"] == "demo" and manifest["bank_snapshot"]
    assert manifest["progress"]["parts_done"] == manifest["progress"]["parts_planned"] > 3
    # the index went to the workers as a snapshot (checksummed files), never inside a task
    snap = out / "_banks" / manifest["bank_snapshot"]
    assert (snap / "meta.json").is_file() and (cluster["cache"] / manifest["bank_snapshot"] / "meta.json").is_file()
    assert not (out / "_held").exists() and not (out / "_tmp").exists()


def test_cli_dask_engine_summary_matches_the_local_scan(cluster: dict[str, Any], case: dict[str, Any],
                                                         tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assay.cli import app

    runner = CliRunner()
    loc = runner.invoke(app, ["--db", case["db"], "scan", str(case["data"]), "-o", str(tmp_path / "l.jsonl"),
                              "--json", "--workers", "2"])
    assert loc.exit_code == 0, loc.output
    dis = runner.invoke(app, ["--db", case["db"], "scan", str(case["data"]), "--engine", "dask", "--scheduler",
                              cluster["address"], "--out", str(tmp_path / "d"), "--json", "--partition-size", "8"])
    assert dis.exit_code == 0, dis.output
    a, b = json.loads(loc.stdout.splitlines()[-1]), json.loads(dis.stdout.splitlines()[-1])
    timing = {"scan_id", "started_at", "ended_at", "seconds"}
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    # readable output: the summary table names the output folder
    txt = runner.invoke(app, ["--db", case["db"], "scan", str(case["data"] / "images" / "other"), "--engine",
                              "dask", "--scheduler", cluster["address"], "--out", str(tmp_path / "t")])
    assert txt.exit_code == 0, txt.output
    assert "part-*.jsonl, _manifest.json" in txt.stdout and "unreadable" in txt.stdout
    # an output folder that holds a scan is never overwritten
    again = runner.invoke(app, ["--db", case["db"], "scan", str(case["data"]), "--engine", "dask",
                                "--scheduler", cluster["address"], "--out", str(tmp_path / "d")])
    assert again.exit_code != 0 and "already" in again.output and "Traceback" not in again.output


def test_cli_rejects_dask_options_without_the_dask_engine(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assay.cli import app

    r = CliRunner().invoke(app, ["scan", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--engine dask" in r.output
    r = CliRunner().invoke(app, ["scan", "s3://bucket/key", "--no-banks"])
    assert r.exit_code == 2 and "--engine dask" in r.output
