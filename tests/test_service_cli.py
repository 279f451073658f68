"""`assay keys ...` through Typer's CliRunner, and the Alembic migrations."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from assay.banks import migrations
from assay.banks.store import Store
from assay.service.auth import KeyVerifier, hash_key
from assay.service.cli import keys_app
from assay.service.settings import Settings

runner = CliRunner()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    r = runner.invoke(keys_app, ["create", "--role", "curate", "--name", "analyst one", "--db", db, "--create"])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("assay_") and len(key) == 49
    engine = sa.create_engine("sqlite:///" + db)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT key_hash, prefix FROM api_keys")).one()
    assert stored[0] == hash_key(key) and key not in stored  # only the hash is kept
    assert KeyVerifier(engine, 0, None).principal(key).role == "curate"

    r = runner.invoke(keys_app, ["list", "--db", db])
    assert r.exit_code == 0 and "analyst one" in r.stdout and "active" in r.stdout and key not in r.stdout
    header = next(line for line in r.stdout.splitlines() if "role" in line)
    assert [w for w in header.replace("┃", " ").replace("│", " ").split()] == [
        "id", "role", "name", "prefix", "created", "state"]
    r = runner.invoke(keys_app, ["list", "--db", db, "--json"])
    (listed,) = json.loads(r.stdout)
    assert listed["name"] == "analyst one" and listed["role"] == "curate" and listed["revoked_at"] is None
    assert key not in r.stdout and key.startswith(listed["prefix"])
    key_id = str(listed["id"])
    r = runner.invoke(keys_app, ["revoke", key_id, "--db", db])
    assert r.exit_code == 0, r.output
    assert "revoked" in runner.invoke(keys_app, ["list", "--db", db]).stdout
    r = runner.invoke(keys_app, ["revoke", "999", "--db", db])
    assert r.exit_code == 1 and "no API key with id 999" in r.output


def test_keys_create_rejects_bad_role(tmp_path: Path) -> None:
    r = runner.invoke(keys_app, ["create", "--role", "root", "--name", "x", "--db", str(tmp_path / "s.db")])
    assert r.exit_code == 2 and "root" in r.output and "match" in r.output and "curate" in r.output
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened


def test_keys_list_on_a_missing_store_is_refused(tmp_path: Path) -> None:
    r = runner.invoke(keys_app, ["list", "--db", str(tmp_path / "typo.db")])
    assert r.exit_code == 2 and "no assay store" in r.output and "typo.db" in r.output
    assert not (tmp_path / "typo.db").exists()


def test_keys_create_and_serve_refuse_a_missing_store(tmp_path: Path) -> None:
    """Like every other command: a store named on purpose that does not exist is a typo
    until --create says otherwise (issue #12 item 5)."""
    from assay.cli import app

    typo = tmp_path / "typo.db"
    for args in (["keys", "create", "--role", "match", "--name", "x"], ["serve", "--port", "1"]):
        r = runner.invoke(app, ["--db", str(typo), *args])
        assert r.exit_code == 2, (args, r.output)
        assert "no assay store" in r.output and "typo.db" in r.output and "--create" in r.output
        assert not typo.exists()
    r = runner.invoke(app, ["--db", str(typo), "--create", "keys", "create", "--role", "match", "--name", "x"])
    assert r.exit_code == 0, r.output
    assert typo.is_file()


def test_migrations_adopt_an_existing_store_and_are_idempotent(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "old.db"))
    store.create_bank("kept")
    store.add_entry("kept", "e", {"md5": "1" * 32})
    migrations.upgrade(store.engine)
    migrations.upgrade(store.engine)
    assert migrations.current(store.engine) == migrations.head()
    assert [b.name for b in store.list_banks()] == ["kept"]
    assert store.get_entry("kept", "e") is not None
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"api_keys", "audit_log", "jobs", "banks", "entries", "signals", "changes", "meta"} <= names
    store.close()


def test_migrations_create_a_store_from_nothing(tmp_path: Path) -> None:
    engine = sa.create_engine("sqlite:///" + str(tmp_path / "new.db"))
    migrations.upgrade(engine)
    store = Store(str(tmp_path / "new.db"))  # the store accepts the migrated schema as its own
    store.create_bank("b")
    store.add_entry("b", "e", {"pdq": "0" * 64})
    assert store.stats("b").entries == 1
    store.close()


def test_settings_round_trip_through_the_environment() -> None:
    s = Settings(db="x.db", anonymous_role="match", workers=3, rate_limit=12.5, access_log=False)
    assert Settings.from_env(s.to_env()) == s
    assert Settings.from_env(Settings().to_env()) == Settings()


def test_serve_says_where_it_listens(tmp_path: Path) -> None:
    from service_helpers import running

    with running(str(tmp_path / "s.db"), 1, tmp_path) as server:
        assert f"listening on {server.url} (1 worker;" in server.output()
