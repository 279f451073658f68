"""One adapter per programme: builds python-threatexchange's SignalExchangeAPI for a
configured exchange (its real client classes; ``base_url`` points them at a test server
or a mirror) and turns each update it fetches into what the bank should hold under that
update's key: signal values of assay's types, or nothing (the programme withdrew it, or
every opinion on it is now negative).

Records fetched are data: every value is validated by assay's signal type before it is
banked; values of types assay does not hold (PhotoDNA, TMK, URLs, text ...) are counted
as skipped, never banked.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from .. import signals as signal_types
from ..errors import AssayError, ExchangeError
from .config import Exchange

MAX_KEY = 400
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Item:
    """What one fetched update means for the bank. ``signals`` None: remove the entry."""

    content_id: str
    signals: list[tuple[str, str]] | None
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why removed: deleted | negative | not-selected


@dataclass
class PageCounts:
    skipped: Counter[str] = field(default_factory=Counter)  # type name -> values not banked
    invalid: int = 0  # values that failed assay's validation


def content_id(exchange: str, key: Any) -> str:
    text = key if isinstance(key, str) else ":".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
    cid = f"{exchange}:{text}"
    if len(cid) > MAX_KEY or _CONTROL.search(cid) or cid != cid.strip():
        cid = f"{exchange}:sha256:{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}"
    return cid


def _valid(pairs: list[tuple[str | None, Any, str]], counts: PageCounts,
           meta: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(assay type or None, value, the programme's type name) -> validated (type, value).
    A vPDQ value is a whole video's hash (python-threatexchange's signal string): its
    kept frame hashes become ``vpdq`` values and ``meta["vpdq"]`` holds the hash, as
    `bank add --video` banks it."""
    out: list[tuple[str, str]] = []
    for target, value, theirs in pairs:
        if target is None:
            counts.skipped[theirs] += 1
            continue
        try:
            if target == "vpdq" and isinstance(value, str) and (value.lstrip().startswith("[") or "," in value):
                from ..banks.videos import bank_record
                from ..media.video import parse_signal

                rec = bank_record(parse_signal(value, "vpdq value"), "-")
                out.extend(rec.signals)
                if meta is not None and rec.meta:
                    meta.update(rec.meta)
                continue
            out.append((target, signal_types.get(target).normalize(str(value))))
        except AssayError:
            counts.invalid += 1
    return sorted(set(out))


def checked(item: Item, counts: PageCounts) -> Item:
    """The item, or (counted as invalid) one that banks nothing if the store would refuse
    it: a record the store rejects must not fail the page it came in."""
    if not item.signals:
        return item
    from ..banks.store import ImportRecord, check_record

    try:
        check_record(ImportRecord(item.content_id, tuple(item.signals), None, item.meta or None))
    except AssayError:
        counts.invalid += 1
        return Item(item.content_id, [], reason="invalid")
    return item


def _opinion_meta(record: Any) -> tuple[str, list[str]]:
    agg = record.get_as_aggregate_opinion()
    return agg.category.name, sorted(str(t) for t in agg.tags)


def _is_negative(category: str) -> bool:
    return category == "NEGATIVE_CLASS"


class Adapter:
    kind: str = ""
    #: The API hands the whole state in each fetch (the file exchange): entries of the
    #: exchange absent from it are removed.
    snapshot: bool = False
    shares: bool = False  # feedback to the programme is supported

    def build(self, ex: Exchange, credentials: str | None) -> Any:
        raise NotImplementedError

    def convert(self, ex: Exchange, key: Any, value: Any, counts: PageCounts) -> Item:
        raise NotImplementedError

    def checkpoint_cls(self) -> type:
        raise NotImplementedError


# --------------------------------------------------------------------------------- NCMEC
# (entry type, NCMEC fingerprint name) -> assay signal type
NCMEC_TYPES: Final = {
    ("image", "PDQ"): "pdq", ("image", "MD5"): "md5", ("image", "SHA1"): "sha1",
    ("video", "MD5"): "video_md5",
}


class NCMECAdapter(Adapter):
    kind = "ncmec"
    shares = True

    def checkpoint_cls(self) -> type:
        from threatexchange.exchanges.impl.ncmec_api import NCMECCheckpoint

        return NCMECCheckpoint

    def build(self, ex: Exchange, credentials: str | None) -> Any:
        from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment
        from threatexchange.exchanges.impl.ncmec_api import (
            NCMECCollabConfig,
            NCMECCredentials,
            NCMECSignalExchangeAPI,
        )

        creds = NCMECCredentials._from_str(credentials or "")
        if not creds._are_valid():
            raise ExchangeError(f"exchange {ex.name!r}: NCMEC credentials must be 'user:password'")
        s = ex.settings
        collab = NCMECCollabConfig(name=ex.name, environment=NCMECEnvironment[s.get("environment", "Industry")],
                                   only_esp_ids=set(s.get("only_esp_ids", ())))
        base = s.get("base_url")

        class _API(NCMECSignalExchangeAPI):
            def get_client(self, environment: Any) -> Any:
                client = super().get_client(environment)
                if base:
                    client._base_url = base  # the library's clients keep their endpoint here
                return client

        return _API(collab, creds.user, creds.password)

    def convert(self, ex: Exchange, key: Any, value: Any, counts: PageCounts) -> Item:
        cid = content_id(ex.name, key)
        if value is None or value.deleted:
            return Item(cid, None, reason="deleted")
        only = ex.settings.get("only_esp_ids")
        if only and int(value.member_id) not in only:
            return Item(cid, None, reason="not-selected")
        etype = value.entry_type.value
        pairs = [(NCMEC_TYPES.get((etype, str(k).upper())), v, f"{etype}/{k}")
                 for k, v in (value.fingerprints or {}).items()]
        meta = {"exchange": ex.name, "key": str(key), "member_id": int(value.member_id),
                "entry_id": str(value.id), "entry_type": etype}
        if value.classification:
            meta["classification"] = str(value.classification)[:200]
        return Item(cid, _valid(pairs, counts), meta)


# ------------------------------------------------------------------------ ThreatExchange
TE_TYPES: Final = {"HASH_PDQ": "pdq", "HASH_MD5": "md5", "HASH_VIDEO_MD5": "video_md5",
                   "HASH_SHA256": "sha256", "HASH_SHA1": "sha1"}


class ThreatExchangeAdapter(Adapter):
    kind = "threatexchange"
    shares = True

    def checkpoint_cls(self) -> type:
        from threatexchange.exchanges.impl.fb_threatexchange_api import FBThreatExchangeCheckpoint

        return FBThreatExchangeCheckpoint

    def build(self, ex: Exchange, credentials: str | None) -> Any:
        from threatexchange.exchanges.clients.fb_threatexchange.api import ThreatExchangeAPI
        from threatexchange.exchanges.impl.fb_threatexchange_api import (
            FBThreatExchangeCollabConfig,
            FBThreatExchangeCredentials,
            FBThreatExchangeSignalExchangeAPI,
        )

        creds = FBThreatExchangeCredentials._from_str(credentials or "")
        if creds is None or not creds._are_valid():
            raise ExchangeError(f"exchange {ex.name!r}: the ThreatExchange token must look like APPID|SECRET")
        collab = FBThreatExchangeCollabConfig(name=ex.name, privacy_group=int(ex.settings["privacy_group"]))
        client = ThreatExchangeAPI(creds.api_token, endpoint_override=ex.settings.get("base_url"))

        class _API(FBThreatExchangeSignalExchangeAPI):
            def fetch_iter(self, types: Any, checkpoint: Any) -> Any:
                # The library asserts on an empty page ("empty update?"), which is how
                # /threat_updates answers when nothing changed: that is the end, not an error.
                it = super().fetch_iter(types, checkpoint)
                while True:
                    try:
                        delta = next(it)
                    except StopIteration:
                        return
                    except AssertionError as exc:
                        if str(exc) == "empty update?":
                            return
                        raise
                    yield delta

        return _API(client, collab)

    def convert(self, ex: Exchange, key: Any, value: Any, counts: PageCounts) -> Item:
        cid = content_id(ex.name, key)
        if value is None:
            return Item(cid, None, reason="deleted")
        category, tags = _opinion_meta(value)
        if _is_negative(category):
            return Item(cid, None, reason="negative")
        threat_type, indicator = key
        target = TE_TYPES.get(str(threat_type))
        if target == "md5" and "media_type_video" in tags:
            target = "video_md5"
        opinions = [{"owner": int(o.owner_app_id), "descriptor": o.descriptor_id, "category": o.category.name}
                    for o in value.get_as_opinions()][:20]
        meta = {"exchange": ex.name, "key": cid.split(":", 1)[1][:200], "opinion": category, "tags": tags[:50],
                "opinions": opinions}
        return Item(cid, _valid([(target, indicator, str(threat_type))], counts), meta)


# ------------------------------------------------- simple (type, value) keys: file, StopNCII, TAT
SIMPLE_TYPES: Final = {"pdq": "pdq", "video_md5": "video_md5", "md5": "md5", "vpdq": "vpdq", "sha256": "sha256",
                       "sha1": "sha1"}


class SimpleAdapter(Adapter):
    def convert(self, ex: Exchange, key: Any, value: Any, counts: PageCounts) -> Item:
        cid = content_id(ex.name, key)
        if value is None:
            return Item(cid, None, reason="deleted")
        category, tags = _opinion_meta(value)
        if _is_negative(category):
            return Item(cid, None, reason="negative")
        type_name, signal = key
        meta: dict[str, Any] = {"exchange": ex.name, "opinion": category}
        if tags:
            meta["tags"] = tags[:50]
        return Item(cid, _valid([(SIMPLE_TYPES.get(str(type_name)), signal, str(type_name))], counts, meta), meta)


class FileAdapter(SimpleAdapter):
    kind = "file"
    snapshot = True

    def checkpoint_cls(self) -> type:
        from threatexchange.exchanges.fetch_state import FetchCheckpointBase

        return FetchCheckpointBase

    def build(self, ex: Exchange, credentials: str | None) -> Any:
        from pathlib import Path

        from threatexchange.exchanges.impl.file_api import (
            FileCollaborationConfig,
            LocalFileSignalExchangeAPI,
        )

        path = Path(ex.settings["path"])
        if not path.is_file():
            raise ExchangeError(f"exchange {ex.name!r}: {path} is not a file")
        collab = FileCollaborationConfig(name=ex.name, filename=str(path), signal_type=ex.settings.get("signal_type"))
        return LocalFileSignalExchangeAPI(collab)


class StopNCIIAdapter(SimpleAdapter):
    kind = "stopncii"

    def checkpoint_cls(self) -> type:
        from threatexchange.exchanges.impl.stop_ncii_api import StopNCIICheckpoint

        return StopNCIICheckpoint

    def build(self, ex: Exchange, credentials: str | None) -> Any:
        from threatexchange.exchanges.clients.stopncii.api import StopNCIIAPI
        from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
        from threatexchange.exchanges.impl.stop_ncii_api import (
            StopNCIICredentials,
            StopNCIISignalExchangeAPI,
        )

        try:
            creds = StopNCIICredentials._from_str(credentials or "")
        except Exception:
            creds = None
        if creds is None or not creds._are_valid():
            raise ExchangeError(f"exchange {ex.name!r}: StopNCII keys must be 'function_key,subscription_key'")
        client = StopNCIIAPI(creds.subscription_key, creds.fetch_function_key,
                             base_url_override=ex.settings.get("base_url") or creds.base_url_override)
        return StopNCIISignalExchangeAPI(CollaborationConfigWithDefaults(name=ex.name), client)


class TATAdapter(SimpleAdapter):
    kind = "tat"

    def checkpoint_cls(self) -> type:
        from threatexchange.exchanges.impl.techagainstterrorism_api import TATCheckpoint

        return TATCheckpoint

    def build(self, ex: Exchange, credentials: str | None) -> Any:
        from threatexchange.exchanges.clients.techagainstterrorism.api import TATHashListAPI
        from threatexchange.exchanges.impl.techagainstterrorism_api import (
            TATCredentials,
            TATSignalExchangeAPI,
        )

        creds = TATCredentials._from_str(credentials or "")
        if not creds._are_valid():
            raise ExchangeError(f"exchange {ex.name!r}: TAT credentials must be 'user:password'")
        base = ex.settings.get("base_url")

        class _Client(TATHashListAPI):
            BASE_URL = base + "/" if base else TATHashListAPI.BASE_URL

        class _API(TATSignalExchangeAPI):
            def get_client(self) -> Any:
                return _Client(username=self.username, password=self.password)

        return _API(creds.username, creds.password)


ADAPTERS: Final[dict[str, Adapter]] = {a.kind: a for a in (
    NCMECAdapter(), ThreatExchangeAdapter(), StopNCIIAdapter(), TATAdapter(), FileAdapter())}


def adapter(kind: str) -> Adapter:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise ExchangeError(f"unknown exchange type {kind!r}") from None


def supported_signal_types() -> list[type]:
    """The python-threatexchange signal types assay banks (what fetch_iter is told)."""
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    return [PdqSignal, VideoMD5Signal]
