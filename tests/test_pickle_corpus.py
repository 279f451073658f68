"""Precision and recall on the whole generated corpus (tests/pickle_corpus.py): every
malicious sample is `dangerous`, every benign one `safe`, by the pickle scan and by
the model analysis, and no canary file is ever created. bench/bench_pickle_scan.py
reports the same corpus side by side with picklescan."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.errors import InputError
from assay.models import scan_file
from assay.models.analyzer import analyze_model
from pickle_corpus import corpus, write_corpus

RANK = {"safe": 0, "suspicious": 1, "dangerous": 2}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    d = tmp_path_factory.mktemp("corpus")
    canary = d / "CANARY"
    return canary, write_corpus(corpus(canary), d / "files")


def test_corpus_covers_every_gadget_class(written: tuple[Path, list]) -> None:
    _, items = written
    gadgets = {s.gadget for s, _ in items if s.expect == "dangerous"}
    assert gadgets >= {
        "os", "subprocess", "eval", "exec", "getattr", "importlib", "runpy", "webbrowser",
        "socket", "ssl", "network libs", "shutil", "ctypes", "pty", "code objects", "marshal",
        "frame hiding", "npy", "npz", "zip members", "keras", "interpreters", "scanner tampering",
    }
    assert sum(1 for s, _ in items if s.expect == "safe") >= 150


def test_every_sample_gets_its_verdict_and_no_canary_appears(written: tuple[Path, list]) -> None:
    canary, items = written
    wrong = []
    for sample, path in items:
        scanned = max((r.verdict for r in scan_file(path)), key=RANK.__getitem__, default="safe")
        try:
            model = analyze_model(path).safety.verdict
        except InputError as exc:
            model = f"error: {exc.reason}"
        if scanned != sample.expect or model != sample.expect:
            wrong.append((sample.name, sample.expect, scanned, model))
    assert wrong == []
    assert not canary.exists()


def test_benign_samples_do_not_depend_on_what_the_session_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """distributed (the Dask tests) installs tblib's reducer for every exception class into
    copyreg's global table; the corpus must still write an exception as plain Python does,
    or the suite's verdicts would depend on test order."""
    import copyreg

    from pickle_corpus import benign

    def third_party_reducer(exc: BaseException) -> tuple:  # what tblib's reducer does, in shape
        return (_rebuild, (type(exc), exc.args))

    before = {s.name: s for s in benign()}
    monkeypatch.setitem(copyreg.dispatch_table, ValueError, third_party_reducer)
    after = {s.name: s for s in benign()}
    assert before == after


def _rebuild(cls: type, args: tuple) -> BaseException:
    return cls(*args)
