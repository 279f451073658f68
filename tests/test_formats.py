"""Bank file formats: streaming parsers, line-numbered errors, export round trips, fuzzing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import assay.banks.formats as formats
from assay import signals as signal_types
from assay.banks.formats import export, parse_file, parse_stream
from assay.banks.store import ImportRecord, Store, check_record
from assay.errors import AssayError, BankImportError, InputError, InvalidBankInput

H1, H2, H3 = "a" * 64, "0123456789abcdef" * 4, "f" * 64
MD5 = "9e107d9d372bb6826bd81d3542a419d6"  # MD5 of the quick brown fox (not of no bytes: degenerate)


def parse(text: str | bytes, fmt: formats.Format | None = None, signal_type: str = "pdq") -> list[ImportRecord]:
    data = text.encode() if isinstance(text, str) else text
    return list(parse_stream(io.BytesIO(data), "test.txt", fmt, signal_type))


def problems(text: str | bytes, fmt: formats.Format | None = None) -> list[tuple[int, str]]:
    with pytest.raises(BankImportError) as err:
        parse(text, fmt)
    assert err.value.source == "test.txt"
    return err.value.problems


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "banks.sqlite3")) as s:
        yield s


# -- plain lists ------------------------------------------------------------------------
def test_list_of_the_shared_haystack(testdata: Path) -> None:
    path = testdata / "pdq" / "haystack.txt"
    expected = [ln.strip().lower() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    records = list(parse_file(path))
    assert [r.content_id for r in records] == expected
    assert all(r.signals == (("pdq", r.content_id),) for r in records)
    assert len(expected) > 1000


def test_list_skips_comments_and_normalizes() -> None:
    text = f"# a bank\n\n  {H1.upper()}  \r\n0x{H2}\n# end\n"
    records = parse(text)
    assert [(r.content_id, r.signals, r.line) for r in records] == [
        (H1, (("pdq", H1),), 3), (H2, (("pdq", H2),), 4)]
    assert parse(f"{MD5}\n", signal_type="md5")[0].signals == (("md5", MD5),)


def test_list_bad_lines_are_numbered() -> None:
    got = problems(f"{H1}\nnot-a-hash\n{H2}\n{H1[:-1]}\n")
    assert [n for n, _ in got] == [2, 4]
    assert "not-a-hash" in got[0][1] and "63" in got[1][1]


def test_list_stops_after_twenty_problems() -> None:
    got = problems("\n".join(["zz"] * 500))
    assert [n for n, _ in got] == list(range(1, 21))


def test_non_utf8_and_overlong_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_LINE", 100)
    got = problems(H1.encode() + b"\n\xff\xfe\n" + b"0" * 1000 + b"\n" + H2.encode() + b"\n", "list")
    assert [n for n, _ in got] == [2, 3]
    assert "UTF-8" in got[0][1] and "longer" in got[1][1]


def test_empty_input_gives_nothing() -> None:
    assert parse("") == [] and parse("# only a comment\n\n") == []


def test_unknown_default_signal_type_and_format(tmp_path: Path) -> None:
    f = tmp_path / "l.txt"
    f.write_text(H1)
    with pytest.raises(AssayError):
        parse_file(f, signal_type="phash")
    with pytest.raises(InputError):
        parse_file(f, fmt="xml")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        parse_file(tmp_path / "missing.txt")
    with pytest.raises(InputError):
        parse_file(tmp_path)


# -- CSV --------------------------------------------------------------------------------
def test_csv_with_aliases_extra_columns_and_meta() -> None:
    text = (
        "Signal,Hash,ID,Comment,meta,source_url\n"
        f"pdq,{H1},c1,\"first, with comma\",\"{{\"\"case\"\": 7}}\",http://example.invalid/1\n"
        f"md5,{MD5.upper()},c1,,,\n"
        f",{H2},,  spaced note  ,,\n"
    )
    r = parse(text)
    assert r[0] == ImportRecord("c1", (("pdq", H1),), "first, with comma",
                                {"case": 7, "source_url": "http://example.invalid/1"}, 2)
    assert r[1] == ImportRecord("c1", (("md5", MD5),), None, None, 3)
    assert r[2] == ImportRecord(H2, (("pdq", H2),), "  spaced note  ", None, 4)  # default type and id


def test_csv_wide_form() -> None:
    r = parse(f"content_id,pdq,md5\nx,{H1},{MD5}\ny,,{MD5}\n")
    assert [(x.content_id, x.signals) for x in r] == [("x", (("pdq", H1), ("md5", MD5))), ("y", (("md5", MD5),))]
    # without a content id column the first hash names the entry (an "MD5,SHA1" hash set)
    assert [(x.content_id, x.signals) for x in parse(f"pdq,md5\n{H1},{MD5}\n")] == [(H1, (("pdq", H1), ("md5", MD5)))]


def test_csv_multiline_quoted_note_keeps_line_numbers() -> None:
    r = parse(f'value,note\n{H1},"two\nlines"\n{H2},x\n')
    assert [(x.note, x.line) for x in r] == [("two\nlines", 3), ("x", 4)]


@pytest.mark.parametrize(
    "body, line",
    [
        (f"{H1},c1\n{H2}\n{H3},c3\n", 3),  # too few fields
        (f"{H1},c1\n{H2},c2,extra\n", 3),  # too many
        (f"{H1},c1\nnothex,c2\n{H3},c3\n", 3),
        (f"{H1},c1\n{H2},\"unterminated\n", 3),
        (f"{H1},c1\n{H2},c\x002\n", 3),
    ],
)
def test_csv_broken_line_is_reported(body: str, line: int) -> None:
    got = problems("value,content_id\n" + body)
    assert got[0][0] == line


@pytest.mark.parametrize("header", ["content_id,note\n", "value,value\n", "signal_type,pdq\n", "a,,b\n"])
def test_csv_bad_header(header: str) -> None:
    assert problems(header + "x,y\n")[0][0] == 1


def test_broken_csv_line_in_the_middle_imports_nothing(store: Store, tmp_path: Path) -> None:
    store.create_bank("b")
    lines = ["signal_type,value,content_id,note"]
    lines += [f"pdq,{i:064x},id{i},n" for i in range(200)]
    lines.insert(120, "pdq,1234,bad,n")  # physical line 121
    f = tmp_path / "bank.csv"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BankImportError) as err:
        store.import_records("b", parse_file(f), str(f))
    assert err.value.problems[0][0] == 121
    assert "line 121" in str(err.value) and str(f) in str(err.value)
    assert store.stats("b").entries == 0


# -- JSON Lines -------------------------------------------------------------------------
def test_jsonl_both_forms() -> None:
    text = "\n".join([
        json.dumps({"signal_type": "pdq", "value": H1, "content_id": "a", "note": "n", "meta": {"k": 1}}),
        json.dumps({"content_id": 42, "signals": {"pdq": H2, "md5": [MD5, MD5.upper()]}, "extra": [1]}),
        json.dumps({"hash": H3}),
    ])
    r = parse(text)
    assert r[0] == ImportRecord("a", (("pdq", H1),), "n", {"k": 1}, 1)
    assert r[1] == ImportRecord("42", (("pdq", H2), ("md5", MD5), ("md5", MD5)), None, {"extra": [1]}, 2)
    assert r[2] == ImportRecord(H3, (("pdq", H3),), None, None, 3)


@pytest.mark.parametrize(
    "line",
    [
        "{not json",
        "{" + '"a":' * 1 + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than the JSON parser recurses
        json.dumps({"value": H1, "signals": {"pdq": H1}}),
        json.dumps({"signals": {}}),
        json.dumps({"signals": {"pdq": [H1, 5]}}),
        json.dumps({"value": 7}),
        json.dumps({"note": "no value"}),
        json.dumps({"value": H1, "meta": [1]}),
        json.dumps({"value": H1, "content_id": True}),
        json.dumps({"value": H1, "content_id": "a\tb"}),
        json.dumps({"value": H1, "signal_type": "phash"}),
        json.dumps({"value": H1, "type": "pdq", "signal": "md5"}),
    ],
)
def test_jsonl_bad_line(line: str) -> None:
    got = problems(json.dumps({"value": H2}) + "\n" + line + "\n", "jsonl")
    assert got[0][0] == 2


def test_jsonl_array_line_is_rejected() -> None:
    assert problems(f'{{"value": "{H1}"}}\n[1, 2]\n')[0][0] == 2


# -- detection --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, cid",
    [
        (f"# comment\n{H1}\n", H1),
        (f"value\n{H1}\n", H1),
        (f"hash,content_id\n{H1},x\n", "x"),
        (f'{{"value": "{H1}", "content_id": "j"}}\n', "j"),
    ],
)
def test_format_detection(text: str, cid: str) -> None:
    assert [r.content_id for r in parse(text)] == [cid]


# -- export -----------------------------------------------------------------------------
def _entries(store: Store, bank: str) -> list[tuple]:
    return [(e.content_id, e.note, e.meta, {k: sorted(v) for k, v in e.signals.items()})
            for e in store.iter_entries(bank)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_import_round_trip(store: Store, tmp_path: Path, fmt: formats.Format) -> None:
    store.create_bank("src")
    store.add_entry("src", "plain", {"pdq": H1})
    store.add_entry("src", "multi", {"pdq": [H2, H3], "md5": MD5, "sha256": "e" * 64},
                    note="a note, with \"quotes\"\nand a newline", meta={"case": 7, "nested": {"a": [1, "x"]}})
    store.add_entry("src", "caf\u00e9 \u2603", {"md5": "0" * 32}, note="  ")
    out = tmp_path / f"bank.{fmt}"
    with out.open("w", encoding="utf-8", newline="") as fh:
        assert export(store, "src", fmt, fh) == 3
    store.create_bank("copy")
    res = store.import_records("copy", parse_file(out), str(out))  # format detected from content
    assert (res.added_entries, res.added_signals) == (3, 6)
    assert _entries(store, "copy") == _entries(store, "src")


def test_export_list_round_trip(store: Store, tmp_path: Path) -> None:
    store.create_bank("src")
    store.import_records("src", parse_stream(io.BytesIO(f"{H1}\n{H2}\n{H3}\n".encode()), "t"), "t")
    out = tmp_path / "bank.txt"
    with out.open("w") as fh:
        export(store, "src", "list", fh)
    store.create_bank("copy")
    store.import_records("copy", parse_file(out), str(out))
    assert _entries(store, "copy") == _entries(store, "src")


def test_export_list_needs_a_type_when_the_bank_has_several(store: Store) -> None:
    store.create_bank("b")
    store.add_entry("b", "x", {"pdq": H1, "md5": MD5})
    with pytest.raises(InvalidBankInput):
        export(store, "b", "list", io.StringIO())
    buf = io.StringIO()
    export(store, "b", "list", buf, signal_type="md5")
    assert [ln for ln in buf.getvalue().splitlines() if not ln.startswith("#")] == [MD5]


# -- fuzzing ----------------------------------------------------------------------------
_fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_pieces = st.sampled_from([
    H1, H1.upper(), "0x" + H2, MD5, "pdq", "md5", "sha256", "value", "hash", "content_id", "signals",
    ",", "\n", "\r\n", '"', "{", "}", "[", "]", ":", "#", " ", "\t", "\x00", "null", "1", "é", "\ud7ff",
])
_texts = st.one_of(st.text(max_size=300), st.lists(_pieces, max_size=60).map("".join))


@_fuzz
@given(text=_texts, fmt=st.sampled_from([None, "list", "csv", "jsonl"]))
def test_fuzz_parsers_only_yield_records_or_import_errors(text: str, fmt: formats.Format | None) -> None:
    data = text.encode("utf-8", "surrogatepass")
    records = _records_or_clear_rejection(data, fmt)
    for r in records:
        check_record(r)  # everything a parser yields is storable as it is
        for t, v in r.signals:
            assert v == signal_types.get(t).normalize(v)


def _records_or_clear_rejection(data: bytes, fmt: formats.Format | None = None) -> list[ImportRecord]:
    """Records from lines that exist, in order, or a rejection that names the file and
    each bad line; the same either way when the bytes are parsed again."""
    lines = data.count(b"\n") + 1
    try:
        records = parse(data, fmt)
    except BankImportError as exc:
        assert exc.source == "test.txt" and str(exc).startswith("test.txt: import rejected, nothing was imported")
        assert exc.problems and all(isinstance(n, int) and 1 <= n <= lines for n, _ in exc.problems)
        assert all(reason and reason.isprintable() for _, reason in exc.problems), exc.problems
        with pytest.raises(BankImportError) as again:
            parse(data, fmt)
        assert again.value.problems == exc.problems
        return []
    except InputError as exc:  # the file as a whole is not a bank file (e.g. a database)
        assert exc.path == "test.txt" and str(exc).startswith(f"test.txt: {exc.reason}")
        assert exc.reason.isprintable()
        return []
    assert all(1 <= r.line <= lines for r in records)
    assert [r.line for r in records] == sorted(r.line for r in records)
    assert parse(data, fmt) == records
    return records


@_fuzz
@given(data=st.binary(max_size=300))
def test_fuzz_parsers_on_random_bytes(data: bytes) -> None:
    for r in _records_or_clear_rejection(data):
        check_record(r)


@_fuzz
@given(value=st.one_of(st.text(max_size=80), _pieces), name=st.sampled_from([t.name for t in signal_types.all_types()]))
def test_fuzz_hash_strings(value: str, name: str) -> None:
    st_ = signal_types.get(name)
    try:
        v = st_.normalize(value)
    except AssayError:
        return
    assert len(v) == st_.hex_len and int(v, 16) == int(value.strip().lower().removeprefix("0x"), 16)
    assert st_.normalize(v) == v  # idempotent: a stored value reads back as itself


def test_utf16_text_is_not_mpeg_audio() -> None:
    """UTF-16's little-endian byte-order mark FF FE also reads as an MPEG-1 Layer I frame
    header: a model output saved by PowerShell's `>` was sniffed as MP3 audio (and never
    checked against a text index). Text after the mark is text; audio stays audio."""
    import random

    from assay.sniff import sniff_bytes

    for text in ("Quoting it: the harbour master kept a lantern", "日本語のテキスト" * 40, "a\tb\r\nc" + "😀" * 200):
        head = text.encode("utf-16")[:512]
        assert sniff_bytes(head) == sniff_bytes(text.encode("utf-8")[:512]), text[:20]
    rng = random.Random(7)
    frame = bytes([0xFF, 0xFB, 0x90, 0x64])  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
    assert sniff_bytes(frame + rng.randbytes(508)).format == "mp3"
    layer1 = [sniff_bytes(b"\xff\xfe\x50" + rng.randbytes(509)).format for _ in range(200)]
    assert layer1.count("mp3") >= 199  # random Layer I data is not taken for text
