"""How each worker's index follows the store: woken by PostgreSQL notices (polling
only as the fallback), recovering its LISTEN connection, and pruning old changes."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

from assay.banks.matcher import Query
from assay.banks.store import Store, changes_table
from assay.service.matching import LiveIndex
from service_helpers import TcpProxy

NEVER = threading.TIMEOUT_MAX  # a poll interval that never runs out: only a notice can wake the follower
DEADLINE = 15.0  # a guard against hanging, not a timing


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _eventually(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def _matched(index: LiveIndex, value: str) -> bool:
    return bool(index.lookup([Query("pdq", value)], 0, False))


@pytest.fixture
def following(tmp_path: Path) -> Iterator[Callable[..., LiveIndex]]:
    """Start LiveIndexes (loaded, threads running); stopped and closed afterwards."""
    started: list[LiveIndex] = []

    def start(url: str, **kw: object) -> LiveIndex:
        index = LiveIndex(Store(url), snapshot_dir=tmp_path / f"snap{len(started)}", **kw)  # type: ignore[arg-type]
        started.append(index)
        index.load()
        index.start()
        return index

    yield start
    for index in started:
        index.stop()
        index.store.close()


@pytest.mark.postgres
def test_a_commit_elsewhere_wakes_the_follower(pg_url: str, following: Callable[..., LiveIndex]) -> None:
    rng = random.Random(1)
    with Store(pg_url) as writer:
        writer.create_bank("b")
        index = following(pg_url, interval=NEVER)
        _eventually("listening", lambda: index.listening)
        for i in range(3):
            v = _hex(rng)
            before = index.notices
            writer.add_entry("b", f"e{i}", {"pdq": v})
            _eventually(f"e{i} matchable", lambda v=v: _matched(index, v))
            assert index.notices > before
        before = index.notices
        writer.remove_entry("b", "e1")
        _eventually("e1 removed", lambda: index.matcher.size() == {"pdq": 2})
        assert index.notices > before
        assert index.polls == 0  # no round was a poll: the notices did it


@pytest.mark.postgres
def test_the_follower_listens_again_after_its_connection_is_killed(
        pg_url: str, following: Callable[..., LiveIndex]) -> None:
    rng = random.Random(2)
    with Store(pg_url) as writer:
        writer.create_bank("b")
        index = following(pg_url, interval=NEVER, listen_retry=0.2)
        _eventually("listening", lambda: index.listening)
        killed = index._listener.backend_pid  # type: ignore[union-attr]
        with writer.engine.begin() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": killed}).scalar()
        _eventually("listening on a new connection",
                    lambda: index._listener is not None and index._listener.backend_pid != killed)
        assert index._thread.is_alive() and index._listener_thread.is_alive()  # type: ignore[union-attr]
        v = _hex(rng)
        assert index.lookup([Query("pdq", v)], 0, False) == []  # lookups never waited on it
        before = index.notices
        writer.add_entry("b", "after", {"pdq": v})
        _eventually("the write after the kill matchable", lambda: _matched(index, v))
        # the catch-up round that follows a reconnect may read the write before its
        # notice is counted (a loaded machine); the notice itself must still arrive
        _eventually("the write heard on the new connection", lambda: index.notices > before)
        assert index.polls == 0


@pytest.mark.postgres
def test_the_follower_polls_while_the_database_is_away_and_listens_when_it_is_back(
        pg_url: str, following: Callable[..., LiveIndex]) -> None:
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    rng = random.Random(3)
    try:
        with Store(pg_url) as writer:
            writer.create_bank("b")
            known = _hex(rng)
            writer.add_entry("b", "known", {"pdq": known})
            index = following(via_proxy, interval=0.2, listen_retry=0.2)
            _eventually("listening", lambda: index.listening)
            assert _matched(index, known)  # its metadata is cached from now on
            proxy.stop()  # the database "restarts": every connection drops
            _eventually("the listener noticed", lambda: not index.listening)
            assert _matched(index, known)  # answered from memory meanwhile
            proxy.start()
            _eventually("listening again", lambda: index.listening)
            index.interval = NEVER
            index.poke()  # ends the wait under way; the follower clears the wake-up as its round starts
            _eventually("a round with the new interval", lambda: not index._wake.is_set())
            polls = index.polls  # every wait from here on is NEVER long
            for i in range(3):
                v = _hex(rng)
                before = index.notices
                writer.add_entry("b", f"after{i}", {"pdq": v})
                _eventually(f"write {i} after the restart matchable", lambda v=v: _matched(index, v))
                assert index.notices > before
            assert index.polls == polls  # followed by notices, not by polling
            assert index.last_error is None
    finally:
        proxy.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_follower_prunes_old_changes(backend: str, tmp_path: Path, request: pytest.FixtureRequest,
                                         following: Callable[..., LiveIndex]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    rng = random.Random(4)
    values = [_hex(rng) for _ in range(3)]
    with Store(url) as writer:
        writer.create_bank("b")
        for i, v in enumerate(values):
            writer.add_entry("b", f"e{i}", {"pdq": v})
        writer.remove_entry("b", "e0")
        writer.remove_entry("b", "e1")
        with writer.engine.begin() as conn:  # e0's removal is old, e1's recent
            conn.execute(changes_table.update().where(changes_table.c.seq == 1)
                         .values(at=sa.select(changes_table.c.at).where(changes_table.c.seq == 1)
                                 .scalar_subquery() - sa.literal(timedelta(days=8))))
        index = following(url, interval=0.05, retention=timedelta(days=7), prune_interval=0.05)
        _eventually("pruned", lambda: writer.changes_watermark() == 1)
        assert writer.max_change_seq() == 2
        assert index.matcher.size() == {"pdq": 1} and _matched(index, values[2])
