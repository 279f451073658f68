"""Evaluation suite for model lineage: generated bases, every transformation, a table.

Bases are random-weight SD 1.5 checkpoints with the real LDM key names and (scaled)
shapes from ``tests/modelgen.py``. From them the suite derives: dtype conversions
(fp16, bf16 rounding), EMA added then pruned, renamed keys (diffusers folder names),
fine-tunes of several sizes (of the base A: they share F's base, not F's change),
merges of two and three models, a swapped VAE, LoRAs
of several ranks merged at strengths 0.1-1.0 (alone, with a second LoRA, into a
fine-tune of the base, then converted to fp16), LoHa and LoKr (LyCORIS) merged the
same ways, and unrelated models (independent random init of the same architecture,
SD 2 and SDXL layouts). Every suspect is fingerprinted from its arrays and asked the
lineage questions against a bank of known bases, a flagged checkpoint and flagged
LoRA / LoHa / LoKr files.

Models are never held whole: a model is a :class:`Lazy` mapping whose tensors are
drawn when read, from a stream seeded by (model seed, tensor key), and every
transformation is a lazy per-tensor wrapper over its inputs. Fingerprinting reads
one tensor at a time, so a full-size suspect (1.07 B float32 weights, 4.3 GB) costs
the memory of its largest tensor and the few tensors it derives from. ``--cache-dir``
keeps the two models most suspects derive from (the base A and the flagged F) on
disk after their first read, since reading 4.3 GB back is ~20x faster than drawing it.

``python tests/lineage_eval.py --scale 0.125`` prints the table (true-positive and
false-positive rate per question at the shipped thresholds, strength and ratio
errors); ``tests/test_lineage.py`` runs it small and asserts the targets;
``bench/bench_lineage_eval.py`` runs it at full size with wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import modelgen  # noqa: E402
from assay.models.fingerprint import _plan, canonical_to_kohya, fingerprint_arrays  # noqa: E402
from assay.models.lineage import BankModel, LineageReport, answer  # noqa: E402
from assay.models.lora_apply import lora_fingerprint  # noqa: E402

Arrays = dict[str, np.ndarray]
Model = Mapping[str, np.ndarray]


# ------------------------------------------------------------------ lazy models


class Lazy(Mapping[str, np.ndarray]):
    """A model whose tensors are computed when read and never kept."""

    def __init__(self, keys: Iterable[str], value: Callable[[str], np.ndarray]) -> None:
        self._keys = dict.fromkeys(keys)
        self._value = value

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._keys:
            raise KeyError(key)
        return self._value(key)

    def __contains__(self, key: object) -> bool:  # Mapping's default would compute the value
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _normal(seed: int, purpose: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normals from a stream of their own per (seed, purpose, tensor): any
    tensor of any model can be drawn alone, in any order, and always comes out equal."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{purpose}/{key}".encode())])
    return rng.standard_normal(shape, dtype=np.float32)


def cached(arrays: Model, directory: Path, name: str) -> Lazy:
    """``arrays`` with each tensor written to ``directory`` when first computed and read
    back afterwards (``np.load`` into a fresh array: page-cache pages are not this
    process's memory, as a memory map's would be)."""
    directory.mkdir(parents=True, exist_ok=True)
    index = {k: i for i, k in enumerate(arrays)}

    def value(k: str) -> np.ndarray:
        path = directory / f"{name}-{index[k]}.npy"
        if path.exists():
            return np.load(path)
        v = np.asarray(arrays[k])
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            np.save(f, v)
        os.replace(tmp, path)
        return v

    return Lazy(arrays, value)


def kept(arrays: Model) -> Lazy:
    """``arrays`` with each tensor kept in memory once computed, read-only (so that no
    reader can change what later suspects are made of): the same values as ``arrays``,
    drawn once instead of once per suspect. For small scales, where the models fit."""
    memo: Arrays = {}

    def value(k: str) -> np.ndarray:
        v = memo.get(k)
        if v is None:
            v = np.asarray(arrays[k])
            v.setflags(write=False)
            memo[k] = v
        return v

    return Lazy(arrays, value)


# ------------------------------------------------------------------ generators


def random_model(specs: Mapping[str, modelgen.Spec], seed: int) -> Lazy:
    shapes = {k: shape for k, (dt, shape) in specs.items() if dt.startswith(("F", "BF"))}

    def value(k: str) -> np.ndarray:
        x = _normal(seed, "init", k, shapes[k])
        x *= np.float32(0.02)
        return x

    return Lazy(shapes, value)


def canonical_keys(arrays: Model) -> dict[str, str]:
    """canonical name -> source key (whole tensors only; reads keys, not values)."""
    return {p.canonical: k for k, p in _plan(arrays)[0] if p.rows is None and not p.transpose}


def fine_tune(arrays: Model, rel: float, seed: int) -> Lazy:
    """Full-rank change of relative size ``rel`` on every tensor."""

    def value(k: str) -> np.ndarray:
        v = arrays[k]
        x = _normal(seed, "tune", k, v.shape)
        x *= np.float32(rel) * v.std()
        x += v
        return x

    return Lazy(arrays, value)


def merge(parts: list[tuple[float, Model]]) -> Lazy:
    return Lazy(parts[0][1], lambda k: sum(np.float32(w) * a[k] for w, a in parts).astype(np.float32))


def to_fp16(arrays: Model) -> Lazy:
    return Lazy(arrays, lambda k: arrays[k].astype(np.float16))


def _bf16(v: np.ndarray) -> np.ndarray:
    u = v.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def bf16_round(arrays: Model) -> Lazy:
    """Round to bfloat16 (nearest even) and back: what a bf16 re-save stores."""
    return Lazy(arrays, lambda k: _bf16(arrays[k]))


def with_ema(arrays: Model, seed: int) -> Lazy:
    """Add model_ema.* copies (slightly different, as a real EMA is)."""
    tuned = fine_tune(arrays, 0.05, seed)
    ema = {"model_ema." + k.removeprefix("model.").replace(".", ""): k
           for k in arrays if k.startswith("model.diffusion_model.")}
    return Lazy([*arrays, *ema], lambda k: tuned[ema[k]] if k in ema else arrays[k])


def renamed(arrays: Model) -> Lazy:
    """The diffusers-folder naming (component/name) of every tensor."""
    keys = canonical_keys(arrays)
    return Lazy(keys, lambda c: arrays[keys[c]])


def with_component(arrays: Model, donor: Model, prefix: str) -> Lazy:
    """``arrays`` with every tensor under ``prefix`` taken from ``donor``."""
    return Lazy(arrays, lambda k: (donor if k.startswith(prefix) else arrays)[k])


def apply_deltas(arrays: Model, deltas: Mapping[str, np.ndarray], strength: float) -> Lazy:
    """Merge full deltas (canonical -> delta) into a checkpoint's weights."""
    keys = canonical_keys(arrays)
    target = {keys[c]: c for c in deltas}

    def value(k: str) -> np.ndarray:
        v = arrays[k]
        if k not in target:
            return v
        return (v + np.float32(strength) * deltas[target[k]].reshape(v.shape)).astype(np.float32)

    return Lazy(arrays, value)


@dataclass
class Lora:
    """Factors on canonical targets; ``kohya()`` gives the file's tensors."""

    factors: dict[str, tuple[np.ndarray, np.ndarray]]  # canonical -> (up, down)
    rank: int

    def kohya(self) -> Arrays:
        out: Arrays = {}
        for name, (up, down) in self.factors.items():
            mod = canonical_to_kohya(name)
            out[mod + ".lora_up.weight"] = up
            out[mod + ".lora_down.weight"] = down
            out[mod + ".alpha"] = np.array(float(down.shape[0]), dtype=np.float32)  # scale 1
        return out

    def deltas(self) -> Lazy:
        return Lazy(self.factors, lambda c: self.factors[c][0] @ self.factors[c][1])


def random_lora(base: Model, rank: int, seed: int, rel: float = 0.15) -> Lora:
    """Rank-``rank`` deltas on every attention projection (UNet and text encoder), of
    relative size ``rel`` at strength 1, as the kohya trainer's targets are."""
    rng = np.random.default_rng(seed)
    factors = {}
    for c, w in _attention_targets(base):
        m, n = w.shape
        r = min(rank, m, n)
        up = rng.standard_normal((m, r), dtype=np.float32)
        down = rng.standard_normal((r, n), dtype=np.float32)
        scale = rel * float(np.linalg.norm(w)) / float(np.linalg.norm(up @ down))
        factors[c] = ((up * np.float32(scale)).astype(np.float32), down)
    return Lora(factors, rank)


def apply_lora(arrays: Model, lora: Lora, strength: float) -> Lazy:
    return apply_deltas(arrays, lora.deltas(), strength)


# ------------------------------------------------------------------ LyCORIS (LoHa, LoKr)


@dataclass
class Lycoris:
    """A LoHa or LoKr in kohya/LyCORIS naming, with the deltas it adds computed
    directly from the LyCORIS formulas (numpy ``*`` and ``np.kron``) when read."""

    tensors: Arrays  # the file's tensors
    deltas: Mapping[str, np.ndarray]  # canonical -> delta at strength 1, shaped like the weight


_ATTENTION = ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight",
              "q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight")


def _attention_targets(base: Model) -> Iterator[tuple[str, np.ndarray]]:
    """(canonical name, weight) of every 2-D attention projection of the UNet and text
    encoder, the kohya trainer's targets; only those weights are read."""
    for c, k in canonical_keys(base).items():
        if c.startswith(("unet/", "text_encoder/")) and c.endswith(_ATTENTION):
            w = base[k]
            if w.ndim == 2:
                yield c, w


def _loha_delta(f: Mapping[str, np.ndarray], scale: float) -> np.ndarray:
    return ((f["w1_a"] @ f["w1_b"]) * (f["w2_a"] @ f["w2_b"]) * np.float32(scale)).astype(np.float32)


def random_loha(base: Model, rank: int, seed: int, rel: float = 0.15) -> Lycoris:
    """``((w1_a @ w1_b) * (w2_a @ w2_b)) * alpha / rank`` on every attention projection;
    alpha = rank / 2, so the scale is not 1."""
    rng = np.random.default_rng(seed)
    tensors: Arrays = {}
    parts: dict[str, dict[str, np.ndarray]] = {}
    alpha = rank / 2
    for c, w in _attention_targets(base):
        m, n = w.shape
        f = {x: rng.standard_normal(s, dtype=np.float32)
             for x, s in (("w1_a", (m, rank)), ("w1_b", (rank, n)), ("w2_a", (m, rank)), ("w2_b", (rank, n)))}
        f["w1_a"] *= np.float32(rel * float(np.linalg.norm(w)) / float(np.linalg.norm(_loha_delta(f, alpha / rank))))
        mod = canonical_to_kohya(c)
        for x, v in f.items():
            tensors[f"{mod}.hada_{x}"] = v
        tensors[mod + ".alpha"] = np.array(alpha, dtype=np.float32)
        parts[c] = f
    return Lycoris(tensors, Lazy(parts, lambda c: _loha_delta(parts[c], alpha / rank)))


def random_lokr(base: Model, rank: int, seed: int, factor: int = 4, rel: float = 0.15) -> Lycoris:
    """``kron(lokr_w1, lokr_w2_a @ lokr_w2_b) * alpha / rank`` (LyCORIS' usual layout:
    a full small w1, a factorised w2) on every attention projection whose sides
    ``factor`` divides; alpha = 2 * rank."""
    rng = np.random.default_rng(seed)
    tensors: Arrays = {}
    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    alpha = 2.0 * rank

    def delta(c: str) -> np.ndarray:
        w1, w2a, w2b = parts[c]
        return (np.kron(w1, w2a @ w2b) * np.float32(alpha / rank)).astype(np.float32)

    for c, w in _attention_targets(base):
        m, n = w.shape
        if m % factor or n % factor:
            continue
        w1 = rng.standard_normal((factor, factor), dtype=np.float32)
        w2a = rng.standard_normal((m // factor, rank), dtype=np.float32)
        w2b = rng.standard_normal((rank, n // factor), dtype=np.float32)
        parts[c] = (w1, w2a, w2b)
        w1 *= np.float32(rel * float(np.linalg.norm(w)) / float(np.linalg.norm(delta(c))))
        mod = canonical_to_kohya(c)
        tensors |= {mod + ".lokr_w1": w1, mod + ".lokr_w2_a": w2a, mod + ".lokr_w2_b": w2b,
                    mod + ".alpha": np.array(alpha, dtype=np.float32)}
    return Lycoris(tensors, Lazy(parts, delta))


# ------------------------------------------------------------------ cases


@dataclass
class Case:
    name: str
    arrays: Callable[[], Model]
    same: set[str] = field(default_factory=set)
    derived: set[str] = field(default_factory=set)  # fine-tune (not same) of these
    related: set[str] = field(default_factory=set)  # close to these, sharing their base only
    merge: dict[str, float] = field(default_factory=dict)  # expected UNet ratios
    loras: dict[str, float] = field(default_factory=dict)  # flagged LoRA / LoHa / LoKr -> strength
    low_rank: int | None = None  # an unknown LoRA of this rank is merged
    replaced: set[str] = field(default_factory=set)  # components swapped vs the base
    unrelated: bool = False


@dataclass
class World:
    bank: list[BankModel]
    cases: list[Case]


Log = Callable[[str], None]


def build(scale: float = 1 / 16, *, full: bool = False, seed: int = 0, cache: Path | None = None,
          progress: Log | None = None, keep: bool = False) -> World:
    """The bank and the suspects. Suspects are recipes (``Case.arrays``), built only
    when evaluated. With ``cache``, the base A and the flagged fine-tune F are kept on
    disk under it after their first read; with ``keep``, the models A, B, C and F are
    kept in memory (4 x 20 MB at scale 1/16), the same values drawn once."""
    say = progress or (lambda _: None)
    specs = {k: v for k, v in modelgen.sd15(scale, dt="F32").items() if v[0] == "F32"}
    A: Model = random_model(specs, seed + 1)
    B = random_model(specs, seed + 2)
    C = random_model(specs, seed + 3)
    flagged: Model = fine_tune(A, 0.05, seed + 4)  # a flagged fine-tune of A
    if cache is not None:
        where = cache / f"scale{scale:g}-seed{seed}"
        A = cached(A, where, "A")
        flagged = cached(fine_tune(A, 0.05, seed + 4), where, "F")
    elif keep:
        A, B, C = kept(A), kept(B), kept(C)
        flagged = kept(fine_tune(A, 0.05, seed + 4))
    ranks = [4, 8, 16, 32, 64, 128] if full else [4, 16]
    L = {f"lora-r{r}": random_lora(A, r, seed + 10 + r) for r in ranks}
    unknown = random_lora(A, 8, seed + 99)
    ly = {"loha-r4": random_loha(A, 4, seed + 44), "lokr-r2": random_lokr(A, 2, seed + 52)}
    if full:
        ly |= {"loha-r16": random_loha(A, 16, seed + 56), "lokr-r8": random_lokr(A, 8, seed + 58)}
    say(f"LoRAs drawn: {', '.join([*L, *ly])}")

    bank = []
    for bank_name, name, kind, model in (("bases", "A", "base", A), ("bases", "B", "base", B),
                                         ("flagged", "F", "checkpoint", flagged)):
        bank.append(BankModel(bank_name, name, kind, fingerprint_arrays(model)))
        say(f"bank: {bank_name}/{name} fingerprinted")
    for name, lo in L.items():
        bank.append(BankModel("flagged", name, "lora", lora_fingerprint(lo.kohya())))
    for name, lyc in ly.items():
        bank.append(BankModel("flagged", name, "lora", lora_fingerprint(lyc.tensors)))
    both = {"bases/A", "flagged/F"}
    # A fine-tune of A is not one of F: it shares F's base (A), not F's change.
    A_only, F_only = {"bases/A"}, {"flagged/F"}

    cases: list[Case] = [
        # F is a fine-tune of A: a copy of F derives from A; a copy of A only shares a base with F.
        Case("fp16 copy of A", lambda: to_fp16(A), same={"bases/A"}, related=F_only),
        Case("bf16 copy of F", lambda: bf16_round(flagged), same={"flagged/F"}, derived={"bases/A"}),
        Case("A with EMA added (EMA ignored)", lambda: with_ema(A, seed + 5), same={"bases/A"},
             related=F_only),
        Case("A renamed to diffusers layout", lambda: renamed(A), same={"bases/A"}, related=F_only),
        Case("F fine-tuned 2% further", lambda: fine_tune(flagged, 0.02, seed + 6), derived=both),
        Case("A fine-tuned 10%", lambda: fine_tune(A, 0.10, seed + 7), derived=A_only, related=F_only),
        Case("A with B's VAE", lambda: with_component(A, B, "first_stage_model."),
             derived=A_only, related=F_only, replaced={"vae"}),
        Case("merge 0.3 A + 0.7 B", lambda: merge([(0.3, A), (0.7, B)]), merge={"bases/A": 0.3, "bases/B": 0.7}),
        Case("merge 0.5 F + 0.5 B, fp16", lambda: to_fp16(merge([(0.5, flagged), (0.5, B)])),
             merge={"flagged/F": 0.5, "bases/B": 0.5}),
        Case("unrelated random C", lambda: C, unrelated=True),
        Case("unrelated C fine-tuned", lambda: fine_tune(C, 0.05, seed + 8), unrelated=True),
        Case("unrelated C + LoRA", lambda: apply_lora(C, L["lora-r4"], 0.8), unrelated=True),
        Case("SD2 layout, random", lambda: random_model(
            {k: v for k, v in modelgen.sd2(scale, dt="F32").items() if v[0] == "F32"}, seed + 20), unrelated=True),
        Case("SDXL layout, random", lambda: random_model(
            {k: v for k, v in modelgen.sdxl_base(scale, dt="F32").items() if v[0] == "F32"}, seed + 21), unrelated=True),
        Case("unknown rank-8 LoRA into A at 0.8", lambda: apply_lora(A, unknown, 0.8), derived=A_only, related=F_only, low_rank=8),
    ]
    if full:
        for r in ranks:  # drawn when evaluated: up to 140 MB of factors each at full size
            cases.append(Case(f"unknown rank-{r} LoRA into A at 0.5",
                              lambda r=r: apply_lora(A, random_lora(A, r, seed + 200 + r), 0.5),
                              derived=A_only, related=F_only, low_rank=r))
    strengths = [0.1, 0.2, 0.35, 0.5, 0.7, 1.0] if full else [0.1, 0.2, 0.5, 1.0]
    names = list(L)
    for i, (lname, lo) in enumerate(L.items()):
        for s in strengths:
            cases.append(Case(f"{lname} at {s} into A", lambda lo=lo, s=s: apply_lora(A, lo, s),
                              derived=A_only, related=F_only, loras={f"flagged/{lname}": s}))
        other = L[names[(i + 1) % len(names)]]
        oname = names[(i + 1) % len(names)]
        s = strengths[1 + i % (len(strengths) - 1)]
        cases.append(Case(
            f"{lname} at {s} + {oname} at 0.5 into A, fine-tuned 1%, fp16",
            lambda lo=lo, s=s, other=other, i=i: to_fp16(
                fine_tune(apply_lora(apply_lora(A, lo, s), other, 0.5), 0.01, seed + 30 + i)),
            derived=A_only, related=F_only, loras={f"flagged/{lname}": s, f"flagged/{oname}": 0.5}))
        cases.append(Case(
            f"{lname} at {s} into F (a fine-tune of A)",
            lambda lo=lo, s=s: apply_lora(flagged, lo, s),
            derived=both, loras={f"flagged/{lname}": s}))

    # LoHa / LoKr: merged in the weights from the LyCORIS formulas, the same ways.
    ly_strengths = strengths if full else [0.1, 0.5, 1.0]
    for i, (yname, lyc) in enumerate(ly.items()):
        for s in ly_strengths:
            cases.append(Case(f"{yname} at {s} into A", lambda d=lyc.deltas, s=s: apply_deltas(A, d, s),
                              derived=A_only, related=F_only, loras={f"flagged/{yname}": s}))
        cases.append(Case(
            f"{yname} at 0.5 into A, fine-tuned 1%, fp16",
            lambda d=lyc.deltas, i=i: to_fp16(fine_tune(apply_deltas(A, d, 0.5), 0.01, seed + 60 + i)),
            derived=A_only, related=F_only, loras={f"flagged/{yname}": 0.5}))
        s = ly_strengths[i % len(ly_strengths)]
        cases.append(Case(f"{yname} at {s} into F (a fine-tune of A)",
                          lambda d=lyc.deltas, s=s: apply_deltas(flagged, d, s),
                          derived=both, loras={f"flagged/{yname}": s}))
    cases += [
        Case("loha-r4 at 0.3 + lokr-r2 at 0.8 into A",
             lambda: apply_deltas(apply_deltas(A, ly["loha-r4"].deltas, 0.3), ly["lokr-r2"].deltas, 0.8),
             derived=A_only, related=F_only, loras={"flagged/loha-r4": 0.3, "flagged/lokr-r2": 0.8}),
        Case("loha-r4 at 0.5 + lora-r4 at 0.5 into A, fp16",
             lambda: to_fp16(apply_lora(apply_deltas(A, ly["loha-r4"].deltas, 0.5), L["lora-r4"], 0.5)),
             derived=A_only, related=F_only, loras={"flagged/loha-r4": 0.5, "flagged/lora-r4": 0.5}),
        Case("unrelated C + LoHa", lambda: apply_deltas(C, ly["loha-r4"].deltas, 0.5), unrelated=True),
        Case("unrelated C + LoKr", lambda: apply_deltas(C, ly["lokr-r2"].deltas, 0.5), unrelated=True),
    ]
    return World(bank, cases)


# ------------------------------------------------------------------ scoring


@dataclass
class Tally:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    errors: list[float] = field(default_factory=list)

    def row(self, name: str) -> str:
        pos, neg = self.tp + self.fn, self.fp + self.tn
        tpr = f"{self.tp}/{pos} = {self.tp / pos:.2f}" if pos else "-"
        fpr = f"{self.fp}/{neg} = {self.fp / neg:.2f}" if neg else "-"
        err = (f"mean {np.mean(self.errors):.3f} / max {np.max(self.errors):.3f}"
               if self.errors else "-")
        return f"| {name} | {tpr} | {fpr} | {err} |"


def _count(t: Tally, truth: bool, found: bool) -> None:
    if truth and found:
        t.tp += 1
    elif truth:
        t.fn += 1
    elif found:
        t.fp += 1
    else:
        t.tn += 1


# The question a flagged adapter is counted under, by the prefix of its bank id.
ADAPTER_ROWS = {"lora": "contains LoRA", "loha": "contains LoHa", "lokr": "contains LoKr"}


def evaluate(world: World, *, log: Log | None = None, progress: Log | None = None) -> dict[str, Tally]:
    """Ask every suspect the lineage questions; ``log`` gets each suspect's findings,
    ``progress`` one line per suspect with the time and peak RSS so far."""
    tallies = {q: Tally() for q in ("same weights", "derived (fine-tune)", "shares a base only", "replaced component",
                                    "merge", *ADAPTER_ROWS.values(), "unknown low-rank delta",
                                    "any finding on unrelated model")}
    labels = [e.label for e in world.bank]
    adapters = {e.label: ADAPTER_ROWS[e.content_id.split("-")[0]] for e in world.bank if e.kind == "lora"}
    start = time.perf_counter()
    for n, case in enumerate(world.cases, 1):
        rep: LineageReport = answer(fingerprint_arrays(case.arrays()), world.bank)
        same = {f.entry for f in rep.same}
        derived = {f.entry for f in rep.derived}
        related = {f.entry for f in rep.related}
        merged = {}
        for m in rep.merges:
            if m.component == "unet":
                merged = m.parts
        loras = {lo.entry: lo.strength for lo in rep.loras}
        for lbl in labels:
            _count(tallies["same weights"], lbl in case.same, lbl in same)
            if not case.merge:
                _count(tallies["derived (fine-tune)"], lbl in case.derived, lbl in derived)
                _count(tallies["shares a base only"], lbl in case.related, lbl in related)
            if lbl in adapters:
                t = tallies[adapters[lbl]]
                _count(t, lbl in case.loras, lbl in loras)
                if lbl in case.loras and lbl in loras:
                    t.errors.append(abs(loras[lbl] - case.loras[lbl]))
        replaced = {d.component for f in rep.derived if f.entry == "bases/A" for d in f.components
                    if d.status == "replaced"}
        if "bases/A" in case.derived:
            _count(tallies["replaced component"], bool(case.replaced), replaced == case.replaced and bool(replaced))
        _count(tallies["merge"], bool(case.merge), set(merged) == set(case.merge) and bool(merged))
        if case.merge and set(merged) == set(case.merge):
            tallies["merge"].errors += [abs(merged[k] - v) for k, v in case.merge.items()]
        found_low = rep.low_rank is not None
        if not case.loras:
            _count(tallies["unknown low-rank delta"], case.low_rank is not None, found_low)
        if case.low_rank is not None:
            t = tallies.setdefault(f"  unknown LoRA of rank {case.low_rank}", Tally())
            _count(t, True, found_low)
            if found_low and rep.low_rank is not None:
                t.errors.append(abs(rep.low_rank.rank - case.low_rank))
        if case.unrelated:
            _count(tallies["any finding on unrelated model"], False, rep.found)
        if log:
            log(f"{case.name}: " + " | ".join(rep.explanations()))
        if progress:
            progress(f"[{n}/{len(world.cases)}] {case.name}: {time.perf_counter() - start:.0f} s, "
                     f"peak RSS {peak_rss_mb():.0f} MB")
    return tallies


def table(tallies: Mapping[str, Tally]) -> str:
    lines = ["| question | true positives | false positives | strength / ratio / rank error |",
             "|---|---|---|---|"]
    return "\n".join(lines + [t.row(q) for q, t in tallies.items()])


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=float, default=1 / 16)
    ap.add_argument("--full", action="store_true", help="ranks 4-128, more strengths, two of each LyCORIS type")
    ap.add_argument("--verbose", action="store_true", help="print every suspect's findings")
    ap.add_argument("--progress", action="store_true", help="one line per step on stderr: time, peak RSS")
    ap.add_argument("--cache-dir", type=Path, help="keep the base and the flagged model on disk here "
                    "(2 x 4.3 GB at --scale 1) instead of drawing them again for every suspect")
    ap.add_argument("--max-rss", type=float, metavar="MB", help="stop with status 1 once peak RSS exceeds this")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    def progress(line: str) -> None:
        if args.progress:
            print(f"{time.perf_counter() - t0:7.0f} s  {line}", file=sys.stderr, flush=True)
        if args.max_rss is not None and peak_rss_mb() > args.max_rss:
            raise SystemExit(f"peak RSS {peak_rss_mb():.0f} MB exceeds --max-rss {args.max_rss:.0f} MB ({line})")

    world = build(args.scale, full=args.full, cache=args.cache_dir, progress=progress)
    tallies = evaluate(world, log=print if args.verbose else None, progress=progress)
    print(f"scale {args.scale:g}, {len(world.cases)} suspects, bank of {len(world.bank)}; "
          f"wall {time.perf_counter() - t0:.0f} s, peak RSS {peak_rss_mb():.0f} MB")
    print(table(tallies))
    return 0


def iter_cases(world: World) -> Iterator[Case]:
    yield from world.cases


if __name__ == "__main__":
    raise SystemExit(main())
