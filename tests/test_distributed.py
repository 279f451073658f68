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
from typing import Any, ClassVar

import pytest

pytest.importorskip("distributed")

from assay.config import ScanSettings  # noqa: E402
from assay.report.schema import FileRecord, SignalValue  # noqa: E402
from assay.scan.analyzer import Subject  # noqa: E402
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
    # the workers import this module to run its stand-in analyzers (tasks name functions)
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = dict(os.environ, ASSAY_WORKER_CACHE=str(cache), FSSPEC_S3=json.dumps({"endpoint_url": s3_endpoint}),
               PYTHONPATH=path, **S3_ENV)
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    env["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"] = '{"MALLOC_TRIM_THRESHOLD_": None}'
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


@pytest.fixture(autouse=True)
def _client_snapshot_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client writes the bank snapshot into this machine's cache: a temporary one here."""
    monkeypatch.setenv("ASSAY_WORKER_CACHE", str(tmp_path / "client-cache"))


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
    # copied from there into the workers' machine cache, every file checked against its SHA-256
    assert (snap / "meta.json").is_file() and (cluster["cache"] / manifest["bank_snapshot"] / "meta.json").is_file()
    assert (tmp_path / "client-cache" / manifest["bank_snapshot"] / "meta.json").is_file()
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


def test_model_links_on_dask_are_the_local_engines(cluster: dict[str, Any], tmp_path: Path) -> None:
    """--model-links: the model files are fingerprinted on the workers and linked by the
    client; records and the case-links line equal the local engine's."""
    import numpy as np

    import lineage_eval as ev
    import modelgen

    def write(path: Path, arrays: dict[str, Any], dt: str = "F32") -> None:
        vals = {k: np.asarray(v, dtype=np.float16 if dt == "F16" else np.float32) for k, v in arrays.items()}
        modelgen.write_safetensors(path, {k: (dt, v.shape) for k, v in vals.items()}, values=vals)

    root = tmp_path / "drive"
    root.mkdir()
    specs = modelgen.llama(hidden=128, layers=2, vocab=512, ff=256, kv=32, dt="F32")  # small: ~1 s CPU in all
    base = {k: np.asarray(v) for k, v in ev.random_model(specs, 1).items()}
    write(root / "base.safetensors", base)
    write(root / "base-fp16.safetensors", base, "F16")
    write(root / "tuned.safetensors", {k: np.asarray(v) for k, v in ev.fine_tune(base, 0.02, 5).items()})
    write(root / "unrelated.safetensors", {k: np.asarray(v) for k, v in ev.random_model(specs, 99).items()})
    settings = ScanSettings(workers=2, provenance=False)
    got: list[dict[str, Any]] = []
    loc = run_scan([root], settings, None, lambda r: got.append(r.to_json_dict()), model_links=True)
    local = {r["path"]: _strip(r) for r in got}
    summary = run_dask_scan([str(root)], settings, None, str(tmp_path / "out"), client=cluster["client"],
                            partition_size=2, model_links=True)
    dist, counts = _dist_records(str(tmp_path / "out"))
    assert set(counts.values()) == {1} and dist == local
    assert loc.case_links is not None and summary.case_links is not None
    a, b = loc.case_links.to_json_dict(), summary.case_links.to_json_dict()
    assert a == b
    rel = {(Path(x["a"]).name, Path(x["b"]).name, x["relation"]) for x in b["model_links"]}
    assert ("base-fp16.safetensors", "base.safetensors", "same-weights") in rel
    assert ("base.safetensors", "tuned.safetensors", "related") in rel  # no file is a known base
    assert b["model_files_fingerprinted"] == 4 and not any("unrelated" in x + y for x, y, _ in rel)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["case_links"]["model_links"] == b["model_links"]


# ------------------------------------------------------------------- object stores, manifests


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The loopback S3 server as this process's default s3:// file system."""
    import fsspec

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3_endpoint})
    fs = fsspec.filesystem("s3", endpoint_url=s3_endpoint, skip_instance_cache=True)
    return fs


def test_objects_from_s3_give_the_records_of_the_same_files_on_disk(
        cluster: dict[str, Any], case: dict[str, Any], s3: Any, tmp_path: Path) -> None:
    """Inputs as an S3 prefix, a plain URL list and an S3 Inventory manifest (CSV, gzip,
    URL-encoded keys); output parts and manifest written to S3; records equal the local
    engine's for the same bytes (path and file times aside), banks included."""
    import gzip
    import uuid

    bucket = f"evidence-{uuid.uuid4().hex[:8]}"
    s3.mkdir(bucket)
    images = case["data"] / "images"
    by_prefix = sorted((images / "edits").iterdir())[:8] + [case["data"] / "edits.zip"]
    by_list = sorted((images / "uploads").iterdir())
    by_inventory = sorted((images / "other").iterdir())
    url_of: dict[str, str] = {}
    for p in by_prefix:
        url_of[str(p)] = f"s3://{bucket}/batch 1/{p.name}"
    for p in by_list:
        url_of[str(p)] = f"s3://{bucket}/listed/{p.name}"
    for p in by_inventory:
        url_of[str(p)] = f"s3://{bucket}/inventoried/{p.name}"
    for local, url in url_of.items():
        s3.put_file(local, url)
    listing = tmp_path / "list.txt"
    listing.write_text("# a plain list\n" + "".join(url_of[str(p)] + "\n" for p in by_list))
    from urllib.parse import quote

    rows = "".join(f'"{bucket}","{quote("inventoried/" + p.name)}","{p.stat().st_size}","2026-01-02T03:04:05.000Z"\n'
                   for p in by_inventory)
    s3.pipe_file(f"{bucket}-inv/data/inv.csv.gz".replace(f"{bucket}-inv", bucket), gzip.compress(rows.encode()))
    inventory = {"sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{bucket}",
                 "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate",
                 "files": [{"key": "data/inv.csv.gz", "size": 1, "MD5checksum": "x"}]}
    s3.pipe_file(f"{bucket}/inventory/manifest.json", json.dumps(inventory).encode())

    settings = ScanSettings(workers=2, lineage_db=case["db"])
    matcher = _matcher(case["db"])
    local = _local_records([*by_prefix, *by_list, *by_inventory], settings, matcher, model_links=True)
    out = f"s3://{bucket}/results/scan-1"
    summary = run_dask_scan([f"s3://{bucket}/batch 1/"], settings, matcher, out,
                            manifests=[str(listing), f"s3://{bucket}/inventory/manifest.json"],
                            client=cluster["client"], partition_size=3, case_links=False, model_links=True)
    dist, counts = _dist_records(out)
    assert [p for p, n in counts.items() if n > 1] == []
    local_urls = {}
    for path, rec in local.items():
        top, sep, member = path.partition("!/")
        # error messages and case links name files: the same, naming the objects
        text = json.dumps(rec)
        for p in sorted(url_of, key=len, reverse=True):
            text = text.replace(json.dumps(p)[1:-1], url_of[p])
        local_urls[url_of[top] + sep + member] = json.loads(text)
    assert set(dist) == set(local_urls)
    assert [u for u, rec in local_urls.items() if dist[u] != rec] == []
    assert sum(1 for r in dist.values() if r.get("matches")) >= 4
    assert summary.files == len(local)
    # case links across inputs (an image in the URL list names the model of the inventory), and
    # --model-links: the model object was copied to a worker and fingerprinted there
    assert summary.case_links is not None and summary.case_links.links == 1
    assert summary.case_links.model_links is not None
    assert (summary.case_links.model_links.fingerprinted, summary.case_links.model_links.skipped) == (1, [])
    # custody: each object's last-modified time as the store gave it (listing, HEAD, inventory)
    times = {r["path"]: r.get("times") for r in read_records(out) if "!/" not in r["path"]}
    for p in by_prefix + by_list:
        want = s3.info(url_of[str(p)])["LastModified"].astimezone(__import__("datetime").UTC).isoformat()
        assert times[url_of[str(p)]] == {"source": "object-store", "mtime": want}
    assert {json.dumps(times[url_of[str(p)]]) for p in by_inventory} == {
        json.dumps({"source": "object-store", "mtime": "2026-01-02T03:04:05+00:00"})}
    manifest = json.loads(s3.cat_file(f"{bucket}/results/scan-1/_manifest.json"))
    assert manifest["status"] == "finished" and manifest["progress"]["files"] == 9 + len(by_list) + len(by_inventory)
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in json.dumps(manifest)
    # a prefix with nothing under it is an unreadable input, named in the summary
    out2 = f"s3://{bucket}/results/scan-2"
    s2 = run_dask_scan([f"s3://{bucket}/no-such-prefix/"], settings, None, out2, client=cluster["client"])
    assert s2.unreadable_inputs == [f"s3://{bucket}/no-such-prefix/"] and s2.nothing_scanned


def test_inputs_with_secrets_are_redacted_in_the_manifest(cluster: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    listing = tmp_path / "l.txt"
    listing.write_text(str(tmp_path / "a.txt") + "\n")
    signed = "s3://b/k?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=deadbeefsecret"
    out = tmp_path / "out"
    summary = run_dask_scan([signed], ScanSettings(provenance=False, models=False), None, str(out),
                            manifests=[str(listing)], client=cluster["client"])
    text = (out / "_manifest.json").read_text()
    assert "deadbeefsecret" not in text and "AKIAEXAMPLE" not in text and "X-Amz-Signature=***" in text
    recs = list(read_records(str(out)))
    assert "deadbeefsecret" not in json.dumps(recs)
    assert summary.files == 2 and len(summary.unreadable_inputs) == 1


# ------------------------------------------------------------------- exactly once: kill -9, resume


class _Slow:
    """A stand-in analyzer that takes a while per file, so that a scan is still running
    when the test kills a worker or stops the client."""

    name: ClassVar[str] = "slow"
    kinds: ClassVar[frozenset[str]] = frozenset({"other"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        time.sleep(0.04)
        record.signals.append(SignalValue(type="sha256", value=__import__("hashlib").sha256(
            subject.path.read_bytes()).hexdigest()))


def _slow_factory(_settings: ScanSettings) -> list[_Slow]:
    return [_Slow()]


def _files(folder: Path, n: int) -> list[str]:
    folder.mkdir()
    for i in range(n):
        (folder / f"f{i:03d}.txt").write_text(f"file {i}\n")
    return sorted(str(p) for p in folder.iterdir())


def _busy(dask_scheduler: Any) -> int:
    return sum(1 for ts in dask_scheduler.tasks.values() if ts.state in ("processing", "queued", "waiting", "no-worker"))


def _idle(client: Any, timeout: float = 120) -> None:
    """Until the scheduler holds no task that may still run (queued tasks too: a
    cancellation reaches the scheduler after the client stopped), three looks in a row."""
    end = time.monotonic() + timeout
    quiet = 0
    while quiet < 3 and time.monotonic() < end:
        quiet = quiet + 1 if client.run_on_scheduler(_busy) == 0 else 0
        time.sleep(0.2)


@pytest.mark.parametrize("given_as", ["folder", "manifest"])
def test_a_worker_killed_mid_scan_loses_and_duplicates_nothing(cluster: dict[str, Any], tmp_path: Path,
                                                               given_as: str) -> None:
    """SIGKILL of a worker mid-partition; with a manifest the partitions' items come from the
    plans the workers wrote (the list cut into 4 segments)."""
    from assay.scan import sources

    client = cluster["client"]
    inputs = _files(tmp_path / "in", 96)
    folders, manifests = [str(tmp_path / "in")], []
    if given_as == "manifest":
        listing = tmp_path / "list.txt"
        listing.write_text("".join(p + "\n" for p in inputs))
        folders, manifests = [], [str(listing)]
        sources_bytes = -(-listing.stat().st_size // 4)
    else:
        sources_bytes = sources.SEGMENT_BYTES
    pids = client.run(os.getpid)
    address, victim = next(iter(pids.items()))
    killed: list[int] = []
    running: list[str] = []

    def kill_once(p: Any) -> None:
        if p.parts_done >= 3 and not killed:
            running.extend(str(k) for k in client.processing([address]).get(address, ()))
            os.kill(victim, signal.SIGKILL)  # the worker process itself, mid-partition
            killed.append(victim)

    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sources, "SEGMENT_BYTES", sources_bytes)
        summary = run_dask_scan(folders, ScanSettings(provenance=False, models=False), None, str(out),
                                manifests=manifests, client=client, partition_size=4, factory=_slow_factory,
                                on_progress=kill_once)
    assert killed, "the scan ended before a worker could be killed"
    assert any("run_partition" in k for k in running), running  # it died holding a partition
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    _, counts = _dist_records(str(out))
    assert sorted(counts) == inputs and set(counts.values()) == {1}  # 0 lost, 0 duplicated
    assert summary.files == 96 and summary.with_errors == 0
    assert len(list((out / "_done").iterdir())) == 24
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["segments"]) == (4 if manifests else 0)
    client.wait_for_workers(2, timeout=120)  # the nanny starts a new worker process


def test_stop_then_resume_redoes_only_unfinished_partitions(cluster: dict[str, Any], tmp_path: Path) -> None:
    client = cluster["client"]
    inputs = _files(tmp_path / "in", 64)
    settings = ScanSettings(provenance=False, models=False)
    out = tmp_path / "out"

    def stop(p: Any) -> None:
        if p.parts_done >= 3:
            raise KeyboardInterrupt  # what Ctrl-C does in the client

    with pytest.raises(KeyboardInterrupt):
        run_dask_scan([str(tmp_path / "in")], settings, None, str(out), client=client, partition_size=4,
                      factory=_slow_factory, on_progress=stop)
    _idle(client)  # partitions already running on workers finish (and commit) on their own
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["status"] == "cancelled" and manifest["progress"]["parts_done"] >= 3
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")}
    assert 3 <= len(first) < 16
    # the finished parts are valid on their own
    for name in first:
        assert all(json.loads(line)["schema"] == "assay.file/1" for line in (out / name).read_text().splitlines())
    with pytest.raises(Exception, match="already holds a scan"):
        run_dask_scan([str(tmp_path / "in")], settings, None, str(out), client=client, partition_size=4,
                      factory=_slow_factory)
    with pytest.raises(Exception, match="other inputs, settings or banks"):
        run_dask_scan([str(tmp_path / "in")], settings, None, str(out), client=client, partition_size=5,
                      factory=_slow_factory, resume=True)
    done: list[Any] = []
    summary = run_dask_scan([str(tmp_path / "in")], settings, None, str(out), client=client, partition_size=4,
                            factory=_slow_factory, resume=True, on_progress=done.append)
    p = done[-1]
    assert p.parts_skipped == len(first) and p.parts_done == 16 - len(first)
    assert {q.name: q.stat().st_mtime_ns for q in out.glob("part-0*.jsonl") if q.name in first} == first
    _, counts = _dist_records(str(out))
    assert sorted(counts) == inputs and set(counts.values()) == {1}
    assert summary.files == 64
    final = json.loads((out / "_manifest.json").read_text())
    assert final["status"] == "finished" and len(final["resumed_at"]) == 1
    assert final["header"]["scan_id"] == manifest["header"]["scan_id"] == summary.scan_id


def test_an_out_folder_inside_the_input_is_never_scanned(cluster: dict[str, Any], tmp_path: Path) -> None:
    inputs = _files(tmp_path / "in", 6)
    out = tmp_path / "in" / "scan-out"  # its part files appear while the input is walked
    summary = run_dask_scan([str(tmp_path / "in")], ScanSettings(provenance=False, models=False), None, str(out),
                            client=cluster["client"], partition_size=2)
    _, counts = _dist_records(str(out))
    assert sorted(counts) == inputs and summary.files == 6
    header = json.loads((out / "_manifest.json").read_text())["header"]
    assert header["not_scanned"] == [str(out)]
    again = run_dask_scan([str(tmp_path / "in")], ScanSettings(provenance=False, models=False), None,
                          str(tmp_path / "out2"), client=cluster["client"], partition_size=2)
    # from outside, the folder is evidence like any other
    assert again.files == 6 + sum(1 for q in out.rglob("*") if q.is_file())


def test_parquet_parts_hold_the_same_records(cluster: dict[str, Any], case: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="--format parquet needs the optional pyarrow (assay[parquet])")
    settings = ScanSettings(provenance=False, models=False)
    data = case["data"] / "images" / "edits"
    run_dask_scan([str(data)], settings, None, str(tmp_path / "j"), client=cluster["client"], partition_size=7)
    run_dask_scan([str(data)], settings, None, str(tmp_path / "p"), client=cluster["client"], partition_size=7,
                  fmt="parquet")
    assert sorted(p.name for p in (tmp_path / "p").glob("part-*"))[0] == "part-000000.parquet"
    a, b = _dist_records(str(tmp_path / "j"))[0], _dist_records(str(tmp_path / "p"))[0]
    assert a == b and len(a) == len(list(data.iterdir()))


def test_cli_local_cluster_started_and_stopped_by_assay(case: dict[str, Any], tmp_path: Path) -> None:
    """--workers N: assay starts a LocalCluster (nanny's MALLOC_TRIM_THRESHOLD_ unset),
    prints its dashboard link, scans, and stops it."""
    from typer.testing import CliRunner

    from assay.cli import app

    r = CliRunner().invoke(app, ["--db", case["db"], "scan", str(case["data"] / "images" / "uploads"), "--engine",
                                 "dask", "--workers", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "Dask dashboard: http://127.0.0.1:" in r.output and "matched files" in r.stdout
    import dask

    assert "MALLOC_TRIM_THRESHOLD_" not in dask.config.get("distributed.nanny.pre-spawn-environ")


def test_a_damaged_bank_snapshot_is_refused_by_the_worker_cache(case: dict[str, Any], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    from assay.banks.snapshot import fetch, open_snapshot, publish, write_snapshot
    from assay.errors import AssayError

    sid, local = write_snapshot(_matcher(case["db"]), tmp_path / "client")
    fs = fsspec.filesystem("file")
    publish(local, fs, str(tmp_path / "remote"))
    monkeypatch.setenv("ASSAY_WORKER_CACHE", str(tmp_path / "worker"))
    good = open_snapshot(fetch(fs, str(tmp_path / "remote"), sid))
    assert set(good.hamming) == {"pdq"} and good.hamming["pdq"].is_mapped()
    victim = sorted((tmp_path / "remote").rglob("codes.npy"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    monkeypatch.setenv("ASSAY_WORKER_CACHE", str(tmp_path / "other-machine"))
    with pytest.raises(AssayError, match="does not match its checksum"):
        fetch(fs, str(tmp_path / "remote"), sid)
    assert not (tmp_path / "other-machine" / sid).exists()


def test_dask_engine_matches_videos_as_the_local_engine(cluster: dict[str, Any], tmp_path: Path) -> None:
    """Videos take the same per-file analysis and the same vPDQ grouping on the workers
    (hits searched there, grouped per banked video after the client resolved them), their
    turned views too (a copy turned upside down matches through rotated-180, the view kept
    in its record alone)."""
    from assay.banks.store import Store
    from assay.banks.videos import bank_record
    from assay.media.video import hash_video_file
    from videogen import make_video, reencode

    orig = make_video(tmp_path / "orig.mkv", seed=1, seconds=6, fps=10, codec="mpeg4")
    d = tmp_path / "seized"
    d.mkdir()
    reencode(orig, tmp_path / "clip.avi", codec="mjpeg", start_s=1, end_s=5, fps=15).rename(d / "clip.bin")
    make_video(d / "other.mp4", seed=2, seconds=4, fps=10, codec="mpeg4")
    import av
    import numpy as np

    from videogen import write_video

    with av.open(str(orig)) as c:
        write_video(d / "half.mp4", (np.ascontiguousarray(f.to_ndarray(format="rgb24")[::-1, ::-1])
                                     for f in c.decode(video=0)), 10, codec="mpeg4", bit_rate=1_000_000)
    data = orig.read_bytes()
    (d / "broken.mkv").write_bytes(data[: len(data) // 2])
    db = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    with Store(db) as store:
        store.create_bank("videos")
        store.import_records("videos", [bank_record(hash_video_file(orig).vpdq, "case-7")], source="t")
    settings = ScanSettings(workers=1)
    matcher = _matcher(db)
    local = _local_records([d], settings, matcher)
    out = tmp_path / "out"
    run_dask_scan([str(d)], settings, matcher, str(out), client=cluster["client"], partition_size=1)
    dist, _ = _dist_records(str(out))
    assert set(dist) == set(local) and [p for p in local if dist[p] != local[p]] == []
    clip = next(r for p, r in dist.items() if p.endswith("clip.bin"))
    assert [(m["content_id"], m["signal_type"]) for m in clip["matches"]] == [("case-7", "vpdq")]
    assert clip["matches"][0]["video"]["query_match_percent"] >= 80
    broken = next(r for p, r in dist.items() if p.endswith("broken.mkv"))
    assert broken["errors"] and broken["errors"][0]["stage"] == "video-hash"
    other = next(r for p, r in dist.items() if p.endswith("other.mp4"))
    assert not other.get("matches")
    assert "vpdq_turned" not in other["video"] and "vpdq_turned" not in clip["video"]
    half = next(r for p, r in dist.items() if p.endswith("half.mp4"))
    assert [(m["content_id"], m["query_variant"]) for m in half["matches"]] == [("case-7", "rotated-180")]
    assert list(half["video"]["vpdq_turned"]) == ["rotated-180"]


def test_object_mtime_reads_each_stores_form_and_ignores_garbage() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from assay.scan.sources import object_mtime

    want = "2026-01-02T03:04:05+00:00"
    assert object_mtime({"LastModified": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}) == want  # s3fs
    assert object_mtime({"last_modified": datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))}) == want
    assert object_mtime({"updated": "2026-01-02T03:04:05Z"}) == want  # gcsfs
    assert object_mtime({"LastModified": "2026-01-02T03:04:05.000Z"}) == "2026-01-02T03:04:05+00:00"
    assert object_mtime({"mtime": 1767323045.0}) == want
    for bad in ({}, {"LastModified": "yesterday"}, {"mtime": float("inf")}, {"mtime": True}, {"updated": ""},
                {"LastModified": ["x"]}, None, "2026-01-02"):
        assert object_mtime(bad) is None


def test_prefetch_gives_each_object_as_fetch_object_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects fetched ahead in batches: the same copy, problem and size as one at a time,
    an object that grew since its listing read whole, a missing one named, a too-large one
    never read; batches bounded."""
    import fsspec

    from assay.scan import sources
    from assay.scan.sources import Prefetch, RemoteItem, fetch_object

    monkeypatch.setattr(sources, "BATCH_OBJECTS", 3)
    fs = fsspec.filesystem("memory")
    root = f"memory://prefetch-{os.getpid()}"
    blobs = {f"{root}/o{i}.bin": bytes([i]) * (100 + i) for i in range(8)}
    for url, data in blobs.items():
        fs.pipe_file(url, data)
    its: list[Any] = [RemoteItem(u, len(d)) for u, d in blobs.items()]
    its[2] = RemoteItem(its[2].url, 50)  # grew since it was listed
    its.insert(4, RemoteItem(f"{root}/missing.bin", 10))
    its.insert(5, RemoteItem(f"{root}/o7.bin", None))  # size unknown: fetched alone
    its.append(RemoteItem(f"{root}/big.bin", 10_000))
    fs.pipe_file(f"{root}/big.bin", b"x" * 10_000)
    calls: list[int] = []
    real = fs.cat_ranges
    monkeypatch.setattr(type(fs), "cat_ranges", lambda self, paths, *a, **k: calls.append(len(paths)) or real(paths, *a, **k))
    pre = Prefetch(its, 5_000, tmp_path, lambda u: ".bin")
    try:
        for i, it in enumerate(its):
            p, problem, size, _info = pre.take(i)
            q, problem2, size2 = fetch_object(it.url, 5_000, tmp_path, ".bin", it.size)
            assert (problem, size) == (problem2, size2), it
            assert (p is None) == (q is None)
            if p is not None and q is not None:
                assert p.read_bytes() == q.read_bytes() == blobs[it.url]
    finally:
        pre.close()
    assert calls and max(calls) <= 3


@pytest.mark.parametrize("fmt", ["Parquet", "ORC"])
def test_parquet_and_orc_s3_inventories_are_read(s3: Any, fmt: str) -> None:
    """Columnar S3 Inventories (keys not URL-encoded there): objects, sizes and
    last-modified times; a damaged data file is an error naming it."""
    pytest.importorskip("pyarrow", reason="Parquet/ORC inventories need the optional pyarrow")
    import io
    import uuid
    from datetime import datetime

    import pyarrow as pa

    from assay.errors import AssayError
    from assay.scan.sources import RemoteItem, manifest_items, manifest_segments, segment_items

    bucket = f"inv-{uuid.uuid4().hex[:8]}"
    s3.mkdir(bucket)
    table = pa.table({"bucket": [bucket, bucket, bucket], "key": ["a b/1.jpg", "c%2F.png", "d.bin"],
                      "size": pa.array([10, None, 7], pa.int64()),
                      "last_modified_date": pa.array([datetime(2026, 1, 2, 3, 4, 5), None, datetime(2025, 6, 1)],
                                                     pa.timestamp("ms"))})
    buf = io.BytesIO()
    if fmt == "ORC":
        import pyarrow.orc as orc

        orc.write_table(table, buf)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, buf)
    s3.pipe_file(f"{bucket}/data/part.{fmt.lower()}", buf.getvalue())
    doc = {"sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{bucket}", "fileFormat": fmt,
           "fileSchema": "message s3.inventory { required binary bucket; required binary key; }",
           "files": [{"key": f"data/part.{fmt.lower()}"}]}
    s3.pipe_file(f"{bucket}/manifest.json", json.dumps(doc).encode())
    got = list(manifest_items(f"s3://{bucket}/manifest.json"))
    assert got == [RemoteItem(f"s3://{bucket}/a b/1.jpg", 10, mtime="2026-01-02T03:04:05+00:00"),
                   RemoteItem(f"s3://{bucket}/c%2F.png", None),
                   RemoteItem(f"s3://{bucket}/d.bin", 7, mtime="2025-06-01T00:00:00+00:00")]
    # as a worker reads it: the data file is one segment with the same objects
    segs = manifest_segments(f"s3://{bucket}/manifest.json")
    assert [s.kind for s in segs] == [fmt.lower()] and [it for s in segs for it in segment_items(s)] == got
    s3.pipe_file(f"{bucket}/data/part.{fmt.lower()}", b"PAR1 not really" * 10)
    with pytest.raises(AssayError, match=f"data/part.{fmt.lower()}: not a readable {fmt.upper()} inventory"):
        list(manifest_items(f"s3://{bucket}/manifest.json"))
    # a worker makes it an item with the problem (an error record), not a failed scan
    [bad] = list(segment_items(segs[0]))
    assert bad.url == f"s3://{bucket}/data/part.{fmt.lower()}" and bad.is_input
    assert bad.problem and f"not a readable {fmt.upper()} inventory" in bad.problem


def test_a_columnar_inventory_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.errors import AssayError
    from assay.scan.sources import manifest_items

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    m = tmp_path / "manifest.json"
    m.write_text(json.dumps({"fileFormat": "ORC", "fileSchema": "struct<bucket:string,key:string>",
                             "files": [{"key": str(tmp_path / "x.orc")}]}))
    with pytest.raises(AssayError, match="ORC format needs pyarrow") as exc:
        list(manifest_items(str(m)))
    assert "assay[parquet]" in (exc.value.hint or "")


def test_a_broken_manifest_json_is_a_clear_error_from_planning_and_reading(tmp_path: Path) -> None:
    """A manifest.json that is not JSON is refused by name, whether the client plans its
    segments or a local scan reads its entries."""
    from assay.errors import AssayError
    from assay.scan.sources import manifest_items, manifest_segments

    m = tmp_path / "manifest.json"
    # cut short; bytes that are not UTF-8; a number json will not convert (over 4,300
    # digits); nesting deeper than the interpreter's recursion limit
    for body in (b'{"files": [', b'{"files": "\xff"}', b'{"size": ' + b"9" * 5000 + b"}",
                 b"[" * 100_000 + b"]" * 100_000):
        m.write_bytes(body)
        for read in (manifest_segments, lambda url: list(manifest_items(url))):
            with pytest.raises(AssayError, match=r"manifest\.json: not a JSON manifest"):
                read(str(m))


# ------------------------------------------------------------------- manifests read by the workers


def test_list_segments_give_every_line_once_wherever_the_cuts_fall(tmp_path: Path) -> None:
    """A plain list cut into byte ranges at every possible size: the segments' items, in
    order, are the whole list's (a line cut by a boundary belongs to the segment it starts in)."""
    import gzip

    from assay.scan.sources import manifest_items, manifest_segments, segment_items

    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    for name in ("1.png", "2.png"):
        (tmp_path / "d" / name).write_bytes(b"y")
    lines = ["# cases", "s3://bucket/k\u00e9y 1.jpg", "", str(tmp_path / "a.jpg") + "\r",
             "   s3://bucket/x/y.png  ", str(tmp_path / "d"), f"file://{tmp_path / 'missing.bin'}",
             "s3://bucket/last-without-newline"]
    listing = tmp_path / "list.txt"
    listing.write_bytes("\n".join(lines).encode())
    whole = list(manifest_items(str(listing)))
    assert len(whole) == 7 and sum(1 for it in whole if getattr(it, "problem", None)) == 1
    size = listing.stat().st_size
    for step in range(1, size + 2):
        segs = manifest_segments(str(listing), step)
        assert len(segs) == -(-size // step)
        assert [it for s in segs for it in segment_items(s)] == whole, step
    gz = tmp_path / "list.txt.gz"
    gz.write_bytes(gzip.compress(listing.read_bytes()))
    segs = manifest_segments(str(gz), 10)
    assert len(segs) == 1 and list(segment_items(segs[0])) == whole


def _executing(dask_worker: Any) -> int:
    return len(dask_worker.state.executing)


def _quiet(client: Any, timeout: float = 120) -> None:
    """Until neither the scheduler nor any worker runs a task (a cancelled task that was
    already running goes on in its worker after the scheduler has forgotten it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        _idle(client, timeout)
        if sum(client.run(_executing).values()) == 0:
            return
        time.sleep(0.2)


class _CountingClient:
    """A Dask client that counts the tasks submitted through it, by function."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.submitted: Counter[str] = Counter()

    def submit(self, fn: Any, *args: Any, **kw: Any) -> Any:
        self.submitted[fn.__name__] += 1
        return self.client.submit(fn, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_manifests_are_read_by_workers_in_segments_exactly_once_and_resumable(
        cluster: dict[str, Any], s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain URL list cut into byte ranges and an S3 Inventory of several CSV.gz data
    files: the client reads the inventory's manifest.json and the list's size only; workers
    read the segments and plan their partitions. Stopped, then resumed: no segment read
    twice, only unfinished partitions redone, every object exactly once; a data file that
    is gone is an error record and an unreadable input, the rest scanned."""
    import gzip
    import uuid

    from assay.scan import sources

    bucket = f"manifests-{uuid.uuid4().hex[:8]}"
    s3.mkdir(bucket)
    listed = [f"s3://{bucket}/listed/{i:02d}-{'x' * (i % 7)}.txt" for i in range(26)]
    inventoried = [f"s3://{bucket}/inv/{i:02d}.txt" for i in range(18)]
    for i, url in enumerate(listed + inventoried):
        s3.pipe_file(url, f"object {i}\n".encode())
    s3.pipe_file(f"{bucket}/lists/urls.txt", ("# listed\n" + "\n".join(listed) + "\n").encode())
    files = []
    for f in range(3):
        rows = "".join(f'"{bucket}","inv/{i:02d}.txt","9"\n' for i in range(f * 6, f * 6 + 6))
        s3.pipe_file(f"{bucket}/inventory/data/{f}.csv.gz", gzip.compress(rows.encode()))
        files.append({"key": f"inventory/data/{f}.csv.gz", "size": 1, "MD5checksum": f"m{f}"})
    files.insert(1, {"key": "inventory/data/gone.csv.gz", "size": 1, "MD5checksum": "g"})
    s3.pipe_file(f"{bucket}/inventory/manifest.json", json.dumps(
        {"sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{bucket}", "fileFormat": "CSV",
         "fileSchema": "Bucket, Key, Size", "files": files}).encode())
    manifests = [f"s3://{bucket}/lists/urls.txt", f"s3://{bucket}/inventory/manifest.json"]

    # the client never reads a list's lines or an inventory's data files: only the workers do
    def not_here(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the client read manifest entries")

    for name in ("_list_items", "_csv_rows", "_columnar_file", "segment_items"):
        monkeypatch.setattr(sources, name, not_here)
    monkeypatch.setattr(sources, "SEGMENT_BYTES", 300)  # the client cuts the list into segments of 300 bytes
    settings = ScanSettings(provenance=False, models=False)
    out = f"s3://{bucket}/results/scan"

    def stop(p: Any) -> None:
        if p.parts_done >= 3:
            raise KeyboardInterrupt

    first = _CountingClient(cluster["client"])
    with pytest.raises(KeyboardInterrupt):
        run_dask_scan([], settings, None, out, manifests=manifests, client=first, partition_size=4,
                      factory=_slow_factory, on_progress=stop)
    _quiet(cluster["client"])
    manifest = json.loads(s3.cat_file(f"{bucket}/results/scan/_manifest.json"))
    segments = manifest["segments"]
    list_bytes = s3.info(f"{bucket}/lists/urls.txt")["size"]
    assert [s["kind"] for s in segments] == ["list"] * -(-list_bytes // 300) + ["csv"] * 4
    assert len(segments) >= 6 and manifest["status"] == "cancelled"
    planned = {p.rsplit("/", 1)[-1] for p in s3.ls(f"{bucket}/results/scan/_plan") if p.endswith(".json")}
    assert 1 <= len(planned) <= first.submitted["split_segment"]
    finished = {p.rsplit("/", 1)[-1] for p in s3.ls(f"{bucket}/results/scan/_done")}
    assert len(finished) >= 3

    again = _CountingClient(cluster["client"])
    done: list[Any] = []
    summary = run_dask_scan([], settings, None, out, manifests=manifests, client=again, partition_size=4,
                            factory=_slow_factory, resume=True, on_progress=done.append)
    assert again.submitted["split_segment"] == len(segments) - len(planned)  # none read twice
    assert done[-1].parts_skipped == len(finished)
    assert again.submitted["run_partition"] == done[-1].parts_planned - len(finished)
    recs = list(read_records(out))
    counts = Counter(r["path"] for r in recs)
    gone = f"s3://{bucket}/inventory/data/gone.csv.gz"
    assert sorted(counts) == sorted([*listed, *inventoried, gone]) and set(counts.values()) == {1}
    by_path = {r["path"]: r for r in recs}
    assert by_path[gone]["kind"] == "error" and "inventory/manifest.json" in by_path[gone]["errors"][0]["message"]
    assert all(by_path[u]["kind"] != "error" for u in listed + inventoried)
    assert summary.files == len(listed) + len(inventoried) + 1 and summary.unreadable_inputs == [gone]
    final = json.loads(s3.cat_file(f"{bucket}/results/scan/_manifest.json"))
    assert final["status"] == "finished" and final["summary"]["files"] == summary.files
    # a manifest changed since the scan began is refused on --resume, never mixed
    s3.pipe_file(f"{bucket}/lists/urls.txt", ("\n".join(listed[:-1]) + "\n").encode())
    with pytest.raises(Exception, match="a manifest of this scan changed"):
        run_dask_scan([], settings, None, out, manifests=manifests, client=cluster["client"], partition_size=4,
                      factory=_slow_factory, resume=True)


def test_permuted_model_copies_in_an_object_store_link_as_on_disk(
        cluster: dict[str, Any], s3: Any, tmp_path: Path) -> None:
    """--model-links over objects: a copy of a model with its units reordered (and a
    fine-tuned one, reordered) links to the original as the local engine links the same
    files on disk; an unrelated model of the same shape links to nothing."""
    import uuid

    import numpy as np
    from safetensors.numpy import save_file

    import permutations as pm

    root = tmp_path / "drive"
    root.mkdir()
    rng = np.random.default_rng(3)
    a = pm.bert(1)
    p = pm.bert_reordered(a, rng)
    tp = pm.bert_reordered(pm.fine_tune(a, 0.02, 5), rng, ffn_layer=1)
    save_file(a, str(root / "encoder.safetensors"))
    save_file(p, str(root / "encoder-reordered.safetensors"))
    save_file(tp, str(root / "tuned-reordered.safetensors"))
    save_file(pm.bert(2), str(root / "other-encoder.safetensors"))
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    s3.mkdir(bucket)
    for f in root.iterdir():
        s3.put_file(str(f), f"{bucket}/drive/{f.name}")
    settings = ScanSettings(workers=2, provenance=False)
    local: list[dict[str, Any]] = []
    loc = run_scan([root], settings, None, lambda r: local.append(r.to_json_dict()), model_links=True)
    summary = run_dask_scan([f"s3://{bucket}/drive/"], settings, None, str(tmp_path / "out"),
                            client=cluster["client"], partition_size=2, model_links=True)
    assert loc.case_links is not None and summary.case_links is not None
    want = json.loads(json.dumps(loc.case_links.to_json_dict()).replace(str(root), f"s3://{bucket}/drive"))
    got = summary.case_links.to_json_dict()
    rel = {(Path(x["a"]).name, Path(x["b"]).name, x["relation"]) for x in got["model_links"]}
    assert ("encoder-reordered.safetensors", "encoder.safetensors", "same-weights") in rel or \
        ("encoder.safetensors", "encoder-reordered.safetensors", "same-weights") in rel
    assert not any("other-encoder" in x + y for x, y, _ in rel)
    assert got == want
    # answered with the weights (reopened on a worker), not from the fingerprints alone
    assert all("fingerprints alone" not in x["explanation"] for x in got["model_links"])
    # the tuned copy: related once the permutation is undone (no banked base tells a
    # fine-tune of the original from a sibling: context, not 'derived')
    assert any("is undone, close to" in x["explanation"] and x["relation"] == "related" for x in got["model_links"])
    want_recs = {r["path"]: r for r in (json.loads(json.dumps(_strip(x)).replace(str(root), f"s3://{bucket}/drive"))
                                        for x in local)}
    assert _dist_records(str(tmp_path / "out"))[0] == want_recs
