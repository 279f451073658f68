"""Generator metadata: assay vs sd-parsers (the library a user would pick), one run.

For every fixture under ../shared/testdata/genmeta/parsers (A1111 PNG/JPEG/stealth,
ComfyUI, Fooocus, InvokeAI v1-v3, NovelAI) both tools read the file from disk and
extract the generator's parameters. Reported: which generator each tool names,
whether it found the seed, and median time per file over --repeat rounds (the
two tools interleaved, so machine noise hits both alike).

    .venv/bin/python bench/bench_genmeta.py --repeat 30

Needs ``pip install sd-parsers`` (bench only; assay does not depend on it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from assay.provenance.context import ImageContext
from assay.provenance.genmeta import generator_evidence

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "testdata" / "genmeta" / "parsers"


def run_assay(path: Path) -> tuple[str | None, object]:
    evidence, _ = generator_evidence(ImageContext.from_path(path))
    if not evidence:
        return None, None
    return evidence[0].facts.get("generator"), evidence[0].facts.get("seed")


def run_sd_parsers(manager: object, path: Path) -> tuple[str | None, object]:
    result = manager.parse(str(path))  # type: ignore[attr-defined]
    if result is None:
        return None, None
    seeds = [s.parameters.get("seed") for s in result.samplers] if result.samplers else []
    return result.generator.name, seeds[0] if seeds else None


def make_large(folder: Path) -> Path:
    """A 1024x1024 RGBA pattern PNG with an A1111 ``parameters`` chunk: the common
    case where checking for stealth data means decoding every pixel."""
    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    y, x = np.mgrid[0:1024, 0:1024]
    arr = np.stack([x % 256, y % 256, (x ^ y) % 256, np.full_like(x, 255)], -1).astype(np.uint8)
    info = PngInfo()
    info.add_text("parameters", "a lighthouse\nNegative prompt: fog\n"
                  "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 99, Size: 1024x1024, "
                  "Model hash: 6ce0161689, Model: sd_xl_base_1.0")  # fmt: skip
    path = folder / "large_a1111.png"
    Image.fromarray(arr).save(path, pnginfo=info)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    from sd_parsers import ParserManager

    manager = ParserManager()
    import tempfile

    files = sorted(p for p in FIXTURES.rglob("*") if p.is_file())
    large = make_large(Path(tempfile.mkdtemp()))
    times: dict[str, list[float]] = {"assay": [], "sd-parsers": []}
    print(f"{'file':45} {'assay':>22} {'sd-parsers':>22}")
    for f in files:
        a, s = run_assay(f), run_sd_parsers(manager, f)
        print(f"{f.name:45} {str(a[0]) + ' seed=' + ('y' if a[1] else 'n'):>22} "
              f"{str(s[0]) + ' seed=' + ('y' if s[1] else 'n'):>22}")  # fmt: skip
    for _ in range(args.repeat):
        for name, fn in (("assay", run_assay), ("sd-parsers", lambda p: run_sd_parsers(manager, p))):
            t = time.perf_counter()
            for f in files:
                fn(f)
            times[name].append((time.perf_counter() - t) / len(files) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nper file, median of {args.repeat} rounds over {len(files)} files:")
    for k, v in med.items():
        print(f"  {k:11} {v:7.3f} ms")
    print(f"  ratio sd-parsers / assay: {med['sd-parsers'] / med['assay']:.2f}x")

    big: dict[str, list[float]] = {"assay": [], "sd-parsers": []}
    for _ in range(args.repeat):
        for name, fn in (("assay", run_assay), ("sd-parsers", lambda p: run_sd_parsers(manager, p))):
            t = time.perf_counter()
            fn(large)
            big[name].append((time.perf_counter() - t) * 1000)
    bmed = {k: statistics.median(v) for k, v in big.items()}
    print(f"\n1024x1024 RGBA PNG with A1111 text, median of {args.repeat}:")
    for k, v in bmed.items():
        print(f"  {k:11} {v:7.3f} ms")
    print(f"  ratio sd-parsers / assay: {bmed['sd-parsers'] / bmed['assay']:.2f}x "
          "(assay also inflates the first rows to rule out stealth data)")


if __name__ == "__main__":
    main()
