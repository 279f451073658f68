"""NovelAI metadata, LSB "stealth" data (alpha and RGB variants) and the Ed25519
``signed_hash``. Stealth data is embedded here by a small independent writer that
follows the published convention; signatures are made with a test key pair
injected as the trusted key (nobody but NovelAI can sign with theirs)."""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from assay.provenance.context import TAG_SOFTWARE, TAG_USER_COMMENT, ImageContext
from assay.provenance.generators import generator_evidence, novelai
from assay.provenance.generators.stealth import png_first_column, read_stealth

W, H = 48, 80  # not square, so a row/column mix-up cannot pass


def pattern(alpha: bool = True) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 5) % 256, (y * 3) % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    if not alpha:
        return rgb
    return np.concatenate([rgb, np.full((H, W, 1), 255, np.uint8)], axis=-1)


def embed(arr: np.ndarray, magic: str, payload: bytes, declared_bits: int | None = None) -> None:
    """Write magic, 32-bit bit length and payload into LSBs, column by column."""
    stream = magic.encode() + (declared_bits if declared_bits is not None
                               else len(payload) * 8).to_bytes(4, "big") + payload  # fmt: skip
    bits = [(byte >> (7 - i)) & 1 for byte in stream for i in range(8)]
    channels = [3] if magic.startswith("stealth_png") else [0, 1, 2]
    for n, bit in enumerate(bits):
        pixel, ch = divmod(n, len(channels))
        x, y = divmod(pixel, H)
        c = channels[ch]
        arr[y, x, c] = (int(arr[y, x, c]) & 0xFE) | bit


def encode(arr: np.ndarray, fmt: str = "PNG", texts: dict[str, str] | None = None,
           exif: bytes | None = None) -> bytes:  # fmt: skip
    info = PngInfo()
    for k, v in (texts or {}).items():
        info.add_text(k, v)
    bio = io.BytesIO()
    kw: dict[str, Any] = {"pnginfo": info} if fmt == "PNG" else {"lossless": True, "exact": True}
    if exif is not None:
        kw["exif"] = exif
    Image.fromarray(arr).save(bio, fmt, **kw)
    return bio.getvalue()


def ctx_of(data: bytes, fmt: str = "png") -> ImageContext:
    return ImageContext(Path(f"nai.{fmt}"), data, fmt)


INFOTEXT = "a kite\nNegative prompt: rain\nSteps: 12, Sampler: Euler a, Seed: 31337, Model hash: 0011223344"
COMMENT = {"prompt": "1girl, umbrella", "steps": 28, "height": H, "width": W, "scale": 5.0,
           "uncond_scale": 0.0, "cfg_rescale": 0.0, "seed": 1234567, "n_samples": 1,
           "noise_schedule": "karras", "sampler": "k_euler_ancestral", "uc": "lowres, bad"}  # fmt: skip
SOURCE = "NovelAI Diffusion V4.5 4BDE2A90"


def nai_fields(comment: dict[str, Any]) -> dict[str, str]:
    return {"Title": "NovelAI generated image", "Description": "1girl, umbrella",
            "Software": "NovelAI", "Source": SOURCE, "Comment": json.dumps(comment)}  # fmt: skip


# -- stealth reader ----------------------------------------------------------------


@pytest.mark.parametrize("magic", ["stealth_pnginfo", "stealth_pngcomp",
                                   "stealth_rgbinfo", "stealth_rgbcomp"])  # fmt: skip
def test_stealth_variants_carry_an_a1111_infotext(magic: str) -> None:
    rgb_only = "rgb" in magic
    arr = pattern(alpha=not rgb_only)
    raw = INFOTEXT.encode()
    embed(arr, magic, gzip.compress(raw) if magic.endswith("comp") else raw)
    ctx = ctx_of(encode(arr))
    [payload] = read_stealth(ctx)
    assert (payload.magic, payload.text) == (magic, INFOTEXT)
    evidence, errors = generator_evidence(ctx)
    [ev] = evidence
    assert ev.source == "a1111" and errors == []
    assert ev.facts["locations"] == [f"stealth:{'rgb' if rgb_only else 'alpha'}"]
    assert (ev.facts["seed"], ev.facts["negative_prompt"]) == (31337, "rain")


def test_plain_images_have_no_stealth_data() -> None:
    assert read_stealth(ctx_of(encode(pattern()))) == []
    assert read_stealth(ctx_of(encode(pattern(alpha=False)))) == []
    tiny = np.zeros((2, 2, 4), np.uint8)
    assert read_stealth(ctx_of(encode(tiny))) == []


def test_stealth_in_lossless_webp() -> None:
    arr = pattern()
    embed(arr, "stealth_pngcomp", gzip.compress(INFOTEXT.encode()))
    [payload] = read_stealth(ctx_of(encode(arr, "WEBP"), "webp"))
    assert payload.text == INFOTEXT


def test_huge_declared_length_is_an_error_without_allocation() -> None:
    arr = pattern()
    embed(arr, "stealth_pngcomp", b"", declared_bits=0xFFFFFFFF)
    evidence, errors = generator_evidence(ctx_of(encode(arr)))
    assert evidence == []
    assert [e.source for e in errors] == ["stealth"]
    assert "declares 4294967295 bits" in errors[0].message and "nai.png" in errors[0].message


def test_corrupt_gzip_payload_is_an_error() -> None:
    arr = pattern()
    embed(arr, "stealth_pngcomp", b"\x1f\x8b\x08\x00garbage-not-deflate")
    _, errors = generator_evidence(ctx_of(encode(arr)))
    assert [e.source for e in errors] == ["stealth"] and "gzip" in errors[0].message


def test_truncated_gzip_payload_is_an_error() -> None:
    arr = pattern()
    embed(arr, "stealth_pngcomp", gzip.compress(INFOTEXT.encode())[:20])
    _, errors = generator_evidence(ctx_of(encode(arr)))
    assert [e.source for e in errors] == ["stealth"] and "truncated" in errors[0].message


# -- NovelAI metadata ----------------------------------------------------------------


def test_novelai_text_chunks_unsigned() -> None:
    evidence, errors = generator_evidence(ctx_of(encode(pattern(), texts=nai_fields(COMMENT))))
    [ev] = evidence
    f = ev.facts
    assert (ev.source, ev.claim, ev.strength) == ("novelai", "ai-generated", "strong")
    assert (f["prompt"], f["negative_prompt"], f["seed"], f["steps"]) == (
        "1girl, umbrella", "lowres, bad", 1234567, 28)  # fmt: skip
    assert (f["sampler"], f["cfg_scale"], f["size"], f["model"]) == (
        "k_euler_ancestral", 5.0, f"{W}x{H}", SOURCE)  # fmt: skip
    assert f["signature"] == "absent" and errors == []


def test_novelai_alpha_copy_survives_stripped_text() -> None:
    arr = pattern()
    embed(arr, "stealth_pngcomp", gzip.compress(json.dumps(nai_fields(COMMENT)).encode()))
    [ev], errors = generator_evidence(ctx_of(encode(arr)))
    assert ev.source == "novelai" and ev.facts["locations"] == ["stealth:alpha"]
    assert ev.facts["seed"] == 1234567 and errors == []


def test_novelai_webp_exif_mapping() -> None:
    e = Image.Exif()
    e[0x010D] = "NovelAI generated image"  # DocumentName -> Title
    e[0x010E] = "1girl, umbrella"  # ImageDescription -> Description
    e[TAG_SOFTWARE] = SOURCE  # Software -> Source
    e.get_ifd(0x8769)[TAG_USER_COMMENT] = b"ASCII\x00\x00\x00" + json.dumps(COMMENT).encode()
    data = encode(pattern(), "WEBP", exif=e.tobytes())
    [ev], errors = generator_evidence(ctx_of(data, "webp"))
    assert ev.source == "novelai" and ev.facts["locations"] == ["exif:UserComment"]
    assert (ev.facts["model"], ev.facts["seed"]) == (SOURCE, 1234567) and errors == []


def test_novelai_malformed_comment_is_an_error() -> None:
    fields = nai_fields(COMMENT) | {"Comment": '{"steps": 28, "seed": '}
    evidence, errors = generator_evidence(ctx_of(encode(pattern(), texts=fields)))
    assert [e.source for e in errors] == ["novelai"]
    assert "malformed JSON" in errors[0].message and "nai.png" in errors[0].message
    assert all(e.source != "novelai" for e in evidence)


_FULL = json.dumps(COMMENT)  # names steps, seed, sampler, scale: parameter words
_BROKEN_COMMENTS = {
    "huge number": _FULL.replace('"seed": 1234567', '"seed": ' + "9" * 5000),  # ValueError in json
    "nested too deep": _FULL[:-1] + ', "extra": ' + "[" * 3000 + "]" * 3000 + "}",  # RecursionError
    "nested too deep, no words": "[" * 100_000,
    "cut short": _FULL[:-40],
}


@pytest.mark.parametrize(("broken", "marks"), [
    (broken, marks) for broken in sorted(_BROKEN_COMMENTS)
    for marks in (["Software", "Title"], ["Software"], ["Title"], ["Source"])
    if marks != ["Source"] or _BROKEN_COMMENTS[broken].startswith("{")  # else not NovelAI's by Source alone
])
def test_unreadable_novelai_comment_reads_the_same_whatever_broke_it(tmp_path: Path, broken: str,
                                                                    marks: list[str]) -> None:
    # With a huge number the Comment was re-read as "prompt-like text in no known format"
    # naming generation parameters: "possibly AI-generated (weak)"; nested too deep
    # without such words it read "no provenance evidence found". Metadata marked as
    # NovelAI's (Software, Title, or a NovelAI model in Source with a JSON object)
    # whose Comment cannot be read is NovelAI's error, whatever broke it; never a claim.
    from assay.provenance.analyzer import analyze_provenance

    fields = {k: v for k, v in nai_fields(COMMENT).items() if k in ("Description", "Comment", *marks)}
    fields["Comment"] = _BROKEN_COMMENTS[broken]
    path = tmp_path / "nai.png"
    path.write_bytes(encode(pattern(False), texts=fields))
    report = analyze_provenance(path, path.read_bytes(), "png")
    assert report.verdict == "no provenance evidence found; could not check: novelai"
    assert [e.claim for e in report.evidence if e.claim != "unknown"] == []
    (err,) = report.errors
    assert err.source == "novelai" and err.message.startswith(f"{path}: NovelAI Comment in PNG text chunks: ")
    assert "set_int_max_str_digits" not in err.message  # json's advice to programmers


@pytest.mark.parametrize("broken", ["huge number", "nested too deep", "cut short"])
def test_unreadable_novelai_json_in_stealth_data_is_an_error(broken: str) -> None:
    # The whole alpha-channel JSON unreadable (not just its Comment string) was skipped
    # in silence: "no provenance evidence found", nothing said about the data.
    arr = pattern()
    fields = {k: v for k, v in nai_fields(COMMENT).items() if k != "Comment"}
    payload = json.dumps(fields)[:-1] + ', "Comment": ' + _BROKEN_COMMENTS[broken] + "}"
    embed(arr, "stealth_pngcomp", gzip.compress(payload.encode()))
    evidence, errors = generator_evidence(ctx_of(encode(arr)))
    assert [e for e in evidence if e.claim != "unknown"] == []
    assert [e.source for e in errors] == ["novelai"]
    assert errors[0].message.startswith("nai.png: NovelAI data in alpha channel stealth data (stealth_pngcomp): ")


# -- signatures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keypair() -> tuple[Ed25519PrivateKey, str]:
    sk = Ed25519PrivateKey.generate()
    pk = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return sk, base64.b64encode(pk).decode()


def signed_comment(sk: Ed25519PrivateKey, rgb: np.ndarray) -> dict[str, Any]:
    # What NovelAI signs: RGB bytes (row-major, H x W x 3), then json.dumps(comment).
    message = np.ascontiguousarray(rgb).tobytes() + json.dumps(COMMENT).encode("utf-8")
    return {**COMMENT, "signed_hash": base64.b64encode(sk.sign(message)).decode()}


def signed_image(sk: Ed25519PrivateKey) -> tuple[np.ndarray, dict[str, Any]]:
    arr = pattern()
    comment = signed_comment(sk, arr[:, :, :3])
    embed(arr, "stealth_pngcomp", gzip.compress(json.dumps(nai_fields(comment)).encode()))
    return arr, comment


def by_location(evidence: list[Any]) -> dict[str, Any]:
    return {e.facts["locations"][0]: e for e in evidence}


def test_valid_signature_is_cryptographic(keypair: tuple[Ed25519PrivateKey, str]) -> None:
    sk, pk = keypair
    arr, comment = signed_image(sk)
    ctx = ctx_of(encode(arr, texts=nai_fields(comment)))
    found = by_location(novelai.evidence(ctx, public_key=pk))
    assert set(found) == {"png:tEXt:Title", "stealth:alpha"}
    for ev in found.values():
        assert (ev.claim, ev.strength, ev.facts["signature"]) == (
            "ai-generated", "cryptographic", "valid")  # fmt: skip


def test_same_image_under_novelai_key_does_not_verify(keypair: tuple[Ed25519PrivateKey, str]) -> None:
    arr, comment = signed_image(keypair[0])
    [ev] = novelai.evidence(ctx_of(encode(arr, texts={})))  # default: NovelAI's key
    assert (ev.strength, ev.facts["signature"]) == ("moderate", "invalid")


def test_tampered_pixel_breaks_both_signatures(keypair: tuple[Ed25519PrivateKey, str]) -> None:
    sk, pk = keypair
    arr, comment = signed_image(sk)
    arr[H - 1, W - 1, 0] ^= 0x10  # far from the stealth data; alpha untouched
    found = by_location(novelai.evidence(ctx_of(encode(arr, texts=nai_fields(comment))), pk))
    for ev in found.values():
        assert (ev.claim, ev.strength, ev.facts["signature"]) == (
            "ai-generated", "moderate", "invalid")  # fmt: skip
        assert "changed after signing" in ev.summary


def test_tampered_metadata_breaks_only_that_copy(keypair: tuple[Ed25519PrivateKey, str]) -> None:
    sk, pk = keypair
    arr, comment = signed_image(sk)
    forged = {**comment, "seed": 7}
    found = by_location(novelai.evidence(ctx_of(encode(arr, texts=nai_fields(forged))), pk))
    assert found["png:tEXt:Title"].facts["signature"] == "invalid"
    assert found["stealth:alpha"].facts["signature"] == "valid"


def test_garbage_signed_hash_is_invalid_not_a_crash(keypair: tuple[Ed25519PrivateKey, str]) -> None:
    for bad in ("not base64!!", base64.b64encode(b"short").decode()):
        comment = {**COMMENT, "signed_hash": bad}
        [ev] = novelai.evidence(ctx_of(encode(pattern(), texts=nai_fields(comment))), keypair[1])
        assert ev.facts["signature"] == "invalid" and ev.facts["signature_problem"]


def test_shared_fixture_against_the_real_key(testdata: Path) -> None:
    path = testdata / "genmeta/parsers/NovelAI/novelai1_cropped.png"
    raw = path.read_bytes()
    # The public fixture is a 1x1 crop whose Comment carries no signed_hash, so
    # NovelAI's key cannot be exercised on it; the record must say so.
    assert b"signed_hash" not in raw
    [ev] = novelai.evidence(ImageContext.from_path(path))
    assert ev.facts["signature"] == "absent" and ev.strength == "strong"


# -- the PNG first-column shortcut ---------------------------------------------------


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def png_with_filters(arr: np.ndarray, filters: list[int], interlace: int = 0) -> bytes:
    """A PNG written by hand, each row with the given filter type (PNG spec 9.2)."""
    import struct
    import zlib

    h, w, bpp = arr.shape
    a = arr.astype(np.int32).reshape(h, w * bpp)
    out = bytearray()
    for r in range(h):
        x = a[r]
        up = a[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        preds = {1: left, 2: up, 3: (left + up) // 2, 4: _paeth(left, up, upleft)}
        pred = preds.get(filters[r], 0)  # an invalid type (5+) is written unfiltered
        out += bytes([filters[r]]) + ((x - pred) & 0xFF).astype(np.uint8).tobytes()

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if bpp == 4 else 2, 0, 0, interlace)
    z = zlib.compress(bytes(out))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", z[: len(z) // 2])
            + chunk(b"IDAT", z[len(z) // 2 :]) + chunk(b"IEND", b""))  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(1, 9), h=st.integers(120, 130), bpp=st.sampled_from([3, 4]),
    seed=st.integers(0, 2**32 - 1), filters=st.lists(st.integers(0, 4), min_size=130, max_size=130),
)  # fmt: skip
def test_png_first_column_matches_a_full_decode(
    w: int, h: int, bpp: int, seed: int, filters: list[int]
) -> None:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, bpp), dtype=np.uint8)
    data = png_with_filters(arr, filters)
    ctx = ctx_of(data)
    assert np.array_equal(ctx.pixels(), arr)  # the hand-written PNG is what we meant
    col = png_first_column(ctx, 120)
    assert col is not None and np.array_equal(col, arr[:120, 0, :])


def test_first_column_shortcut_finds_magic_in_filtered_rows() -> None:
    arr = pattern()
    embed(arr, "stealth_pnginfo", INFOTEXT.encode())
    filters = [(r * 7) % 5 for r in range(H)]  # every filter type, in column 0 too
    [payload] = read_stealth(ctx_of(png_with_filters(arr, filters)))
    assert payload.text == INFOTEXT


def test_first_column_shortcut_declines_what_it_cannot_read() -> None:
    arr = pattern()
    assert png_first_column(ctx_of(png_with_filters(arr, [0] * H, interlace=1)), 40) is None
    assert png_first_column(ctx_of(encode(pattern()[:50])), 120) is None  # too short
    bad_filter = png_with_filters(arr, [5 if r == 3 else 0 for r in range(H)])
    assert png_first_column(ctx_of(bad_filter), 120) is None


def test_plain_tall_png_is_ruled_out_without_a_full_decode() -> None:
    tall = np.zeros((200, 30, 4), np.uint8)
    tall[..., 3] = 255
    ctx = ctx_of(encode(tall))
    assert read_stealth(ctx) == []
    assert "pixels" not in ctx._memo  # the first-column shortcut answered


# NovelAI's inpainting: request_type "NativeInfillingRequest" ("Inpainting" in its own
# metadata inspector) regenerates a masked part of an input image: AI-edited.
def test_novelai_inpainting_is_ai_edited() -> None:
    comment = {**COMMENT, "request_type": "NativeInfillingRequest"}
    [ev] = generator_evidence(ctx_of(encode(pattern(), texts=nai_fields(comment))))[0]
    assert (ev.claim, ev.strength) == ("ai-edited", "strong")
    assert ev.facts["edit"] == "request_type NativeInfillingRequest"
    assert "it records an edit of an input image" in ev.summary
    [ev] = generator_evidence(ctx_of(encode(pattern(), texts=nai_fields(
        {**COMMENT, "request_type": "PromptGenerateRequest"}))))[0]  # fmt: skip
    assert ev.claim == "ai-generated" and ev.facts["request_type"] == "PromptGenerateRequest"


def test_signed_novelai_inpainting_is_cryptographic_and_ai_edited(
    keypair: tuple[Ed25519PrivateKey, str],
) -> None:
    sk, pk = keypair
    arr = pattern()
    comment = {**COMMENT, "request_type": "NativeInfillingRequest"}
    message = np.ascontiguousarray(arr[:, :, :3]).tobytes() + json.dumps(comment).encode("utf-8")
    comment["signed_hash"] = base64.b64encode(sk.sign(message)).decode()
    [ev] = novelai.evidence(ctx_of(encode(arr, texts=nai_fields(comment))), public_key=pk)
    assert (ev.claim, ev.strength, ev.facts["signature"]) == ("ai-edited", "cryptographic", "valid")
