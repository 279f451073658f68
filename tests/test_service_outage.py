"""The store cut for real: a 2-worker `assay serve` on PostgreSQL through a TCP proxy that
we stop (the shared server is never stopped). One server for what test_service_hma.py
and test_service_strict.py each checked on a server of their own: HMA's /status says
INDEX-STALE and recovers (issue 13, item 1), and the 503 store-error names where the
store lives to admin keys only (issue 13, item 5). tests/test_service_health.py has
both on SQLite and PostgreSQL with faults injected in the server instead."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import pg_schema
from service_cluster import Cluster, make_keys
from service_helpers import TcpProxy, running, store_error_views

pytestmark = pytest.mark.postgres


def test_store_gone_makes_status_stale_and_shows_its_location_to_admin_keys_only(
        tmp_path: Path) -> None:
    """/status: 503 INDEX-STALE on every worker once the index has not caught up with the
    store for index_stale_seconds (1 here), /status/live 200, I-AM-ALIVE again once the
    store is back. Meanwhile writes get 503 store-error:
    the driver's reason names host, port and database; an admin key (the operator) sees
    it, a curate key gets the documented code alone."""
    with pg_schema() as direct:
        u = urlsplit(direct)
        proxy = TcpProxy(u.hostname or "127.0.0.1", u.port or 5432)
        proxy.start()
        try:
            db = direct.replace(f"{u.hostname}:{u.port}", f"127.0.0.1:{proxy.port}")
            keys = make_keys(db)
            env = {"ASSAY_SERVICE_INDEX_STALE_SECONDS": "1", "ASSAY_SERVICE_REFRESH_INTERVAL": "0.05",
                   "ASSAY_SERVICE_KEY_CACHE_SECONDS": "60"}
            with running(db, 2, tmp_path, **env) as server:
                c = Cluster(server, db, keys, 2)

                def status(want: tuple[int, str]) -> None:
                    def ask(client: httpx.Client) -> tuple[str, bool]:
                        r = client.get("/status")
                        return r.headers["x-served-by"], (r.status_code, r.text) == want
                    c.on_every_worker(ask, timeout=60)

                def warm(client: httpx.Client) -> tuple[str, bool]:
                    # both keys verified (and cached for 60 s) on the worker that answers
                    a = client.get("/v1/banks", headers=c.h("admin"))
                    b = client.get("/v1/banks", headers=c.h("curate"))
                    same = a.headers["x-served-by"] == b.headers["x-served-by"]
                    return a.headers["x-served-by"], same and a.status_code == b.status_code == 200

                status((200, "I-AM-ALIVE"))
                c.on_every_worker(warm)
                proxy.stop()
                status((503, "INDEX-STALE"))
                assert httpx.get(server.url + "/status/live").status_code == 200

                told = store_error_views(c, db, 8, also_hidden=(str(proxy.port),))
                assert told["curate"] and told["admin"]
                for text in told["admin"]:
                    assert str(proxy.port) in text, text  # the operator's view

                proxy.start()
                status((200, "I-AM-ALIVE"))
        finally:
            proxy.close()
