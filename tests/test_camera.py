"""Camera sensor fingerprints (issue #18): enrolment, matching and storage, on synthetic
cameras (tests/prnu_synth.py: scenes x a per-camera pattern, shot/read noise, vignetting,
a pattern shared by cameras of one model, JPEG re-compression)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assay.camera import prnu
from assay.camera.identify import compare, enroll
from assay.errors import InvalidBankInput
from prnu_synth import Camera, scene

SHAPE = (192, 256)  # (H, W): small for speed; PCE grows with the pixel count


@pytest.fixture(scope="module")
def cams() -> list[Camera]:
    return [Camera(seed, 1, SHAPE, sigma=0.01) for seed in (1, 2, 3)]  # three of one model


@pytest.fixture(scope="module")
def prints(cams: list[Camera]) -> list[prnu.Fingerprint]:
    return [prnu.estimate([c.photo(scene(1000 * c.seed + i, SHAPE), 90, i) for i in range(12)]) for c in cams]


def test_a_camera_matches_its_own_photos_and_no_other(cams: list[Camera], prints: list[prnu.Fingerprint]) -> None:
    for ci, cam in enumerate(cams):
        for q in (95, 85, 75):
            photo = cam.photo(scene(50_000 + 10 * ci + q, SHAPE), q, seed=q)
            for fi, fp in enumerate(prints):
                det = prnu.detect(photo, fp)
                assert det is not None
                if fi == ci:
                    assert det.pce >= prnu.DEFAULT_THRESHOLD, (ci, q, det)
                    assert det.peak == (0, 0) and det.rotation == 0
                    assert det.false_alarm() < 1e-9
                else:  # same model, other sensor: the shared model pattern must not match
                    assert det.pce < prnu.DEFAULT_THRESHOLD / 3, (ci, fi, q, det)


def test_photos_without_a_pattern_do_not_match(prints: list[prnu.Fingerprint]) -> None:
    for s in range(6):
        plain = np.clip(scene(70_000 + s, SHAPE), 0, 255).astype(np.uint8)
        for fp in prints:
            assert prnu.detect(plain, fp).pce < prnu.DEFAULT_THRESHOLD / 3


def test_a_cropped_and_turned_photo_is_found_with_its_position(cams: list[Camera],
                                                               prints: list[prnu.Fingerprint]) -> None:
    photo = cams[1].photo(scene(80_000, SHAPE), 90, seed=3)
    crop = photo[20:170, 33:233]
    det = prnu.detect(crop, prints[1])
    assert det.pce >= prnu.DEFAULT_THRESHOLD and det.peak == (20, 33) and det.rotation == 0
    assert det.positions == 2 * (SHAPE[0] - 150 + 1) * (SHAPE[1] - 200 + 1)  # as taken and turned 180
    turned = np.rot90(crop, 1)
    det = prnu.detect(turned, prints[1])
    assert det.pce >= prnu.DEFAULT_THRESHOLD and det.peak == (20, 33) and det.rotation == 270
    assert prnu.detect(turned, prints[0]).pce < prnu.DEFAULT_THRESHOLD / 3
    # larger than the fingerprint in every orientation: not compared, said why
    big = np.zeros((400, 400, 3), np.uint8)
    res = compare(big, "cams/x", prints[0])
    assert not res.match and "larger than the fingerprint" in (res.why_not or "")


def test_pce_and_false_alarm_follow_their_definitions() -> None:
    rng = np.random.default_rng(5)
    cc = rng.normal(0, 1, (64, 64))
    cc[10, 20] = 30.0
    value, at = prnu.pce(cc)
    # the neighbourhood left out of the energy is the 5x5 block around the peak
    mask = np.ones_like(cc, bool)
    mask[8:13, 18:23] = False
    assert at == (10, 20) and value == pytest.approx(900 / np.mean(cc[mask] ** 2))
    det = prnu.Detection(60.0, (0, 0), 0, 1)
    assert det.false_alarm() == pytest.approx(0.5 * math.erfc((60 / 2) ** 0.5))
    assert prnu.Detection(-5.0, (0, 0), 0, 1).false_alarm() == 1.0


def _write(tmp: Path, name: str, arr: np.ndarray) -> Path:
    p = tmp / name
    Image.fromarray(arr).save(p, "PNG")
    return p


def test_enrolment_refuses_mixed_sizes_and_too_few_photos(cams: list[Camera], tmp_path: Path) -> None:
    cam = cams[0]
    files = [_write(tmp_path, f"p{i}.png", cam.photo(scene(90_000 + i, SHAPE), 92, i)) for i in range(4)]
    with pytest.raises(InvalidBankInput, match="at least 10"):
        enroll(files)
    turned = _write(tmp_path, "turned.png", np.rot90(cam.photo(scene(91_000, SHAPE), 92, 9)).copy())
    with pytest.raises(InvalidBankInput, match="mixed orientations") as e:
        enroll([*files, turned], min_images=2)
    assert "turned.png" in str(e.value)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    got = enroll([*files, tmp_path / "broken.png"], min_images=4)
    assert got.fingerprint.images == 4 and len(got.meta["photos"]) == 4
    assert len(got.skipped) == 1 and "broken.png" in got.skipped[0]
    assert {p["sha256"] for p in got.meta["photos"]} and got.meta["photos"][0]["width"] == SHAPE[1]


def test_fingerprints_round_trip_through_the_store(store_url: str, prints: list[prnu.Fingerprint],
                                                   cams: list[Camera]) -> None:
    from assay.banks.store import Store
    from assay.camera.store import CameraStore

    with Store(store_url) as s:
        s.create_bank("cameras")
        cs = CameraStore(s)
        rec = cs.add("cameras", "phone A", prints[0], {"photos": [], "exif": [{"make": "Synth"}]})
        assert rec.size < prints[0].k.size * 2.2  # float16, compressed
        with pytest.raises(InvalidBankInput, match="already holds"):
            cs.add("cameras", "phone A", prints[1], {})
        cs.add("cameras", "phone A", prints[1], {}, replace=True)
        cs.add("cameras", "phone C", prints[2], {})
        listed = cs.list()
        assert [(r.bank, r.name, r.width, r.height, r.images) for r in listed] == [
            ("cameras", "phone A", SHAPE[1], SHAPE[0], 12), ("cameras", "phone C", SHAPE[1], SHAPE[0], 12)]
        back = cs.load(listed[0])
        assert np.max(np.abs(back.k - prints[1].k)) < 1e-4
        photo = cams[1].photo(scene(123_456, SHAPE), 88, seed=1)
        assert prnu.detect(photo, back).pce == pytest.approx(prnu.detect(photo, prints[1]).pce, rel=0.02)
        assert cs.remove("cameras", "phone C") and not cs.remove("cameras", "phone C")
        s.delete_bank("cameras")
        s.create_bank("cameras")
        assert cs.list() == []


def test_cli_enrolls_and_matches(cams: list[Camera], tmp_path: Path) -> None:
    """The readable and the JSON output of `assay camera`, on an empty store and on one
    with a camera."""
    import json

    from typer.testing import CliRunner

    from assay.cli import app

    runner = CliRunner()
    db = str(tmp_path / "c.sqlite3")
    r = runner.invoke(app, ["--db", db, "--create", "camera", "list"])
    assert r.exit_code == 0 and "no cameras enrolled yet" in r.output
    files = [_write(tmp_path, f"a{i}.png", cams[0].photo(scene(60_000 + i, SHAPE), 92, 100 + i)) for i in range(10)]
    r = runner.invoke(app, ["--db", db, "camera", "enroll", "phone A", *map(str, files)])
    assert r.exit_code == 0, r.output
    assert "enrolled camera 'phone A' in bank 'cameras': 256x192, from 10 photos" in r.output
    own = _write(tmp_path, "own.png", cams[0].photo(scene(61_000, SHAPE), 85, 500))
    other = _write(tmp_path, "other.png", cams[1].photo(scene(61_001, SHAPE), 85, 501))
    r = runner.invoke(app, ["--db", db, "camera", "match", str(own), str(other)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "MATCH: taken by this camera's sensor" in lines[lines.index(str(own)) + 1]
    assert "no match" in lines[lines.index(str(other)) + 1]
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["--db", db, "camera", "match", str(own), str(tmp_path / "missing.png"), "--json"])
    assert r.exit_code == 1
    found = [json.loads(x) for x in r.stdout.splitlines()]
    assert found[0]["results"][0]["match"] is True and found[0]["results"][0]["pce"] >= 60
    assert "missing.png" in found[1]["error"]
    r = runner.invoke(app, ["--db", db, "camera", "list", "--json"])
    assert json.loads(r.stdout)[0]["images"] == 10


def test_the_compiled_filter_is_the_zero_padded_box_filter_of_the_papers() -> None:
    """camera/_kernel.py against the filter written out with numpy: windows 3-9 of the mean
    square, zero outside the band (counted), the smallest variance over the windows."""
    rng = np.random.default_rng(11)
    for shape in ((5, 7), (23, 31), (40, 12)):
        band = rng.normal(0, 6, shape).astype(np.float32)
        band[2:4, 3:5] *= 30  # an edge: the windows disagree there
        est = None
        for w in prnu.WINDOWS:
            r = w // 2
            p = np.pad(band.astype(np.float64) ** 2, r)
            mean = sum(p[i:i + shape[0], j:j + shape[1]] for i in range(w) for j in range(w)) / (w * w)
            v = np.maximum(mean - 25.0, 0.0)
            est = v if est is None else np.minimum(est, v)
        want = band * (25.0 / (est + 25.0))
        np.testing.assert_allclose(prnu._noise_part(band, 25.0), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(prnu._noise_part(band.copy(), 25.0, in_place=True), want, rtol=1e-5, atol=1e-5)
    # the same filter on a complex spectrum, in place: the variance of the magnitude
    from assay.camera._kernel import wiener_spectrum

    f = (rng.normal(0, 6, (21, 17)) + 1j * rng.normal(0, 6, (21, 17))).astype(np.complex64)
    f[5:7, 8:10] *= 30
    est = None
    for w in prnu.WINDOWS:
        r = w // 2
        p = np.pad(np.abs(f.astype(np.complex128)) ** 2, r)
        mean = sum(p[i:i + 21, j:j + 17] for i in range(w) for j in range(w)) / (w * w)
        v = np.maximum(mean - 25.0, 0.0)
        est = v if est is None else np.minimum(est, v)
    want_f = f * (25.0 / (est + 25.0))
    wiener_spectrum(f, 25.0)
    np.testing.assert_allclose(f, want_f, rtol=1e-5, atol=1e-5)


def test_the_row_wise_wavelet_residual_is_pywavelets_wavedec2_and_waverec2() -> None:
    """_channel_residual transforms along rows and transposes (camera/prnu.py): the same
    residual as PyWavelets' 2-D multilevel transform with the filter between, odd sizes and
    a stack of channels too."""
    import warnings

    import pywt

    rng = np.random.default_rng(13)
    for shape in ((64, 96), (37, 53), (3, 41, 30), (9, 200)):
        x = rng.normal(120, 40, shape).astype(np.float32)
        with warnings.catch_warnings():  # small sizes: coarse levels all border, as intended
            warnings.simplefilter("ignore", UserWarning)
            coeffs = pywt.wavedec2(x, prnu.WAVELET, level=prnu.LEVELS, mode="symmetric", axes=(-2, -1))
        out = [np.zeros_like(coeffs[0])] + [tuple(prnu._noise_part(b, 25.0) for b in d) for d in coeffs[1:]]
        want = pywt.waverec2(out, prnu.WAVELET, mode="symmetric", axes=(-2, -1))[..., :shape[-2], :shape[-1]]
        got = prnu._channel_residual(x, 5.0)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=2e-4)


def test_luma_residual_stays_close_to_the_per_channel_one(cams: list[Camera], prints: list[prnu.Fingerprint]) -> None:
    photo = cams[2].photo(scene(33_333, SHAPE), 90, seed=4).astype(np.float32)
    each, luma = prnu.residual(photo, channels="each"), prnu.residual(photo, channels="luma")
    a, b = each.ravel() - each.mean(), luma.ravel() - luma.mean()
    assert a @ b / np.sqrt((a @ a) * (b @ b)) > 0.97
    p_each = prnu.detect(prnu.probe(photo, channels="each"), prints[2]).pce
    p_luma = prnu.detect(prnu.probe(photo, channels="luma"), prints[2]).pce
    assert 0.8 < p_luma / p_each < 1.1
    with pytest.raises(ValueError, match="channels"):
        prnu.residual(photo, channels="green")


def test_the_opposite_turn_from_one_transform_equals_its_own_correlation(cams: list[Camera],
                                                                         prints: list[prnu.Fingerprint]) -> None:
    photo = np.rot90(cams[0].photo(scene(44_444, SHAPE), 90, seed=2), 2)
    pr = prnu.probe(photo)
    as_is, turned = prnu._whole_pces(pr.turns[0], prints[0])
    assert as_is == pytest.approx(prnu.pce(prnu._correlate(pr.turns[0], prints[0]), (0, 0))[0], rel=1e-4, abs=1e-3)
    assert turned == pytest.approx(prnu.pce(prnu._correlate(pr.turns[180], prints[0]), (0, 0))[0], rel=1e-4)
    det = prnu.detect(pr, prints[0])
    assert det.rotation == 180 and det.pce == pytest.approx(turned) and det.positions == 2


@pytest.mark.parametrize("shape", [(7, 9), (4, 3), (33, 20), (1, 12), (16, 5)])
def test_pce_from_the_spectrum_equals_pce_of_the_surface(shape: tuple[int, int]) -> None:
    """The whole-photo PCE without an inverse transform (Parseval for the energy, the 5x5
    block from two small DFTs) against pce() of the surface itself, odd and tiny sizes
    included (fewer neighbours than 5x5, a Nyquist column or none)."""
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    k = rng.normal(0, 1, shape).astype(np.float32)
    fp = prnu.Fingerprint(k, 1)
    for planted in (0.0, 0.3):
        test = (rng.normal(0, 1, shape) + planted * (k - k.mean())).astype(np.float32)
        as_is, turned = prnu._whole_pces(test, fp)
        assert as_is == pytest.approx(prnu.pce(prnu._correlate(test, fp), (0, 0))[0], rel=1e-4, abs=1e-6)
        assert turned == pytest.approx(prnu.pce(prnu._correlate(np.rot90(test, 2), fp), (0, 0))[0],
                                       rel=1e-4, abs=1e-6)


def test_zero_mean_is_per_sub_lattice_columns_then_rows() -> None:
    """The compiled pass against the definition written with numpy slices, odd sizes too."""
    rng = np.random.default_rng(21)
    for shape in ((1, 1), (1, 6), (3, 1), (7, 9), (40, 33)):
        x = rng.normal(4, 3, shape).astype(np.float32)
        want = x.astype(np.float64)
        for i in (0, 1):
            for j in (0, 1):
                sub = want[i::2, j::2]
                if sub.size:
                    sub -= sub.mean(axis=0, keepdims=True)
                    sub -= sub.mean(axis=1, keepdims=True)
        np.testing.assert_allclose(prnu.zero_mean(x), want, atol=1e-5)


def test_unitary_transforms_agree_with_and_without_in_place_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spectra are unitary (norm="ortho"): the inverse gives the array back, and the
    numpy < 2 path (no ``out=``: rfft2 / irfft2 whole) gives the same spectra."""
    x = np.random.default_rng(8).normal(0, 3, (24, 30)).astype(np.float32)
    f = prnu._rfft2(x)
    assert f.dtype == np.complex64 and f.shape == (24, 16)
    np.testing.assert_allclose(np.sum(np.abs(f[:, 1:15]) ** 2) * 2 + np.sum(np.abs(f[:, [0, 15]]) ** 2),
                               np.sum(x.astype(np.float64) ** 2), rtol=1e-5)  # Parseval, unitary
    np.testing.assert_allclose(prnu._irfft2(f.copy(), x.shape, overwrite=True), x, atol=1e-5)
    monkeypatch.setattr(prnu, "_FFT_OUT", False)
    np.testing.assert_allclose(prnu._rfft2(x), f, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(prnu._irfft2(f, x.shape), x, atol=1e-5)
