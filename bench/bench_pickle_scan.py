"""Benchmark: assay's pickle safety scan vs picklescan, side by side, same files.

Files: the real TorchScript archive ``silero_vad.jit`` (../shared/testdata), a
random-weight checkpoint with the SD 1.5 key layout written as a torch zip by
tests/modelgen.py (~1,100 tensors, so data.pkl is realistic; weights scaled down),
and the legacy torch.save fixture in tests/data. Each tool scans each file in the
same process, alternately, ``--repeat`` times; medians and the ratio are printed
together with both verdicts. Usage::

    .venv/bin/python bench/bench_pickle_scan.py [--repeat 15] [--dir /tmp/assay-bench-pickle]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import modelgen  # noqa: E402
from assay.models import open_model, scan_file  # noqa: E402

RANK = {"safe": 0, "suspicious": 1, "dangerous": 2}


def ours(path: Path) -> str:
    return max((r.verdict for r in scan_file(path)), key=RANK.__getitem__, default="safe")


def theirs(path: Path) -> str:
    from picklescan.scanner import scan_file_path

    r = scan_file_path(str(path))
    if r.infected_files:
        return "dangerous"
    return "suspicious" if r.suspicious_count or r.scan_err else "safe"


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


def evasion_files(d: Path) -> dict[str, Path]:
    """Payload files built with the test helpers (never loaded): one per trick."""
    import io
    import os
    import pickle
    import struct
    import zipfile
    import zlib

    import test_pickle_safety as t

    out: dict[str, Path] = {}

    def zipped(name: str, data_pkl: bytes, extra: dict[str, bytes] | None = None) -> Path:
        out[name] = t.torch_zip(d / f"{_slug(name)}.pt", data_pkl, extra)
        return out[name]

    def raw(name: str, data: bytes) -> None:
        out[name] = d / f"{_slug(name)}.pkl"
        out[name].write_bytes(data)

    evil = pickle.dumps(t.Payload(os.system, ("true",)), protocol=2)
    zipped("os.system in data.pkl", evil)
    zipped("importlib.import_module", t.p4_stack_global("importlib", "import_module", "os"))
    zipped("exec via memo + STACK_GLOBAL", t.memo_hidden("builtins", "exec"))
    zipped("dotted attr torch 'serialization.load'", t.p4_stack_global("torch", "serialization.load"))
    zipped("operator.methodcaller", t.p0_call("operator", "methodcaller"))
    zipped("STACK_GLOBAL name computed at load",
           b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R"
           b"\x8c\x06system\x93\x8c\x04true\x85R.")
    zipped("protocol-0 payload in archive/data/0", pickle.dumps({}, protocol=2),
           {"archive/data/0": t.p0_call("os", "system")})
    p = zipped("bad CRC on data.pkl", evil)
    p.write_bytes(p.read_bytes().replace(struct.pack("<I", zlib.crc32(evil)), b"\0\0\0\0"))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("x/data.pkl", evil)
    zipped("zip inside zip", pickle.dumps({}, protocol=2), {"archive/extra.zip": inner.getvalue()})
    good = (ROOT / "tests/data/tiny_state_dict_legacy.pt").read_bytes()
    import pickletools

    f, ends = io.BytesIO(good), []
    for _ in range(5):
        for _op in pickletools.genops(f):
            pass
        ends.append(f.tell())
    raw("legacy torch, payload in 5th pickle", good[: ends[3]] + evil + good[ends[4]:])
    raw("protocol-0 payload padded to 200 KB (raw .ckpt)",
        t.p0_call("os", "system", "true #" + "A" * 200_000))
    np = __import__("numpy")
    obj = np.empty(1, dtype=object)
    obj[0] = t.Payload(os.system, ("true",))
    out[".npz with an object array"] = d / "objects.npz"
    np.savez(out[".npz with an object array"], w=np.arange(3), obj=obj)
    raw("numpy array (benign)", pickle.dumps(np.arange(3), protocol=2))
    out["whole nn.Module (benign)"] = ROOT / "tests/data/tiny_module_zip.pt"
    return out


def median_time(fn, arg, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/assay-bench-pickle"))
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sd = args.dir / "sd15-layout.ckpt"
    if not sd.exists():
        modelgen.write_torch_zip(sd, modelgen.sd15(scale=0.02))
    files = {
        "silero_vad.jit (TorchScript)": ROOT.parent / "shared/testdata/models/silero_vad.jit",
        f"SD1.5-layout torch zip ({sd.stat().st_size >> 20} MB)": sd,
        "legacy torch.save (tiny)": ROOT / "tests/data/tiny_state_dict_legacy.pt",
    }
    print("| file | assay verdict | picklescan verdict | assay median | picklescan median | ratio |")
    print("|---|---|---|---|---|---|")
    for label, path in files.items():
        if not path.exists():
            print(f"| {label} | (missing) | | | | |")
            continue
        ta, tp = [], []
        for _ in range(args.repeat):  # alternate so that noise hits both alike
            ta.append(median_time(ours, path, 1))
            tp.append(median_time(theirs, path, 1))
        a, p = statistics.median(ta), statistics.median(tp)
        print(f"| {label} | {ours(path)} | {theirs(path)} | {a * 1000:.1f} ms | "
              f"{p * 1000:.1f} ms | {p / a:.2f}x |")
    print("\n| payload / file | assay | picklescan (default) |")
    print("|---|---|---|")
    for label, path in evasion_files(args.dir).items():
        print(f"| {label} | {ours(path)} | {theirs(path)} |")
    t = median_time(lambda p: open_model(p).close(), sd, args.repeat)
    with open_model(sd) as m:
        n = len(m.tensors)
    print(f"\nopen_model (scan + restricted rebuild of {n} tensors) on the SD1.5-layout zip: "
          f"median {t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
