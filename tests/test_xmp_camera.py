"""IPTC digital source type and generator names (XMP, EXIF) and camera traces."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin, features

from assay.errors import DecodeError
from assay.provenance import camera, xmp
from assay.provenance.analyzer import analyze_provenance
from assay.provenance.context import ImageContext

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def packet(body: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'{body}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def attr_packet(term: str, extra: str = "") -> bytes:
    return packet(
        '<rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{term}" {extra}/>'
    )


def image_with_xmp(fmt: str, xmp_packet: bytes) -> ImageContext:
    im = Image.new("RGB", (32, 32), (40, 80, 120))
    buf = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp_packet.decode())
        im.save(buf, "PNG", pnginfo=info)
    else:
        im.save(buf, fmt.upper(), xmp=xmp_packet)
    return ImageContext(Path(f"x.{fmt}"), buf.getvalue(), fmt)


# -- vocabulary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "claim"),
    [
        (IPTC + "trainedAlgorithmicMedia", "ai-generated"),
        ("trainedAlgorithmicMedia", "ai-generated"),
        (IPTC + "compositeWithTrainedAlgorithmicMedia", "ai-edited"),
        (IPTC + "compositeSynthetic", "edited"),
        (IPTC + "algorithmicMedia", "unknown"),
        (IPTC + "digitalCapture", "camera-captured"),
        (IPTC + "computationalCapture", "camera-captured"),
        (IPTC + "screenCapture", "unknown"),
        (IPTC + "humanEdits", "edited"),
    ],
)
def test_iptc_vocabulary(value: str, claim: str) -> None:
    st_ = xmp.digital_source_type(value)
    assert st_ is not None and st_.claim == claim
    assert st_.uri.startswith(IPTC)


def test_unknown_source_type_is_none() -> None:
    assert xmp.digital_source_type(IPTC + "madeUpTerm") is None
    assert xmp.digital_source_type("") is None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Adobe Firefly", "Adobe Firefly"),
        ("DALL·E", "OpenAI DALL-E / ChatGPT"),
        ("Made with OpenAI", "OpenAI DALL-E / ChatGPT"),
        ("Midjourney v6", "Midjourney"),
        ("NovelAI", "NovelAI"),
        ("ComfyUI", "ComfyUI"),
        ("Stable Diffusion XL", "Stable Diffusion"),
        ("Leonardo.Ai", "Leonardo.Ai"),
        ("Ideogram", "Ideogram"),
        ("Made with Google AI", "Google Imagen / Gemini"),
        ("Imagen 3", "Google Imagen / Gemini"),
        ("Firefly Image 3", "Adobe Firefly"),
    ],
)
def test_known_generators(text: str, name: str) -> None:
    assert xmp.known_generator(text) == name


@pytest.mark.parametrize(
    "text",
    [
        "Adobe Photoshop 25.0 (Windows)",
        "Adobe Lightroom 5.3 (Macintosh)",
        "GIMP 2.10",
        "Leonardo da Vinci",
        "Ver.1.0",
        "Picasa",
        "",
        "firefly_lane.jpg",
        "FLIR Firefly FFY-U3",  # a machine-vision camera, not Adobe's generator
        "Editor de imagen",  # Spanish "image", not Google Imagen
        "Gemini Photos",  # a photo-cleaning app
    ],
)
def test_not_generators(text: str) -> None:
    assert xmp.known_generator(text) is None


# -- XMP scanning ----------------------------------------------------------------------


def test_scan_reads_attribute_element_and_alt_forms() -> None:
    p = packet(
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        "xmp:CreatorTool='Midjourney &amp; friends'>"
        f"<Iptc4xmpExt:DigitalSourceType>{IPTC}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"
        '<tiff:Software>\n <rdf:Alt>\n  <rdf:li xml:lang="x-default">NovelAI</rdf:li></rdf:Alt></tiff:Software>'
        f'<plus:Other rdf:resource="x"/><Iptc4xmpExt:DigitalSourceType rdf:resource="{IPTC}digitalCapture"/>'
        "</rdf:Description>"
    )
    f = xmp.scan_xmp(p)
    assert f.creator_tool == ["Midjourney & friends"]
    assert f.digital_source_type == [IPTC + "trainedAlgorithmicMedia", IPTC + "digitalCapture"]
    assert f.software == ["NovelAI"]


def test_entities_are_not_expanded() -> None:
    # A billion-laughs packet: a real XML parser with entity expansion would blow up.
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + "".join(
            f'<!ENTITY {c}{i} "&{c}{i - 1};&{c}{i - 1};">'.replace(f"&{c}0;", "&a;")
            for c in "b"
            for i in range(1, 30)
        )
        + "]>"
    ).encode()
    p = bomb + attr_packet("trainedAlgorithmicMedia", 'xmp:CreatorTool="&b29;"')
    # Memory, not time: &b29; expands to 10 * 2**29 bytes, so any expansion at all (even
    # a few levels of it) shows up in the peak long before it could finish.
    tracemalloc.start()
    try:
        f = xmp.scan_xmp(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * len(p)
    assert f.creator_tool == ["&b29;"]
    assert f.digital_source_type == [IPTC + "trainedAlgorithmicMedia"]


def test_oversized_packet_is_capped() -> None:
    p = attr_packet("trainedAlgorithmicMedia") + b" " * (xmp.MAX_XMP_SCAN + 10)
    f = xmp.scan_xmp(p)
    assert f.capped
    assert f.digital_source_type


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_scan_never_fails_on_junk(data: bytes) -> None:
    f = xmp.scan_xmp(data)
    assert isinstance(f.digital_source_type, list)
    xmp.xmp_evidence(data)


@settings(max_examples=40, deadline=None)
@given(junk=st.text(alphabet="<>=\"' :/&;#abcDigitalSourceTypeCreatorTool", max_size=300))
def test_scan_survives_malformed_markup(junk: str) -> None:
    # Junk after a well-formed attribute must neither crash the scan nor hide it.
    f = xmp.scan_xmp(attr_packet("trainedAlgorithmicMedia", junk))
    assert f.digital_source_type[0] == IPTC + "trainedAlgorithmicMedia"


def _camera_jpeg_with_xmp() -> bytes:
    ex = Image.Exif()
    ex[0x010F], ex[0x0110], ex[0x0131] = "Canon", "EOS 5D", "Adobe Photoshop 25.0"
    ex.get_ifd(0x8769)[0x9003] = "2020:01:01 10:00:00"
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (90, 60, 30)).save(
        buf, "JPEG", exif=ex, xmp=attr_packet("digitalCapture", 'xmp:CreatorTool="Midjourney"')
    )
    return buf.getvalue()


_CAMERA_JPEG = _camera_jpeg_with_xmp()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_metadata_never_crashes(data: st.DataObject) -> None:
    # Mutate the metadata segments (EXIF, XMP) of a JPEG; every source either finds
    # something or reports an error naming the file, and camera traces stay weak.
    buf = bytearray(_CAMERA_JPEG)
    end = _CAMERA_JPEG.find(b"\xff\xdb")  # first quantisation table: metadata is before it
    for _ in range(data.draw(st.integers(1, 8))):
        buf[data.draw(st.integers(2, end - 1))] = data.draw(st.integers(0, 255))
    report = analyze_provenance(Path("mut.jpg"), bytes(buf), "jpeg")
    for err in report.errors:
        assert "mut.jpg" in err.message
    for e in report.evidence:
        if e.source == "camera":
            assert e.strength == "weak"


def test_unmutated_camera_jpeg_shows_the_conflict() -> None:
    report = analyze_provenance(Path("c.jpg"), _CAMERA_JPEG, "jpeg")
    assert report.verdict.startswith("AI-generated: generator metadata (Midjourney)")
    assert "conflicting:" in report.verdict


# -- evidence per container --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_digital_source_type_in_each_container(fmt: str) -> None:
    ctx = image_with_xmp(fmt, attr_packet("trainedAlgorithmicMedia"))
    (e,) = xmp.evidence(ctx)
    assert (e.source, e.claim, e.strength) == ("iptc", "ai-generated", "moderate")
    assert e.facts["digital_source_type"] == IPTC + "trainedAlgorithmicMedia"
    report = analyze_provenance(ctx.path, ctx.data, fmt)
    assert report.verdict.startswith(
        "AI-generated: IPTC digital source type trainedAlgorithmicMedia"
    )


@pytest.mark.parametrize("credit", ["Gemini Studios", "Flux Photography Ltd", "Dream Machine Productions",
                                    "Photo: Grok Media"])
def test_a_credit_line_that_reads_like_a_generator_is_only_a_hint(credit: str) -> None:
    """A credit line names the photographer or agency: one whose name contains a
    generator's word made the headline 'AI-edited: generator metadata (...)' for a plain
    photo; it is now weak ('possibly', quoting the credit line); CreatorTool naming the
    generator beside it is still the headline."""
    body = ('<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            f'photoshop:Credit="{credit}"/>')
    ctx = image_with_xmp("jpeg", packet(body))
    (e,) = xmp.evidence(ctx)
    assert (e.claim, e.strength) == ("ai-edited", "weak")
    verdict = analyze_provenance(ctx.path, ctx.data, "jpeg").verdict
    assert verdict.startswith(f"possibly AI-edited (weak): XMP Credit '{credit}' (looks like "), verdict
    tool = ('<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            'xmp:CreatorTool="Midjourney"/>')
    ctx = image_with_xmp("jpeg", packet(body + tool))
    assert analyze_provenance(ctx.path, ctx.data, "jpeg").verdict.startswith(
        "AI-generated: generator metadata (Midjourney)")


def _saved(fmt: str, **kw: object) -> bytes:
    """A small pattern saved as ``fmt`` (TIFF, AVIF, HEIF) with Pillow's metadata options."""
    if fmt == "heif":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
    if fmt == "avif" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    im = Image.new("RGB", (32, 32), (40, 80, 120))
    buf = io.BytesIO()
    im.save(buf, fmt.upper(), **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def _gif_with_xmp(pk: bytes) -> bytes:
    """A GIF with XMP's application extension before its image: the packet as raw bytes,
    then the 258-byte magic trailer that makes GIF readers skip it as sub-blocks."""
    buf = io.BytesIO()
    Image.new("P", (32, 32), 3).save(buf, "GIF")
    gif = buf.getvalue()
    flags = gif[10]
    at = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # after the colour table
    ext = b"!\xff\x0bXMP DataXMP" + pk + b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    return gif[:at] + ext + gif[at:]


# exiftool reads XMP and EXIF in all of these; assay read neither in HEIF/AVIF nor XMP in
# TIFF and GIF.
@pytest.mark.parametrize("fmt", ["tiff", "avif", "heif", "gif"])
def test_digital_source_type_in_tiff_heif_avif(fmt: str) -> None:
    pk = attr_packet("trainedAlgorithmicMedia")
    if fmt == "gif":
        data = _gif_with_xmp(pk)
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # still a GIF its readers decode
    else:
        data = _saved(fmt, tiffinfo={700: pk}) if fmt == "tiff" else _saved(fmt, xmp=pk)
    report = analyze_provenance(Path(f"x.{fmt}"), data, fmt)
    assert report.verdict.startswith("AI-generated: IPTC digital source type trainedAlgorithmicMedia")
    (e,) = [e for e in report.evidence if e.source == "iptc"]
    assert e.facts["digital_source_type"] == IPTC + "trainedAlgorithmicMedia"


@pytest.mark.parametrize("fmt", ["avif", "heif"])
def test_exif_of_heif_and_avif_is_read(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    report = analyze_provenance(Path(f"x.{fmt}"), _saved(fmt, exif=exif.tobytes()), fmt)
    assert report.verdict == "camera traces only (weak)"
    (e,) = [e for e in report.evidence if e.source == "camera"]
    assert (e.facts["make"], e.facts["model"]) == ("Apple", "iPhone 15 Pro")
    # ComfyUI's AVIF/WebP form: the graph in EXIF Model is the generator's, not a camera.
    graph = '{"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}}}'
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + graph
    report = analyze_provenance(Path(f"x.{fmt}"), _saved(fmt, exif=exif.tobytes()), fmt)
    assert report.verdict.startswith("AI-generated: generator metadata (ComfyUI)")
    assert all(e.source != "camera" for e in report.evidence)


def test_heif_metadata_unreadable_without_its_reader_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _saved("heif", xmp=attr_packet("trainedAlgorithmicMedia"))
    ctx = ImageContext(Path("x.heic"), data, "heif")
    monkeypatch.setattr(ctx, "pil", lambda: (_ for _ in ()).throw(DecodeError(ctx.path, "no reader")))
    assert ctx.xmp() is None and ctx.exif() == {}
    assert ctx.problems == ["EXIF and XMP not read: no reader"]


def test_declared_capture_stays_weak() -> None:
    ctx = image_with_xmp("jpeg", attr_packet("digitalCapture"))
    (e,) = xmp.evidence(ctx)
    assert (e.claim, e.strength) == ("camera-captured", "weak")


def test_history_agent_is_ai_edited_not_generated() -> None:
    p = packet(
        '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Adobe Photoshop 25.0">'
        '<xmpMM:History><rdf:Seq><rdf:li stEvt:action="saved" stEvt:softwareAgent="Adobe Firefly"/>'
        "</rdf:Seq></xmpMM:History></rdf:Description>"
    )
    (e,) = xmp.evidence(image_with_xmp("jpeg", p))
    assert (e.claim, e.facts["field"]) == ("ai-edited", "XMP history softwareAgent")


def test_creator_tool_names_generator() -> None:
    p = packet(
        '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Adobe Firefly"/>'
    )
    (e,) = xmp.evidence(image_with_xmp("jpeg", p))
    assert (e.source, e.claim, e.facts["generator"]) == ("xmp", "ai-generated", "Adobe Firefly")


def jpeg_with_exif(**tags: object) -> ImageContext:
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    for key, value in tags.items():
        tag = int(key[1:], 16)
        (sub if tag >= 0x8000 else ex)[tag] = value
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, "JPEG", exif=ex, quality=85)
    return ImageContext(Path("e.jpg"), buf.getvalue(), "jpeg")


def test_exif_software_generator() -> None:
    ctx = jpeg_with_exif(t0131="NovelAI")
    (e,) = xmp.evidence(ctx)
    assert (e.source, e.facts["generator"], e.facts["field"]) == (
        "exif",
        "NovelAI",
        "EXIF Software",
    )


# -- camera traces ----------------------------------------------------------------------


def test_real_camera_photo_is_weak_camera_trace(testdata: Path) -> None:
    f = testdata / "c2pa" / "P1000827.jpg"
    report = analyze_provenance(f, f.read_bytes(), "jpeg")
    cam = [e for e in report.evidence if e.source == "camera"]
    assert len(cam) == 1
    c = cam[0]
    assert (c.claim, c.strength) == ("camera-captured", "weak")
    assert (c.facts["make"], c.facts["model"]) == ("Panasonic", "DMC-ZS60")
    assert c.facts["datetime_original"] == "2019:06:07 14:56:19"
    assert c.facts["serial_number_present"] is True
    assert "lens" not in c.facts  # "N/A" is a placeholder, not a lens
    assert c.facts["jpeg_tables"]["family"] == "non-ijg"  # Lightroom's own tables
    assert any(e.claim == "edited" and "Lightroom" in e.summary for e in report.evidence)
    assert report.verdict == "camera traces only (weak)"
    assert "not proof of a camera original" in c.summary


def test_camera_fields_gps_makernote_thumbnail() -> None:
    ex = Image.Exif()
    ex[0x010F], ex[0x0110] = "Canon", "EOS 5D"
    ex.get_ifd(0x8825)[1] = "N"
    sub = ex.get_ifd(0x8769)
    sub[0x9003] = "2020:01:01 10:00:00"
    sub[0x927C] = b"MAKERNOTE"
    sub[0xA434] = "EF50mm f/1.8"
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "JPEG", exif=ex)
    facts = camera.camera_facts(ImageContext(Path("c.jpg"), buf.getvalue(), "jpeg"))
    assert facts["gps_present"] and facts["makernote_present"]
    assert facts["lens"] == "EF50mm f/1.8"
    assert "thumbnail_present" not in facts  # Pillow writes no IFD1


def test_comfyui_workflow_in_make_is_not_a_camera() -> None:
    ex = Image.Exif()
    ex[0x010F] = 'workflow:{"nodes": []}'
    ex[0x0110] = 'prompt:{"3": {"class_type": "KSampler"}}'
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "WEBP", exif=ex)
    ctx = ImageContext(Path("c.webp"), buf.getvalue(), "webp")
    assert "not_a_camera" in camera.camera_facts(ctx)
    assert [e for e in camera.evidence(ctx) if e.claim == "camera-captured"] == []


def test_generator_name_in_make_is_not_a_camera() -> None:
    ctx = jpeg_with_exif(t010f="Midjourney", t0110="v6")
    assert [e for e in camera.evidence(ctx) if e.claim == "camera-captured"] == []


@pytest.mark.parametrize("quality", [10, 50, 75, 90, 95, 100])
def test_ijg_quality_recovered_from_libjpeg_tables(quality: int) -> None:
    # Pillow's encoder is libjpeg(-turbo): its jpeg_set_quality tables are the reference.
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(buf, "JPEG", quality=quality)
    im = Image.open(buf)
    assert camera.classify_quant_tables(dict(im.quantization)) == {
        "family": "ijg",
        "quality": quality,
        "tables": 2,
    }


def test_custom_tables_are_non_ijg() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG", qtables=[[3] * 64, [5] * 64])
    got = camera.classify_quant_tables(dict(Image.open(buf).quantization))
    assert got["family"] == "non-ijg"
    assert camera.classify_quant_tables({0: [1, 2]})["family"] == "unreadable"


def test_broken_exif_is_an_evidence_error_not_a_crash() -> None:
    ctx = jpeg_with_exif(t010f="Canon")
    data = bytearray(ctx.data)
    i = data.find(b"Exif\x00\x00") + 6
    data[i + 4 : i + 8] = b"\xff\xff\xff\x00"  # IFD0 offset far outside the block
    report = analyze_provenance(Path("bad.jpg"), bytes(data), "jpeg")
    msgs = [e.message for e in report.errors]
    assert any("bad.jpg" in m and "EXIF" in m for m in msgs), msgs


# PNG's own 'Software' keyword (exiftool's PNG:Software) naming a generator was not read.
def test_png_software_keyword_names_generator() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "Midjourney")
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 80, 120)).save(buf, "PNG", pnginfo=info)
    report = analyze_provenance(Path("x.png"), buf.getvalue(), "png")
    (e,) = report.evidence
    assert (e.source, e.claim, e.strength) == ("png-text", "ai-generated", "moderate")
    assert e.facts["generator"] == "Midjourney" and e.facts["locations"] == ["png:tEXt:Software"]
    assert report.verdict == "AI-generated: generator metadata (Midjourney)"


def test_png_software_in_a_generator_record_is_not_repeated() -> None:
    # NovelAI writes Software "NovelAI" among the text chunks its source reads as one record.
    info = PngImagePlugin.PngInfo()
    comment = {"prompt": "a cat", "steps": 28, "sampler": "k_euler", "seed": 1, "scale": 5.0, "uc": "x"}
    for k, v in {"Title": "NovelAI generated image", "Description": "a cat", "Software": "NovelAI",
                 "Source": "NovelAI Diffusion V4.5 4BDE2A90", "Comment": json.dumps(comment)}.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 80, 120)).save(buf, "PNG", pnginfo=info)
    report = analyze_provenance(Path("x.png"), buf.getvalue(), "png")
    assert [e.source for e in report.evidence] == ["novelai"]


def _raw_profile(name: str, data: bytes) -> str:
    """ImageMagick's PNG text form of a profile: name, length, then hex in 72-column lines."""
    hexed = data.hex()
    lines = "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72))
    return f"\n{name}\n{len(data):8d}\n{lines}\n"


def _png_text(key: str, text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, text, zip=True)
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 80, 120)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


# exiftool reads ImageMagick's raw profiles (how `convert x.jpg x.png` keeps EXIF and XMP);
# assay read neither.
def test_imagemagick_raw_xmp_profile_in_png() -> None:
    data = _png_text("Raw profile type xmp", _raw_profile("xmp", attr_packet("trainedAlgorithmicMedia")))
    report = analyze_provenance(Path("x.png"), data, "png")
    assert report.verdict.startswith("AI-generated: IPTC digital source type trainedAlgorithmicMedia")


@pytest.mark.parametrize("name", ["exif", "APP1"])
def test_imagemagick_raw_exif_profile_in_png(name: str) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R5"
    raw = exif.tobytes()
    assert raw.startswith(b"Exif\x00\x00")
    data = _png_text(f"Raw profile type {name}", _raw_profile(name.lower(), raw))
    report = analyze_provenance(Path("x.png"), data, "png")
    (e,) = [e for e in report.evidence if e.source == "camera"]
    assert (e.facts["make"], e.facts["model"]) == ("Canon", "Canon EOS R5")


@pytest.mark.parametrize("text", ["\nexif\n  zz\nnot hex", "\nexif\n 8\nnothex!!", "\nexif\n 4\n",
                                  "\nexif\n" + "9" * 5000 + "\nabcd", "\nexif\n \u00b2\nabcd"])
def test_broken_raw_profile_is_noted_not_fatal(text: str) -> None:
    report = analyze_provenance(Path("x.png"), _png_text("Raw profile type exif", text), "png")
    assert report.verdict.startswith("no provenance evidence found")
    assert all(e.source == "container" for e in report.errors)



def _pantry_packet(container: str = "xmpMM:Pantry", top: str = "") -> bytes:
    return packet(
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'xmp:CreatorTool="Adobe Photoshop 25.0 (Windows)" {top}>'
        f"<{container}><rdf:Bag><rdf:li><rdf:Description xmp:CreatorTool=\"Midjourney\" "
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia"/></rdf:li></rdf:Bag>'
        f"</{container}></rdf:Description>"
    )


# Photoshop keeps the XMP of a placed smart object in xmpMM:Pantry; exiftool reports it as
# PantryDigitalSourceType / PantryCreatorTool. assay read both as the file's own: a photo
# composite with one Midjourney element read "AI-generated".
@pytest.mark.parametrize("container", ["xmpMM:Pantry", "xmpMM:Ingredients", "xmpMM:DerivedFrom"])
def test_placed_component_makes_the_file_ai_edited_not_generated(container: str) -> None:
    ctx = image_with_xmp("jpeg", _pantry_packet(container))
    evidence = xmp.evidence(ctx)
    assert {(e.source, e.claim) for e in evidence} == {("iptc", "ai-edited"), ("xmp", "ai-edited")}
    report = analyze_provenance(ctx.path, ctx.data, "jpeg")
    assert report.verdict.startswith(
        "AI-edited: IPTC digital source type trainedAlgorithmicMedia of a placed component"
    )


def test_many_empty_component_elements_cost_one_search_each() -> None:
    """50,000 empty ``<xmpMM:Ingredients/>`` (no closing tag anywhere) before a placed
    component: each searched the rest of the packet for its closing tag (~1 MB: minutes);
    the component is still found."""
    pk = _pantry_packet().replace(b"<xmpMM:Pantry>", b"<xmpMM:Ingredients/>" * 50_000 + b"<xmpMM:Pantry>", 1)
    facts = xmp.scan_xmp(pk)
    assert ("creator_tool", "Midjourney") in facts.components
    assert facts.creator_tool == ["Adobe Photoshop 25.0 (Windows)"] and not facts.capped


def test_own_source_type_beside_a_component_still_decides() -> None:
    top = f'Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia"'
    ctx = image_with_xmp("jpeg", _pantry_packet(top=top))
    report = analyze_provenance(ctx.path, ctx.data, "jpeg")
    assert report.verdict.startswith("AI-generated: IPTC digital source type trainedAlgorithmicMedia")
    facts = xmp.scan_xmp(_pantry_packet(top=top))
    assert facts.digital_source_type == [IPTC + "trainedAlgorithmicMedia"]
    assert ("creator_tool", "Midjourney") in facts.components



# The file's own XMP declares it a composite with generative-AI parts and names the AI
# system (IPTC 2025 AISystemUsed): the system made a part, the headline read "AI-generated".
def test_generator_named_in_a_declared_composite_is_ai_edited() -> None:
    pk = attr_packet("compositeWithTrainedAlgorithmicMedia",
                     'Iptc4xmpExt:AISystemUsed="Adobe Firefly Image 3"')
    ctx = image_with_xmp("jpeg", pk)
    assert {(e.source, e.claim) for e in xmp.evidence(ctx)} == {("iptc", "ai-edited"), ("xmp", "ai-edited")}
    report = analyze_provenance(ctx.path, ctx.data, "jpeg")
    assert report.verdict.startswith("AI-edited: ")
    # declared wholly generated: the generator's name stays a generation claim
    ctx = image_with_xmp("jpeg", attr_packet("trainedAlgorithmicMedia", 'Iptc4xmpExt:AISystemUsed="Adobe Firefly Image 3"'))
    assert {e.claim for e in xmp.evidence(ctx)} == {"ai-generated"}
