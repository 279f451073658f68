"""Provenance of one 1-MP image: assay vs chaining the tools a user would run.

    .venv/bin/python bench/bench_provenance.py [--repeat 15] [--study]

The test image is generated here (a benign gradient-and-noise pattern, 1024x1024)
and carries every kind of evidence at once: the SDXL DWT-DCT watermark (embedded by
invisible-watermark's own encoder), an A1111 ``parameters`` block in EXIF
UserComment, an XMP IPTC DigitalSourceType, and a C2PA manifest signed with the
public C2PA test key (trainedAlgorithmicMedia). Both sides must report all four.

The chain a user would otherwise run, set up as a batch user would (one process,
every tool started once):
  exiftool -j -G (XMP/EXIF/IPTC/camera fields) through ONE `exiftool -stay_open True
  -@ -` process fed a file at a time, sd-parsers (generator metadata), c2pa-python
  Reader (Content Credentials), and invisible-watermark's dwtDct decoder run ONCE per
  image on cv2.imread pixels, for the SDXL payload (a second or third decode, for the
  SD 1.x / 2.x payloads, would cost as much again: assay checks all three in its one pass).
assay: analyze_provenance(path, bytes, format) — all of the above plus the verdict.

Timings interleave the two sides, repeat, and report median and p95 per image.
``--study`` also measures watermark false positives on the shared PDQ photos and
survival under re-encoding.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from assay.provenance import watermark as wm
from assay.provenance.analyzer import analyze_provenance

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "testdata"
sys.path.insert(0, str(ROOT / "tests"))

from wmref import embed, load_maxdct, pattern, published_bits  # noqa: E402  (the independent encoder)

C2 = SHARED / "c2pa"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def make_test_image(maxdct: ModuleType, out: Path) -> None:
    import c2pa

    rgb = embed(maxdct, pattern(1024, 1024, 1), published_bits("sdxl"))
    exif = Image.Exif()
    params = (
        "a benign test pattern\nNegative prompt: none\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
        "Seed: 1, Size: 1024x1024, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: v1.6.0"
    )
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + params.encode("utf-16-be")
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>'
    ).encode()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, subsampling=0, exif=exif, xmp=xmp)
    manifest = {
        "claim_generator_info": [{"name": "assay-bench", "version": "1"}],
        "format": "image/jpeg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created", "softwareAgent": "BenchGen",
            "digitalSourceType": IPTC + "trainedAlgorithmicMedia"}]}}],
    }  # fmt: skip
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256,
        (C2 / "es256_certs.pem").read_bytes(),
        (C2 / "es256_private.key").read_bytes(),
        None,
    )
    signed = io.BytesIO()
    buf.seek(0)
    c2pa.Builder.from_json(manifest).sign(c2pa.Signer.from_info(info), "image/jpeg", buf, signed)
    out.write_bytes(signed.getvalue())


# -- the two sides -----------------------------------------------------------------------


class ExiftoolBatch:
    """One exiftool process for the whole run (``-stay_open``), as batch users run it:
    each file costs a request, not a Perl start-up."""

    def __init__(self, exe: str) -> None:
        self.proc = subprocess.Popen([exe, "-stay_open", "True", "-@", "-"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def json(self, path: Path) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"-j\n-G\n{path}\n-execute\n".encode())
        self.proc.stdin.flush()
        out = b""
        while not out.endswith(b"{ready}\n"):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("exiftool stopped")
            out += line
        return json.loads(out[: -len(b"{ready}\n")])[0]

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(b"-stay_open\nFalse\n")
        self.proc.stdin.flush()
        self.proc.wait(10)


def run_assay(path: Path) -> dict[str, object]:
    report = analyze_provenance(path, path.read_bytes(), "jpeg")
    by = {e.source: e for e in report.evidence}
    wmark = by.get("watermark")
    return {
        "c2pa": by["c2pa"].facts["digital_source_types"] if "c2pa" in by else None,
        "iptc": by["iptc"].facts["term"] if "iptc" in by else None,
        "model_hash": next(
            (s["value"] for e in report.evidence for s in e.facts.get("model_signals") or []), None
        ),
        "watermark": (wmark.facts["payload"], wmark.facts["matched_bits"]) if wmark else None,
        "verdict": report.verdict,
    }


def run_chain(
    path: Path,
    maxdct: ModuleType,
    parser: object,
    exiftool: ExiftoolBatch | None,
    steps: dict[str, list[float]] | None = None,
) -> dict[str, object]:
    """The separate tools, one after the other; ``steps`` collects each one's time."""
    import c2pa
    import cv2

    out: dict[str, object] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        if steps is not None:
            steps.setdefault(name, []).append(now - clock)
        clock = now

    if exiftool:
        meta = exiftool.json(path)
        dst = meta.get("XMP:DigitalSourceType", "")
        out["iptc"] = dst.rsplit("/", 1)[-1] if dst else None
        lap("exiftool -j -G (stay_open)")
    prompt = parser.parse(str(path))  # type: ignore[attr-defined]
    out["model_hash"] = (
        prompt.samplers[0].model.hash
        if prompt and prompt.samplers and prompt.samplers[0].model
        else None
    )
    lap("sd-parsers")
    with c2pa.Reader(str(path)) as reader:
        store = json.loads(reader.json())
    act = store["manifests"][store["active_manifest"]]
    terms = [
        a.get("digitalSourceType", "").rsplit("/", 1)[-1]
        for s in act.get("assertions", []) if s["label"].startswith("c2pa.actions")
        for a in s["data"]["actions"] if a.get("digitalSourceType")
    ]  # fmt: skip
    out["c2pa"] = terms
    lap("c2pa-python Reader")
    bgr = cv2.imread(str(path))
    lap("cv2.imread")
    sdxl = published_bits("sdxl")
    bits = maxdct.EmbedMaxDct([], wmLen=len(sdxl)).decode(bgr)
    out["watermark"] = ("sdxl", int(np.sum(bits == np.array(sdxl, dtype=bool))))
    lap("invisible-watermark dwtDct decode (sdxl, once)")
    return out


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    return [_once(fn) for _ in range(n)]


def _once(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def bench(repeat: int) -> None:
    from sd_parsers import ParserManager

    maxdct = load_maxdct()
    exe = shutil.which("exiftool")
    exiftool = ExiftoolBatch(exe) if exe else None
    parser = ParserManager()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.jpg"
        make_test_image(maxdct, path)
        mine, theirs = run_assay(path), run_chain(path, maxdct, parser, exiftool)
        print(f"image: 1024x1024 JPEG q95 4:4:4, {path.stat().st_size} bytes")
        print("assay findings:", mine)
        print("chain findings:", theirs)
        for key in ("c2pa", "iptc", "model_hash", "watermark"):
            if key in theirs:
                assert mine[key] == theirs[key], (
                    f"findings differ on {key}: {mine[key]} vs {theirs[key]}"
                )
        print("same findings: yes")
        a: list[float] = []
        c: list[float] = []
        steps: dict[str, list[float]] = {}
        for _ in range(repeat):  # interleaved so that machine noise hits both sides
            a.append(_once(lambda: run_assay(path)))
            c.append(_once(lambda: run_chain(path, maxdct, parser, exiftool, steps)))
        mine_steps = assay_steps(path, repeat)
    if exiftool:
        exiftool.close()
    ma, mc = statistics.median(a), statistics.median(c)
    print(f"\n| per image (n={repeat}) | median ms | p95 ms |")
    print("|---|---|---|")
    print(f"| assay analyze_provenance | {ma * 1e3:.1f} | {p95(a) * 1e3:.1f} |")
    chain = (
        "exiftool -stay_open + sd-parsers + c2pa Reader + cv2.imread + imwatermark dwtDct x1"
        if exiftool
        else "sd-parsers + c2pa + imwatermark (no exiftool)"
    )
    print(f"| {chain} | {mc * 1e3:.1f} | {p95(c) * 1e3:.1f} |")
    print(f"\nratio (chain / assay, medians): {mc / ma:.1f}x")
    print("\nchain steps (medians, ms):")
    for name, xs in steps.items():
        print(f"  {name}: {statistics.median(xs) * 1e3:.1f}")
    print("\nassay steps (medians over the same image, ms):")
    for name, ms in mine_steps.items():
        print(f"  {name}: {ms:.1f}")


def assay_steps(path: Path, repeat: int) -> dict[str, float]:
    """Where assay's time goes, step by step, to set beside the chain's steps."""
    from assay.provenance.context import ImageContext

    data = path.read_bytes()
    out: dict[str, list[float]] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        ctx = ImageContext(path, data, "jpeg")
        ctx.exif(), ctx.xmp(), ctx.jpeg_segments()
        t1 = time.perf_counter()
        rgb = wm.rgb_array(Image.open(io.BytesIO(data)))
        t2 = time.perf_counter()
        wm.match_payloads(rgb)
        t3 = time.perf_counter()
        analyze_provenance(path, data, "jpeg")
        t4 = time.perf_counter()
        for name, dt in (("metadata (EXIF, XMP, JPEG segments)", t1 - t0),
                         ("pixel decode to an RGB array (Pillow)", t2 - t1),
                         ("watermark votes, all 3 payloads", t3 - t2),
                         ("whole analyze_provenance", t4 - t3)):
            out.setdefault(name, []).append(dt)
    return {k: statistics.median(v) * 1e3 for k, v in out.items()}


# -- watermark study ------------------------------------------------------------------------


def study() -> None:
    maxdct = load_maxdct()
    photos = sorted(
        f for f in (SHARED / "pdq").rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    counts: dict[str, list[int]] = {p.name: [] for p in wm.PAYLOADS}
    levels: dict[str, dict[str, int]] = {p.name: {} for p in wm.PAYLOADS}
    for f in photos:
        with Image.open(f) as im:
            if im.width * im.height > 20_000_000:
                continue
            for m in wm.match_payloads(wm.rgb_array(im)):
                counts[m.payload.name].append(m.matched)
                levels[m.payload.name][m.level] = levels[m.payload.name].get(m.level, 0) + 1
    n = len(counts["sdxl"])
    print(f"\nFalse positives on {n} unmarked shared PDQ photos (matched bits):")
    print("| payload | bits | median | max | bands |")
    print("|---|---|---|---|---|")
    for p in wm.PAYLOADS:
        v = counts[p.name]
        print(
            f"| {p.name} | {len(p.bits)} | {statistics.median(v):.0f} | {max(v)} | {levels[p.name]} |"
        )

    def reencode(rgb: np.ndarray, how: str) -> np.ndarray:
        im = Image.fromarray(rgb)
        buf = io.BytesIO()
        if how == "png":
            im.save(buf, "PNG")
        elif how == "jpeg q90 4:4:4":
            im.save(buf, "JPEG", quality=90, subsampling=0)
        elif how == "jpeg q95 4:2:0":
            im.save(buf, "JPEG", quality=95, subsampling=2)
        elif how == "resize 0.5x":
            im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS).save(buf, "PNG")
        elif how == "crop 1 px":
            im.crop((1, 1, im.width, im.height)).save(buf, "PNG")
        elif how == "crop 8 px":
            im.crop((8, 8, im.width, im.height)).save(buf, "PNG")
        buf.seek(0)
        return wm.rgb_array(Image.open(buf))

    ways = ["png", "jpeg q90 4:4:4", "jpeg q95 4:2:0", "resize 0.5x", "crop 1 px", "crop 8 px"]
    print(
        "\nSurvival (generated 768x768 patterns, 3 seeds, marked by invisible-watermark's encoder):"
    )
    print("| payload | " + " | ".join(ways) + " |")
    print("|---|" + "---|" * len(ways))
    for p in wm.PAYLOADS:
        cells = []
        for how in ways:
            got = []
            for seed in range(3):
                rgb = embed(maxdct, pattern(768, 768, 10 + seed), p.bits)
                m = next(
                    x for x in wm.match_payloads(reencode(rgb, how)) if x.payload.name == p.name
                )
                got.append(f"{m.matched}")
            lvl = wm.level_for(int(statistics.median(int(g) for g in got)), p)
            cells.append(f"{'/'.join(got)} of {len(p.bits)} ({lvl})")
        print(f"| {p.name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument(
        "--study", action="store_true", help="also measure watermark false positives and survival"
    )
    args = ap.parse_args()
    bench(args.repeat)
    if args.study:
        study()


if __name__ == "__main__":
    main()
