"""Client CPU per object for the Dask engine's object reads (issue #15): one object at a
time (``fetch_object``, as before) against a partition's ``Prefetch`` (batches of
concurrent ranged GETs in a background thread), on moto's S3 server on loopback.

    .venv/bin/python bench/bench_s3_fetch.py --objects 300 --rounds 5

CPU is this process's (every thread: the caller, the prefetch thread, fsspec's event loop);
the server is a separate process and not counted. Medians over interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=300)
    ap.add_argument("--size", type=int, default=60_000, help="bytes per object")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        import fsspec

        fsspec.config.conf["s3"] = {"endpoint_url": f"http://127.0.0.1:{port}"}
        from assay.scan.sources import Prefetch, fetch_object, list_url

        fs = fsspec.filesystem("s3")
        fs.mkdir("bench")
        data = os.urandom(a.size)
        fs.pipe({f"bench/o/{i:05d}.bin": data for i in range(a.objects)})
        items = list(list_url("s3://bench/o/"))
        assert len(items) == a.objects and all(it.size == a.size for it in items)
        tmp = Path(tempfile.mkdtemp(prefix="assay-bench-s3-"))

        def one_by_one() -> None:
            for it in items:
                p, _, _ = fetch_object(it.url, 1 << 30, tmp, ".bin", it.size)
                assert p is not None
                p.unlink()

        def prefetched() -> None:
            pre = Prefetch(items, 1 << 30, tmp, lambda _u: ".bin")
            try:
                for i in range(len(items)):
                    p, _, _, _ = pre.take(i)
                    assert p is not None
                    p.unlink()
            finally:
                pre.close()

        rows: dict[str, list[tuple[float, float]]] = {"one by one": [], "prefetch": []}
        one_by_one()  # warm: the client, its connections
        for r in range(a.rounds):
            for name, fn in (("one by one", one_by_one), ("prefetch", prefetched))[:: 1 if r % 2 == 0 else -1]:
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                rows[name].append((1000 * (time.process_time() - c0) / a.objects,
                                   1000 * (time.perf_counter() - t0) / a.objects))
        for name, v in rows.items():
            print(f"{name:10s} CPU {statistics.median(x[0] for x in v):.2f} ms/object, "
                  f"wall {statistics.median(x[1] for x in v):.2f} ms/object "
                  f"(rounds CPU {', '.join(f'{x[0]:.2f}' for x in v)})")
        ratio = [b[0] / p[0] for b, p in zip(rows["one by one"], rows["prefetch"], strict=True)]
        print(f"CPU one by one / prefetch: median {statistics.median(ratio):.2f}x")
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
