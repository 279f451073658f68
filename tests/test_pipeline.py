"""The scan pipeline isolates failures: a bad file or a buggy analyzer never stops a scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from assay.config import Limits, ScanSettings
from assay.errors import AssayError, DecodeError
from assay.report.jsonl import ReportWriter
from assay.report.schema import FileRecord, SignalValue
from assay.scan.analyzer import Subject
from assay.scan.run import run_scan
from assay.scan.walk import WalkItem


class _Tagger:
    name: ClassVar[str] = "tagger"
    kinds: ClassVar[frozenset[str]] = frozenset({"image", "other"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        data = subject.path.read_bytes()
        if b"boom" in data:
            raise RuntimeError("analyzer bug")
        if b"bad" in data:
            raise DecodeError(subject.path, "corrupt on purpose")
        record.signals.append(SignalValue(type="md5", value="0" * 32))


class _Second:
    name: ClassVar[str] = "second"
    kinds: ClassVar[frozenset[str]] = frozenset({"other"})

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        record.signals.append(SignalValue(type="sha256", value="1" * 64))


def _factory(_settings: ScanSettings):
    return [_Tagger(), _Second()]


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_files_become_error_records_and_scan_goes_on(tmp_path: Path, workers: int) -> None:
    (tmp_path / "ok.txt").write_bytes(b"fine")
    (tmp_path / "bad.txt").write_bytes(b"bad")
    (tmp_path / "bug.txt").write_bytes(b"boom")
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "big.txt").write_bytes(b"x" * 100)
    settings = ScanSettings(workers=workers, limits=Limits(max_file_bytes=50))
    records: dict[str, FileRecord] = {}
    summary = run_scan(
        [tmp_path, tmp_path / "missing"], settings, None, lambda r: records.__setitem__(Path(r.path).name, r),
        factory=_factory,
    )
    assert summary.files == 6
    assert [s.type for s in records["ok.txt"].signals] == ["md5", "sha256", "sha1"]
    bad = records["bad.txt"]
    assert bad.errors[0].stage == "tagger" and bad.errors[0].code == "decode-error"
    assert "corrupt on purpose" in bad.errors[0].message
    # the second analyzer still ran on the file the first failed on
    assert [s.type for s in bad.signals][0] == "sha256"
    assert records["bug.txt"].errors[0].code == "internal-error"
    assert records["empty.bin"].errors[0].code == "empty"
    assert records["big.txt"].errors[0].code == "too-large"
    assert records["missing"].kind == "error"
    assert summary.with_errors == 5


def test_report_writer_never_overwrites_and_keeps_partial_on_crash(tmp_path: Path) -> None:
    target = tmp_path / "r.jsonl"
    target.write_text("precious\n")
    with pytest.raises(AssayError, match="already exists"):
        ReportWriter(target)
    assert target.read_text() == "precious\n"
    other = tmp_path / "s.jsonl"
    with pytest.raises(RuntimeError):
        with ReportWriter(other) as w:
            w.write({"a": 1})
            raise RuntimeError("crash mid-scan")
    assert not other.exists()
    assert json.loads((tmp_path / "s.jsonl.partial").read_text()) == {"a": 1}
    with ReportWriter(target, overwrite=True) as w:
        w.write({"b": 2})
    assert json.loads(target.read_text()) == {"b": 2}


# ------------------------------------------------------------------ streaming


def _tagger_factory(_settings: ScanSettings) -> list[_Tagger]:
    return [_Tagger()]


def test_workers_never_hold_more_than_a_window_of_the_walk(tmp_path: Path) -> None:
    """The walk is fed to the workers as they finish: however long it is, the parent
    holds at most a window of items in flight (a 10-million-file drive stays small)."""
    from assay.scan.pipeline import CHUNK, IN_FLIGHT_MIN, IN_FLIGHT_PER_WORKER, analyze_all
    from assay.scan.walk import WalkItem

    f = tmp_path / "a.txt"
    f.write_text("x")
    consumed = 0

    def items():  # noqa: ANN202
        nonlocal consumed
        for _ in range(3000):
            consumed += 1
            yield WalkItem(f)

    settings = ScanSettings(workers=2, provenance=False, models=False)
    window = max(IN_FLIGHT_MIN, IN_FLIGHT_PER_WORKER * 2)
    produced = worst = 0
    for _rec in analyze_all(items(), settings, _tagger_factory):
        produced += 1
        worst = max(worst, consumed - produced)
    assert produced == 3000
    assert worst <= window + CHUNK  # + one partly filled chunk of the pool's feeder


def test_scan_starts_before_the_walk_ends(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"f{i:02d}.txt").write_text("x")
    totals: list[int] = []
    first_record_total: list[int] = []

    def on_record(_rec: FileRecord) -> None:
        if not first_record_total:
            first_record_total.append(totals[-1])

    settings = ScanSettings(workers=1, provenance=False, models=False)
    summary = run_scan([tmp_path], settings, None, lambda r: None, on_total=totals.append,
                       on_record=on_record, factory=_tagger_factory)
    assert summary.files == 50 and totals[-1] == 50
    assert first_record_total == [1]  # the first file was analysed when one file had been walked


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_counts_the_bytes_of_walked_files(tmp_path: Path, workers: int) -> None:
    """The progress line's bytes: every regular file the walk found, once, by its size;
    an archive counts its own bytes (not its members'), a link and a folder none. Done
    never passes the total found so far, and both end at the walked files' sum."""
    import zipfile

    sizes = {}
    for i in range(20):
        f = tmp_path / "d" / f"f{i:02d}.txt"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"x" * (100 * i + 1))
        sizes[f] = f.stat().st_size
    with zipfile.ZipFile(tmp_path / "case.zip", "w") as z:
        z.writestr("inner/a.txt", b"a" * 5000)
        z.writestr("inner/b.txt", b"b" * 7000)
    sizes[tmp_path / "case.zip"] = (tmp_path / "case.zip").stat().st_size
    (tmp_path / "link.txt").symlink_to(tmp_path / "d" / "f01.txt")
    (tmp_path / "empty").mkdir()
    seen: list[tuple[int, int]] = []
    settings = ScanSettings(workers=workers, provenance=False, models=False)
    summary = run_scan([tmp_path], settings, None, lambda r: None, on_bytes=lambda d, t: seen.append((d, t)))
    assert summary.files == 20 + 1 + 2 + 1  # files, the archive, its members, the link
    assert seen[-1] == (sum(sizes.values()), sum(sizes.values()))
    assert all(d <= t for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and [t for _, t in seen] == sorted(t for _, t in seen)


def test_the_progress_line_shows_files_bytes_and_time_left(tmp_path: Path) -> None:
    """What a person sees on a terminal while a scan runs."""
    import io
    import re

    from rich.console import Console

    from assay.cli.scan import scan_progress

    for i in range(30):
        (tmp_path / f"f{i:02d}.txt").write_bytes(b"y" * 40_000)
    buf = io.StringIO()
    progress = scan_progress(Console(file=buf, force_terminal=True, width=120), show=True)
    task = progress.add_task("scan", total=None, bytes_done=0, bytes_total=0)
    with progress:
        run_scan([tmp_path], ScanSettings(workers=1, provenance=False, models=False), None, lambda r: None,
                 on_total=lambda n: progress.update(task, total=n), on_record=lambda r: progress.advance(task),
                 on_bytes=lambda d, t: progress.update(task, bytes_done=d, bytes_total=t))
        progress.refresh()
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", buf.getvalue())
    assert "scanning" in shown and "30/30 files" in shown and "1.2 MB of 1.2 MB" in shown
    assert re.search(r"\d:\d\d:\d\d|-:--:--", shown)  # the time left
    assert not scan_progress(Console(file=io.StringIO()), show=False).live.is_started


def test_a_parent_with_the_c2pa_sdk_loaded_does_not_fork_its_workers(tmp_path: Path) -> None:
    """The SDK runs native threads; a forked worker could inherit one of their locks held
    and hang. Such a parent starts workers from a clean fork server, and they still work."""
    import c2pa  # noqa: F401  (loaded, as in the service or a test session)

    from assay.scan.pipeline import _worker_context

    assert _worker_context().get_start_method() == "forkserver"
    for i in range(6):
        (tmp_path / f"f{i}.txt").write_text("x")
    settings = ScanSettings(workers=2, provenance=False, models=False)
    summary = run_scan([tmp_path], settings, None, lambda r: None, factory=_tagger_factory)
    assert summary.files == 6


def test_deferred_analyzers_declare_what_they_build() -> None:
    # The pipeline skips a deferred analyzer by its declared name and kinds, before it
    # is built: they must be the real analyzer's (building checks it and raises).
    from assay.scan.pipeline import Deferred, default_analyzers

    analyzers = default_analyzers(ScanSettings(workers=1))
    deferred = [a for a in analyzers if isinstance(a, Deferred)]
    assert {a.name for a in deferred} == {"image-hash", "video-hash", "provenance", "model", "pickle-polyglot"}
    for a in deferred:
        real = a.real
        assert (real.name, real.kinds) == (a.name, a.kinds)
        assert type(real).__name__.endswith("Analyzer")
    wrong = Deferred("image-hash", frozenset({"image", "video"}), deferred[0]._build)
    with pytest.raises(RuntimeError, match="builds image-hash"):
        wrong.analyze(None, FileRecord(path="x"))  # type: ignore[arg-type]


def test_a_folder_of_plain_files_builds_no_image_or_model_analyzer(tmp_path: Path) -> None:
    from assay.scan.pipeline import Deferred, analyze_entry, default_analyzers

    (tmp_path / "a.txt").write_bytes(b"x\n")
    analyzers = default_analyzers(ScanSettings(workers=1))
    [rec] = list(analyze_entry(WalkItem(tmp_path / "a.txt"), ScanSettings(workers=1), analyzers))
    assert {s.type for s in rec.signals} == {"md5", "sha1", "sha256"}
    assert all(a._real is None for a in analyzers if isinstance(a, Deferred))


def test_report_lines_reach_the_file_before_the_buffer_fills(tmp_path: Path) -> None:
    # someone following a scan's .partial file sees the header and first records at once
    from assay.report import jsonl

    target = tmp_path / "r.jsonl"
    partial = tmp_path / "r.jsonl.partial"
    with ReportWriter(target) as w:
        w.write({"schema": "header"})
        w.write({"path": "first"})
        assert [json.loads(x) for x in partial.read_text().splitlines()] == [{"schema": "header"}, {"path": "first"}]
        for i in range(jsonl.FLUSH_FIRST - 2):
            w.write({"path": str(i)})
        w._flushed = 1e18  # a flush "just now": the next line waits in the buffer
        w.write({"path": "buffered"})
        assert len(partial.read_text().splitlines()) == jsonl.FLUSH_FIRST
        w._flushed = 0.0  # the last flush long ago: this write flushes both
        w.write({"path": "late"})
        assert len(partial.read_text().splitlines()) == jsonl.FLUSH_FIRST + 2
    assert len(target.read_text().splitlines()) == jsonl.FLUSH_FIRST + 2


@pytest.mark.parametrize(("pngs", "loaded"), [(8, True), (7, False)])
def test_the_parent_loads_the_image_analyzers_before_forking_only_for_a_walk_of_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pngs: int, loaded: bool
) -> None:
    """Workers share what their parent loaded before forking: the image analyzers, the
    watermark's compiled pass and (when regions will be hashed) the span weights are loaded there when the first PRELOAD_PEEK items hold
    PRELOAD_IMAGES images the watermark searches; a walk of other files (JPEG photos,
    text) loads nothing. The walk reaches the workers unchanged either way."""
    from assay.media import pdq
    from assay.provenance import watermark
    from assay.scan import pipeline

    built: list[str] = []
    monkeypatch.setattr(watermark, "preload", lambda: built.append("watermark"))
    monkeypatch.setattr(pdq, "preload", lambda: built.append("spans"))

    def factory(settings: ScanSettings) -> list[pipeline.Deferred]:
        return [pipeline.Deferred(n, frozenset(k), lambda n=n, k=k: built.append(n) or _Named(n, k))
                for n, k in (("pixels", {"image"}), ("models", {"model"}))]

    names = [f"p{i}.png" for i in range(pngs)] + [f"j{i}.jpg" for i in range(40)] + [f"t{i}.txt" for i in range(30)]
    items = [WalkItem(tmp_path / n) for n in names]
    out = list(pipeline._preloaded(iter(items), ScanSettings(workers=2), factory))
    assert out == items
    # banks of unknown kinds (or holding anchored regions): every query variant, regions too
    assert built == (["pixels", "watermark", "spans"] if loaded else [])
    built.clear()
    list(pipeline._preloaded(iter(items), ScanSettings(workers=2, provenance=False, bank_variant_kinds=frozenset({"region"})), factory))
    assert built == (["pixels", "spans"] if loaded else [])
    built.clear()  # plain hash lists, or no variants: no region is hashed
    list(pipeline._preloaded(iter(items), ScanSettings(workers=2, bank_variant_kinds=frozenset()), factory))
    assert built == (["pixels", "watermark"] if loaded else [])
    built.clear()
    list(pipeline._preloaded(iter(items), ScanSettings(workers=2, variants=False), factory))
    assert built == (["pixels", "watermark"] if loaded else [])


class _Named:
    def __init__(self, name: str, kinds: set[str]) -> None:
        self.name, self.kinds = name, frozenset(kinds)

    def analyze(self, subject: Subject, record: FileRecord) -> None:
        pass
