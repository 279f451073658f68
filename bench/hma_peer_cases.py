"""HMA (OpenMediaMatch) and python-threatexchange test cases, run against assay.

Each case is one of the peers' own test cases (facebook/ThreatExchange:
hasher-matcher-actioner/src/OpenMediaMatch/tests/test_api*.py, test_match_api.py, the
blueprints; python-threatexchange's signal types and its NCMEC sample pages), with the
answer the peer gives and the one assay gives, printed SAME or DIFF. A DIFF is either
fixed, or a documented choice of assay (docs/service.md, "Compatibility with
Hasher-Matcher-Actioner"); the run says which it expects.

    PYTHONPATH=src:tests python bench/hma_peer_cases.py service    # a real 1-worker `assay serve` on SQLite
    PYTHONPATH=src python bench/hma_peer_cases.py signals          # PDQ/MD5/SHA-256 validation and PDQ distance
    PYTHONPATH=src python bench/hma_peer_cases.py ncmec DATA_PY    # python-threatexchange's
        # exchanges/clients/ncmec/tests/data.py (a local copy; nothing is fetched)

Generated benign data only; the server listens on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EX = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"  # PdqSignal.get_examples()[0]
S1 = "facd8bcb2a49bcebdec1985298d5fe84bcd006c187c598c720c3c087b3fdb318"  # test_compare_hashes
S2 = "facd8bcb2a49bcebdec1985228d5ae84bcd006c187c598c720c2b087b3fdb318"
# Differences assay keeps on purpose (docs/service.md): their case names start with these.
DOCUMENTED = ("lookup upper-case", "lookup missing", "lookup no params", "bypass_coinflip", "compare bad [",
              'compare bad {"pdq": "', 'compare bad {"pdq": []', "compare bad 3", "create bank 01_", "create bank my_",
              "create existing", "rename bank", "enabled_ratio 0.5", "content without metadata", "note 256",
              "add no signals", "POST lookup flat", "GET /h/hash?url", "delete missing exchange", "exchanges/apis",
              "compare md5 equal", "lenient: ")


class Cases:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool]] = []

    def __call__(self, name: str, peer: Any, got: Any, same: bool) -> None:
        self.rows.append((name, same))
        tag = "SAME" if same else ("DIFF (documented)" if name.startswith(DOCUMENTED) else "DIFF")
        print(f"{tag:18} {name} | peer: {peer} | assay: {got}", flush=True)

    def summary(self) -> int:
        diff = [n for n, same in self.rows if not same]
        unexpected = [n for n in diff if not n.startswith(DOCUMENTED)]
        print(f"{len(self.rows)} cases: {len(self.rows) - len(diff)} same, {len(diff)} different "
              f"({len(unexpected)} not documented)")
        return 1 if unexpected else 0


def _flip(value: str, bits: int, seed: int = 0) -> str:
    n = int(value, 16)
    for b in random.Random(seed).sample(range(256), bits):
        n ^= 1 << b
    return f"{n:064x}"


def _png(im: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def service() -> int:
    import httpx
    from PIL import Image

    from service_cluster import cluster  # tests/

    case = Cases()
    with tempfile.TemporaryDirectory() as d, cluster("sqlite", Path(d), workers=1) as c:
        cur = httpx.Client(base_url=c.url, headers=c.h("curate"), timeout=60)
        m = httpx.Client(base_url=c.url, headers=c.h("match"), timeout=60)

        def look(st: str, sig: str, **kw: str) -> httpx.Response:
            return m.get("/m/lookup", params={"signal_type": st, "signal": sig, **kw})

        def wait(sig: str, bank: str, present: bool = True, st: str = "pdq") -> None:
            for _ in range(200):
                r = look(st, sig)
                if r.status_code == 200 and (bank in r.json()) == present:
                    return
                time.sleep(0.05)

        # test_e2e_workflow.py: PdqSignal's 16 examples banked one by one, the last looked up
        from threatexchange.signal_type.pdq.signal import PdqSignal

        examples = PdqSignal.get_examples()
        assert cur.post("/c/banks", json={"name": "TEST_BANK"}).status_code == 201
        ids = [cur.post("/c/bank/TEST_BANK/signal", json={"pdq": h}).json()["id"] for h in examples]
        wait(examples[-1], "TEST_BANK")
        r = m.get("/m/index/status", params={"signal_type": "pdq"})
        st = r.json()["pdq"]
        case("e2e index status after 16 examples", {"present": True, "size": 16}, st,
             st["present"] is True and st["size"] == len(examples))
        r = look("pdq", examples[-1])
        want_e2e = {"TEST_BANK": [{"bank_content_id": ids[-1], "distance": "0"}]}
        got_e2e = {b: [{k: h[k] for k in ("bank_content_id", "distance")} for h in hits] for b, hits in r.json().items()}
        case("e2e lookup of the last example", want_e2e, got_e2e, got_e2e == want_e2e)
        r = look("pdq", "5" * 64)
        case("e2e lookup of 5*64", {}, r.json(), r.json() == {})
        cur.delete("/c/bank/TEST_BANK")  # the cases below count banks
        wait(examples[0], "TEST_BANK", False)

        # test_match_api.py: three banks holding the same example, banks= filter
        for b in ("BANK_A", "BANK_B", "BANK_C"):
            assert cur.post("/c/banks", json={"name": b}).status_code == 201
            assert cur.post(f"/c/bank/{b}/signal", json={"pdq": EX}).status_code == 200
        wait(EX, "BANK_C")
        r = look("pdq", EX)
        case("lookup no filter: 3 banks", 3, sorted(r.json()), len(r.json()) == 3)
        for banks, want in (("BANK_A", ["BANK_A"]), ("BANK_A,BANK_C", ["BANK_A", "BANK_C"]), ("NON_EXISTENT_BANK", [])):
            r = look("pdq", EX, banks=banks)
            case(f"lookup banks={banks}", want, sorted(r.json()), sorted(r.json()) == want)
        r = m.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": EX})
        case("raw_lookup", "200 {matches: [3 ids]}", (r.status_code, r.text[:80]),
             r.status_code == 200 and len(r.json()["matches"]) == 3)
        r = m.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": EX, "include_distance": "true",
                                           "banks": "BANK_A,BANK_B"})
        case("raw_lookup include_distance banks=A,B", "200, 2 {bank_content_id, distance}", (r.status_code, r.text[:120]),
             r.status_code == 200 and len(r.json()["matches"]) == 2)
        for name, params, want in (
            ("lookup unknown signal type", {"signal_type": "banana", "signal": EX}, 400),
            ("lookup invalid pdq", {"signal_type": "pdq", "signal": "banana"}, 400),
            ("lookup upper-case pdq (PdqSignal: ^[0-9a-f]{64}$)", {"signal_type": "pdq", "signal": EX.upper()}, 400),
            ("lookup missing signal", {"signal_type": "pdq"}, 400),
            ("lookup no params", {}, 400),
            ("lookup md5 upper-case and space (Md5Signal strips, lowers)",
             {"signal_type": "md5", "signal": "D41D8CD98F00B204E9800998ECF8427E "}, 200),
        ):
            r = m.get("/m/lookup", params=params)
            case(name, want, (r.status_code, r.text[:100]), r.status_code == want)
        for n, want in ((31, True), (32, False)):  # PDQ_CONFIDENT_MATCH_THRESHOLD, inclusive
            r = look("pdq", _flip(EX, n, n), banks="BANK_A")
            case(f"pdq at distance {n} matches: {want}", want, "BANK_A" in r.json(), ("BANK_A" in r.json()) == want)
        r = cur.put("/c/bank/BANK_B", json={"enabled_ratio": 0.0})
        case("PUT enabled_ratio 0", 200, r.status_code, r.status_code == 200)
        wait(EX, "BANK_B", False)
        r = look("pdq", EX)
        case("disabled bank not matched", "no BANK_B", sorted(r.json()), "BANK_B" not in r.json())
        r = look("pdq", EX, bypass_coinflip="true")
        case("bypass_coinflip=true matches a disabled bank (HMA: ratio 0 >= coinflip 0)", "BANK_B listed",
             sorted(r.json()), "BANK_B" in r.json())

        # test_api.py: compare
        r = m.post("/m/compare", json={"pdq": [S1, S2]})
        case("compare specimen", {"pdq": [True, {"distance": 9}]}, r.json(), r.json() == {"pdq": [True, {"distance": 9}]})
        for label, bad in (("[", ["banana"]), ('{"pdq": "', {"pdq": "banana"}), ('{"pdq": []', {"pdq": []}),
                           ("two invalid", {"pdq": ["banana", "banana"]}), ("3", {"pdq": [S1, S2, S1]}),
                           ("unknown type", {"banana": [S1, S2]})):
            r = m.post("/m/compare", json=bad)
            case(f"compare bad {label} {json.dumps(bad)[:30]}", 400, (r.status_code, r.text[:90]), r.status_code == 400)
        md5 = hashlib.md5(b"x").hexdigest()
        r = m.post("/m/compare", json={"md5": [md5, md5]})
        case("compare md5 equal", {"md5": [True, {}]}, r.json(), r.json() == {"md5": [True, {}]})
        r = m.post("/m/compare", json={"pdq": [S1, _flip(S1, 32)]})
        case("compare pdq 32", [False, {"distance": 32}], r.json(), r.json() == {"pdq": [False, {"distance": 32}]})
        r = m.get("/m/index/status", params={"signal_type": "banana"})
        case("index/status unknown type", 400, r.status_code, r.status_code == 400)

        # test_api_banks.py
        for name in ("01_TEST_BANK", "my_test_bank"):
            r = cur.post("/c/banks", json={"name": name})
            case(f"create bank {name}", 400, r.status_code, r.status_code == 400)
        want = (201, {"matching_enabled_ratio": 1.0, "name": "MY_TEST_BANK_01"})
        r = cur.post("/c/banks", json={"name": "MY_TEST_BANK_01"})
        case("create bank MY_TEST_BANK_01", want, (r.status_code, r.json()), (r.status_code, r.json()) == want)
        r = cur.post("/c/banks", json={"name": "MY_TEST_BANK_01"})
        case("create existing bank", 403, r.status_code, r.status_code == 403)
        r = cur.put("/c/bank/MY_TEST_BANK_01", json={"name": "MY_TEST_BANK_RENAMED"})
        case("rename bank", 200, r.status_code, r.status_code == 200)
        r = cur.put("/c/bank/MY_TEST_BANK_01", json={"enabled_ratio": 0.5})
        case("enabled_ratio 0.5", 200, r.status_code, r.status_code == 200)
        for i in (1, 2):
            r = cur.delete("/c/bank/MY_TEST_BANK_01")
            case(f"delete bank, time {i}", 200, r.status_code, r.status_code == 200)
        cur.post("/c/banks", json={"name": "TEST_BANK_HASH_NOTE"})
        r = cur.post("/c/bank/TEST_BANK_HASH_NOTE/signal", json={"pdq": "0" * 64, "note": "Hash from campaign ABC"})
        case("add pdq 0*64 with a note", 200, r.status_code, r.status_code == 200)
        cid = r.json()["id"]
        g = cur.get(f"/c/bank/TEST_BANK_HASH_NOTE/content/{cid}").json()
        case("content note", "Hash from campaign ABC", g.get("note"), g.get("note") == "Hash from campaign ABC")
        case("content without metadata omits metadata", "no metadata key", sorted(g), "metadata" not in g)
        case("content without include_signals omits signals", "no signals key", sorted(g), "signals" not in g)
        r = cur.put(f"/c/bank/TEST_BANK_HASH_NOTE/content/{cid}", json={"note": "Updated note"})
        case("PUT content note", 200, (r.status_code, r.json().get("note")), r.status_code == 200)
        r = cur.put(f"/c/bank/TEST_BANK_HASH_NOTE/content/{cid}", json={"disable_until_ts": 9999999999})
        case("PUT disable_until_ts far in the future", 400, r.status_code, r.status_code in (400, 422))
        r = cur.post("/c/bank/TEST_BANK_HASH_NOTE/signal", json={"pdq": "1" * 64, "note": "x" * 256})
        case("note 256 characters", 400, r.status_code, r.status_code == 400)
        for name, path, body, want in (
            ("missing content", "/c/bank/TEST_BANK_HASH_NOTE/content/999999", None, 404),
            ("content of a missing bank", f"/c/bank/NO_SUCH_BANK/content/{cid}", None, 404),
            ("add no signals", "/c/bank/TEST_BANK_HASH_NOTE/signal", {}, 400),
            ("add unknown type", "/c/bank/TEST_BANK_HASH_NOTE/signal", {"banana": "x"}, 400),
            ("add invalid pdq", "/c/bank/TEST_BANK_HASH_NOTE/signal", {"pdq": "zz"}, 400),
            ("add to a missing bank", "/c/bank/NO_SUCH_BANK/signal", {"pdq": "2" * 64}, 404),
        ):
            r = cur.get(path) if body is None else cur.post(path, json=body)
            case(name, want, r.status_code, r.status_code == want)
        r = cur.delete("/c/bank/TEST_BANK_HASH_NOTE/content/999999")
        case("delete missing content", {"deleted": 0}, r.json(), r.json() == {"deleted": 0})
        # the same hash added twice: HMA makes two contents, and so does assay (VALUE, VALUE#2)
        dup = _flip(EX, 100, 7)
        one = cur.post("/c/bank/TEST_BANK_HASH_NOTE/signal", json={"pdq": dup, "note": "report 1"}).json()["id"]
        two = cur.post("/c/bank/TEST_BANK_HASH_NOTE/signal", json={"pdq": dup, "note": "report 2"}).json()["id"]
        case("same hash added twice: two contents", "two ids", (one, two), one != two)
        cur.delete(f"/c/bank/TEST_BANK_HASH_NOTE/content/{two}")
        wait(dup, "TEST_BANK_HASH_NOTE", False)
        r = look("pdq", dup)
        case("same hash added twice, the second deleted: the first still matches", "TEST_BANK_HASH_NOTE listed",
             sorted(r.json()), "TEST_BANK_HASH_NOTE" in r.json())

        # a flat picture: python-threatexchange gives no PDQ below quality 50
        flat = _png(Image.new("RGB", (128, 128), (120, 120, 120)))
        r = m.post("/h/hash", files={"photo": ("flat.png", flat, "image/png")})
        case("h/hash flat photo", {"pdq": ""}, r.json(), r.json() == {"pdq": ""})
        r = look("pdq", r.json().get("pdq", "?"))
        case("GET lookup of that '' (a client passing it on)", 400, r.status_code, r.status_code == 400)
        cur.post("/c/banks", json={"name": "FLAT"})
        r = cur.post("/c/bank/FLAT/content", files={"photo": ("flat.png", flat, "image/png")})
        case("bank a flat photo", 400, r.status_code, r.status_code == 400)
        r = m.post("/m/lookup", files={"photo": ("flat.png", flat, "image/png")})
        case("POST lookup flat photo", "400 (its '' is an invalid signal)", (r.status_code, r.text[:40]),
             r.status_code == 400)
        r = m.get("/h/hash", params={"url": "http://127.0.0.1:9/x.jpg"})
        case("GET /h/hash?url", "200 (fetches the URL)", r.status_code, r.status_code == 200)

        # types kept apart, videos, deletions
        md5 = hashlib.md5(b"hma-peer-cases").hexdigest()
        cur.post("/c/banks", json={"name": "X"})
        cur.post("/c/bank/X/signal", json={"md5": md5})
        p = f"{random.Random(5).getrandbits(256):064x}"
        sig = json.dumps([f"{p},100,{i}.000" for i in range(5)])
        cur.post("/c/banks", json={"name": "V"})
        cur.post("/c/bank/V/signal", json={"vpdq": sig})
        wait(sig, "V", st="vpdq")
        r = look("video_md5", md5)
        case("md5 banked, looked up as video_md5", {}, r.json(), r.json() == {})
        r = look("pdq", p)
        case("pdq lookup of a banked video's frame hash", {}, r.json(), r.json() == {})
        r = look("vpdq", sig)
        want_v = "100%[100%]"
        got_v = [h["distance"] for h in r.json().get("V", [])]
        case("vpdq lookup of the banked signal", want_v, got_v, got_v == [want_v])
        r = m.post("/m/compare", json={"vpdq": [sig, sig]})
        case("compare vpdq", [True, {"query_match_percent": 100.0, "compared_match_percent": 100.0}], r.json(),
             r.json() == {"vpdq": [True, {"query_match_percent": 100.0, "compared_match_percent": 100.0}]})
        cid = look("md5", md5).json()["X"][0]["bank_content_id"]
        r = cur.delete(f"/c/bank/X/content/{cid}")
        case("delete content", {"deleted": 1}, r.json(), r.json() == {"deleted": 1})
        wait(md5, "X", False, "md5")
        r = look("md5", md5)
        case("lookup after the content was deleted", {}, r.json(), r.json() == {})

        # exchanges (test_api.py)
        r = cur.get("/c/exchange/NONEXISTENT_EXCHANGE/status")
        case("exchange status, missing", 404, r.status_code, r.status_code == 404)
        r = cur.delete("/c/exchange/TEST_EXCHANGE")
        case("delete missing exchange", 200, r.status_code, r.status_code == 200)
        r = cur.get("/c/exchanges/apis")
        case("exchanges/apis", 200, r.status_code, r.status_code == 200)
        r = cur.get("/c/exchanges")
        case("exchanges list", (200, []), (r.status_code, r.json()), (r.status_code, r.json()) == (200, []))
    return case.summary()


def signals() -> int:
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from assay import signals as S

    case = Cases()
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    values = {
        ("pdq", PdqSignal): [EX, EX.upper(), " " + EX, "0x" + EX, EX[:-1], EX + "0", "g" * 64, "", "0" * 64,
                             EX[:32] + " " + EX[33:]],
        ("video_md5", VideoMD5Signal): [md5, md5.upper(), " " + md5 + " ", "0x" + md5, md5[:-1], "z" * 32, ""],
    }
    for (name, cls), vals in values.items():
        for v in vals:
            try:
                theirs: str = cls.validate_signal_str(v)
            except Exception:  # noqa: BLE001 - the peer raises what it raises
                theirs = "invalid"
            try:
                ours = S.normalize(name, v)[1]
            except Exception:  # noqa: BLE001
                ours = "invalid"
            # assay reads upper case, spaces and 0x as the same hash (never as another one)
            lenient = theirs == "invalid" and ours == v.strip().lower().removeprefix("0x")
            case(f"{'lenient: ' if lenient else ''}{name} {v!r:.24}", theirs[:16], ours[:16], theirs == ours)
    rng = random.Random(3)
    for dist in (0, 1, 30, 31, 32, 33, 128, 256):
        x = int(EX, 16)
        for b in rng.sample(range(256), dist):
            x ^= 1 << b
        r = PdqSignal.compare_hash(EX, f"{x:064x}")
        ours = dist <= S.PDQ.default_threshold
        case(f"pdq compare at distance {dist}", r.match, ours, r.match == ours and r.distance.distance == dist)
    return case.summary()


def ncmec(data_py: str) -> int:
    """python-threatexchange's NCMEC sample pages through its own parser, then mapped by
    its naive merge and convert (what HMA banks) and by assay's NCMECAdapter."""
    import importlib.util
    import xml.etree.ElementTree as ET
    from datetime import UTC, datetime

    from threatexchange.exchanges.clients.ncmec import hash_api as api
    from threatexchange.exchanges.impl.ncmec_api import NCMECCollabConfig, NCMECSignalExchangeAPI
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from assay.exchanges.adapters import NCMECAdapter, PageCounts
    from assay.exchanges.config import Exchange

    spec = importlib.util.spec_from_file_location("ncmec_data", data_py)
    assert spec is not None and spec.loader is not None
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)  # the peer's test data module (XML strings)

    def parse(text: str) -> Any:
        it = ET.iterparse(io.BytesIO(text.strip().encode()))
        for _, el in it:  # as NCMECHashAPI._get: namespaces stripped
            el.tag = el.tag.partition("}")[2] or el.tag
        return api.GetEntriesResponse.from_xml(api._XMLWrapper(it.root), 0)  # type: ignore[attr-defined]

    case = Cases()
    pages = [data.ENTRIES_XML, data.ENTRIES_XML2, data.ENTRIES_XML3, data.ENTRIES_XML4]
    for label, chosen, only in (("4 pages", pages, ()), ("4 pages, only_esp_ids 101", pages, (101,)),
                                ("large fingerprints", [data.ENTRIES_LARGE_FINGERPRINTS], ()),
                                ("no data", [data.ENTRIES_NO_DATA_XML], ())):
        total: dict[str, Any] = {}
        for p in chosen:
            NCMECSignalExchangeAPI.naive_fetch_merge(total, {f"{u.member_id}-{u.id}": u for u in parse(p).updates})
        collab = NCMECCollabConfig(api.NCMECEnvironment.Industry, "Test")
        collab.only_esp_ids = set(only)
        lib = NCMECSignalExchangeAPI.naive_convert_to_signal_type([PdqSignal, VideoMD5Signal], collab, total)
        theirs = {(st.get_name(), v) for st, d in lib.items() for v in d}
        ex = Exchange("n", "ncmec", "b", 1, {"only_esp_ids": list(only)} if only else {}, True, None, None,
                      datetime.now(UTC), None, None, None, None, None, None, None, None)
        counts = PageCounts()
        ours = {s for k, u in total.items() for s in (NCMECAdapter().convert(ex, k, u, counts).signals or [])}
        common = {s for s in ours if s[0] in ("pdq", "video_md5")}
        extra = sorted(s for s in ours if s not in common)  # image MD5/SHA-1: types the library does not map
        case(f"ncmec {label}", sorted(theirs), f"{sorted(common)} + {extra}", theirs == common)
    return case.summary()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "service"
    if what == "service":
        sys.exit(service())
    if what == "signals":
        sys.exit(signals())
    if what == "ncmec" and len(sys.argv) > 2:
        sys.exit(ncmec(sys.argv[2]))
    sys.exit(__doc__)
