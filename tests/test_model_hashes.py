"""Community hashes: each checked against an independent reference implementation
(A1111's seek-and-read AutoV1, kohya's addnet hash, hashlib/zlib/blake3 on the bytes)."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay import signals
from assay.errors import InputError
from assay.models import hashes as H
from assay.models.hashes import check_embedded, compute_hashes, hash_signals


def a1111_model_hash(path: Path) -> str:
    """AUTOMATIC1111's legacy model hash, as its sd_models.model_hash does it."""
    with path.open("rb") as f:
        m = hashlib.sha256()
        f.seek(0x100000)
        m.update(f.read(0x10000))
        return m.hexdigest()[0:8]


def addnet_hash(path: Path) -> str:
    """kohya / additional-networks: sha256 of everything after the safetensors header."""
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        f.seek(n + 8)
        return hashlib.sha256(f.read()).hexdigest()


def reference(path: Path, data_offset: int | None) -> dict[str, str | None]:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    crc = zlib.crc32(data)
    data_sha = hashlib.sha256(data[data_offset:]).hexdigest() if data_offset is not None else None
    return {
        "sha256": sha,
        "autov1": a1111_model_hash(path),
        "autov2": sha[:10],
        "autov3": data_sha[:12] if data_sha else None,
        "data_sha256": data_sha,
        "blake3": blake3.blake3(data).hexdigest(),
        "crc32": f"{crc:08x}",
        "crc32_civitai": crc.to_bytes(4, "little").hex(),
        "md5": hashlib.md5(data).hexdigest(),
    }


def _write(path: Path, n: int, seed: int = 1) -> Path:
    import random

    path.write_bytes(random.Random(seed).randbytes(n))
    return path


@pytest.mark.parametrize(
    "size",
    [0, 1, 1000, 0x100000 - 1, 0x100000, 0x100000 + 100, 0x110000, 3 * 1024 * 1024],
)
def test_matches_references_around_autov1_window(tmp_path: Path, size: int) -> None:
    p = _write(tmp_path / "f.bin", size)
    off = min(8, size)
    got = compute_hashes(p, off).model_dump()
    for k, v in reference(p, off).items():
        assert got[k] == v, k
    assert got["size"] == size


def test_small_file_autov1_is_hash_of_nothing(tmp_path: Path) -> None:
    # A1111 seeks past the end and hashes zero bytes: every file under 1 MiB shares it.
    p = _write(tmp_path / "small.bin", 5000)
    assert compute_hashes(p).autov1 == hashlib.sha256(b"").hexdigest()[:8]


def test_threaded_path_with_large_file(tmp_path: Path) -> None:
    size = 2 * H.CHUNK + 12345  # above the inline threshold: ring of buffers and threads
    p = _write(tmp_path / "big.bin", size, seed=7)
    off = H.CHUNK - 3  # data section starts just before a buffer boundary
    got = compute_hashes(p, off).model_dump()
    for k, v in reference(p, off).items():
        assert got[k] == v, k


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(0, 40_000),
    chunk=st.sampled_from([512, 4096, 8192]),
    offset_frac=st.floats(0, 1),
    seed=st.integers(0, 1000),
)
def test_buffering_never_changes_a_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, chunk: int, offset_frac: float, seed: int
) -> None:
    monkeypatch.setattr(H, "CHUNK", chunk)
    monkeypatch.setattr(H, "_INLINE_BELOW", 0)  # force the threaded ring even for tiny files
    p = _write(tmp_path / f"h{seed}_{size}.bin", size, seed)
    off = int(size * offset_frac)
    got = compute_hashes(p, off).model_dump()
    ref = reference(p, off)
    for k in ("sha256", "data_sha256", "md5", "blake3", "crc32"):
        assert got[k] == ref[k], k


def test_autov1_window_split_across_small_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(H, "CHUNK", 3000)  # the 64 KiB window spans many buffers
    monkeypatch.setattr(H, "_INLINE_BELOW", 0)
    p = _write(tmp_path / "w.bin", 0x100000 + 0x10000 + 777, seed=3)
    assert compute_hashes(p).autov1 == a1111_model_hash(p)


def test_addnet_hash_of_safetensors_equals_kohya(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    st_numpy = pytest.importorskip("safetensors.numpy")
    p = tmp_path / "lora.safetensors"
    st_numpy.save_file(
        {"a.lora_down.weight": np.ones((4, 768), np.float16), "a.alpha": np.array(2.0, np.float16)},
        str(p),
        metadata={"ss_network_dim": "4"},
    )
    n = int.from_bytes(p.read_bytes()[:8], "little")
    got = compute_hashes(p, 8 + n)
    assert got.data_sha256 == addnet_hash(p)
    assert got.autov3 == addnet_hash(p)[:12]


def test_without_data_offset_autov3_is_undefined(tmp_path: Path) -> None:
    p = _write(tmp_path / "x.ckpt", 100)
    h = compute_hashes(p)
    assert h.autov3 is None and h.data_sha256 is None
    assert [s.type for s in hash_signals(h)].count("autov3") == 0


def test_signals_are_valid_for_their_registered_types(tmp_path: Path) -> None:
    p = _write(tmp_path / "s.bin", H.AUTOV1_OFFSET + H.AUTOV1_LENGTH)
    sigs = hash_signals(compute_hashes(p, 10))
    assert {s.type for s in sigs} == {"autov1", "autov2", "autov3", "blake3", "crc32", "sha256", "md5", "sha1"}
    for s in sigs:
        assert signals.get(s.type).normalize(s.value) == s.value


def test_bad_inputs_raise_input_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.bin"):
        compute_hashes(tmp_path / "missing.bin")
    p = _write(tmp_path / "short.bin", 10)
    with pytest.raises(InputError, match="outside the file"):
        compute_hashes(p, 11)


def test_embedded_hash_checks(tmp_path: Path) -> None:
    p = _write(tmp_path / "m.safetensors", 5000)
    h = compute_hashes(p, 100)
    good = {"sshs_model_hash": h.data_sha256, "modelspec.hash_sha256": "0x" + str(h.data_sha256)}
    assert [c.status for c in check_embedded(good, h)] == ["match", "match"]
    bad = {"sshs_model_hash": "0" * 64, "sshs_legacy_hash": "12345678"}
    checks = {c.key: c for c in check_embedded(bad, h)}
    assert checks["sshs_model_hash"].status == "mismatch"
    # kohya computes the legacy hash over a re-serialised file, so it cannot be compared
    assert checks["sshs_legacy_hash"].status == "not-comparable"
    assert "data section" in checks["sshs_model_hash"].covers


def test_shared_real_safetensors(testdata: Path) -> None:
    p = testdata / "models" / "silero_vad_16k.safetensors"
    n = int.from_bytes(p.read_bytes()[:8], "little")
    got = compute_hashes(p, 8 + n).model_dump()
    for k, v in reference(p, 8 + n).items():
        assert got[k] == v, k


def test_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _write(tmp_path / "once.bin", 3 * 1024 * 1024 + 5)
    reads: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, *a: object, **k: object):  # type: ignore[no-untyped-def]
        f = real_open(self, *a, **k)  # type: ignore[arg-type]
        orig = f.readinto

        def readinto(b: bytearray) -> int:
            n = orig(b)
            reads.append(n or 0)
            return n or 0

        f.readinto = readinto  # type: ignore[method-assign]
        return f

    monkeypatch.setattr(Path, "open", counting_open)
    compute_hashes(p, 64)
    assert sum(reads) == os.path.getsize(p)
