"""Helpers of the service tests: a real `assay serve` subprocess and a TCP proxy that
stands for a database going away (the shared PostgreSQL server is never restarted)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

SERVE = (
    "import sys, typer; from assay.service.cli import serve; "
    "sys.argv[0] = 'assay-serve'; typer.run(serve)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, db: str, workers: int, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / f"serve-{self.port}.log").open("wb")
        full_env = {**os.environ, "ASSAY_DATA_DIR": str(tmp / "data"), **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--port", str(self.port), "--workers", str(workers),
             "--db", db, "--create", "--no-access-log"],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group only
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


@contextlib.contextmanager
def running(db: str, workers: int, tmp: Path, **env: str) -> Iterator[Server]:
    server = Server(db, workers, tmp, **env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; ``stop`` closes the listener and every
    connection (the database looks dead), ``start`` brings it back on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def start(self) -> None:
        self._run(self._start())

    def stop(self) -> None:
        self._run(self._stop())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def store_error_views(cluster: Any, db: str, rounds: int, *, also_hidden: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """During a store outage, ``rounds`` bank creations by a curate key and an admin key:
    each must be 503 ``store-error`` with its request id, and what the curate key is told
    must not say where the store lives (``store_location_markers``, ``also_hidden``).
    Returns what each role was told (message and hint), for the caller's admin checks."""
    from assay.service.errors import CODES

    hidden = [m for m in store_location_markers(db) if m] + list(also_hidden)
    told: dict[str, list[str]] = {"curate": [], "admin": []}
    with cluster.client("curate") as cur, cluster.client("admin") as adm:
        for _ in range(rounds):
            for who, client in (("curate", cur), ("admin", adm)):
                r = client.post("/v1/banks", json={"name": "during-outage"})
                assert r.status_code == 503, r.text
                err = r.json()["error"]
                assert err["code"] == "store-error" and err["code"] in CODES
                assert err["request_id"] == r.headers["x-request-id"]
                text = f"{err['message']} {err['hint']}"
                if who == "curate":
                    assert [m for m in hidden if m in text] == [], text
                told[who].append(text)
    return told


def store_location_markers(db: str) -> list[str]:
    """Strings that would tell a caller where the store lives (the first names it best):
    a SQLite file's path, name and folder; a PostgreSQL host, port and schema."""
    from urllib.parse import unquote, urlsplit

    if db.startswith("sqlite"):
        path = db.split("///", 1)[1]
        return [path, Path(path).name, Path(path).parent.name, "sqlite"]
    u = urlsplit(db)
    schema = unquote(u.query).rsplit("=", 1)[-1]
    return [u.hostname or "", str(u.port), schema, "postgresql", "search_path"]
