"""Evaluation suite for model lineage: generated bases, every transformation, a table.

Bases are random-weight SD 1.5 checkpoints with the real LDM key names and (scaled)
shapes from ``tests/modelgen.py``. From them the suite derives: dtype conversions
(fp16, bf16 rounding), EMA added then pruned, renamed keys (diffusers folder names),
fine-tunes of several sizes, merges of two and three models, a swapped VAE, LoRAs
of several ranks merged at strengths 0.1-1.0 (alone, with a second LoRA, into a
fine-tune of the base, then converted to fp16), and unrelated models (independent
random init of the same architecture, SD 2 and SDXL layouts). Every suspect is
fingerprinted from its arrays and asked the lineage questions against a bank of
known bases, a flagged checkpoint and flagged LoRAs.

``python tests/lineage_eval.py --scale 0.125`` prints the table (true-positive and
false-positive rate per question at the shipped thresholds, strength and ratio
errors); ``tests/test_lineage.py`` runs it small and asserts the targets.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import modelgen  # noqa: E402
from assay.models.fingerprint import Fingerprint, _plan, fingerprint_arrays  # noqa: E402
from assay.models.lineage import BankModel, LineageReport, answer  # noqa: E402
from assay.models.lora_apply import lora_fingerprint  # noqa: E402

Arrays = dict[str, np.ndarray]


# ------------------------------------------------------------------ generators


def random_model(specs: Mapping[str, modelgen.Spec], seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            for k, (dt, shape) in specs.items() if dt.startswith(("F", "BF"))}


def canonical_keys(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """canonical name -> source key (whole tensors only)."""
    return {p.canonical: k for k, p in _plan(arrays)[0] if p.rows is None and not p.transpose}


def fine_tune(arrays: Arrays, rel: float, seed: int) -> Arrays:
    """Full-rank change of relative size ``rel`` on every tensor."""
    rng = np.random.default_rng(seed)
    return {k: v + np.float32(rel) * v.std() * rng.standard_normal(v.shape, dtype=np.float32)
            for k, v in arrays.items()}


def merge(parts: list[tuple[float, Arrays]]) -> Arrays:
    return {k: sum(np.float32(w) * a[k] for w, a in parts).astype(np.float32) for k in parts[0][1]}


def to_fp16(arrays: Arrays) -> Arrays:
    return {k: v.astype(np.float16) for k, v in arrays.items()}


def bf16_round(arrays: Arrays) -> Arrays:
    """Round to bfloat16 (nearest even) and back: what a bf16 re-save stores."""
    out = {}
    for k, v in arrays.items():
        u = v.view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        out[k] = u.astype(np.uint32).view(np.float32)
    return out


def with_ema(arrays: Arrays, seed: int) -> Arrays:
    """Add model_ema.* copies (slightly different, as a real EMA is)."""
    out = dict(arrays)
    ema = fine_tune({k: v for k, v in arrays.items() if k.startswith("model.diffusion_model.")}, 0.05, seed)
    for k, v in ema.items():
        out["model_ema." + k.removeprefix("model.").replace(".", "")] = v
    return out


def renamed(arrays: Arrays) -> Arrays:
    """The diffusers-folder naming (component/name) of every tensor."""
    return {c: arrays[k] for c, k in canonical_keys(arrays).items()}


@dataclass
class Lora:
    """Factors on canonical targets; ``kohya()`` gives the file's tensors."""

    factors: dict[str, tuple[np.ndarray, np.ndarray]]  # canonical -> (up, down)
    rank: int

    def kohya(self) -> Arrays:
        from assay.models.fingerprint import canonical_to_kohya

        out: Arrays = {}
        for name, (up, down) in self.factors.items():
            mod = canonical_to_kohya(name)
            out[mod + ".lora_up.weight"] = up
            out[mod + ".lora_down.weight"] = down
            out[mod + ".alpha"] = np.array(float(down.shape[0]), dtype=np.float32)  # scale 1
        return out


def random_lora(base: Arrays, rank: int, seed: int, rel: float = 0.15) -> Lora:
    """Rank-``rank`` deltas on every attention projection (UNet and text encoder), of
    relative size ``rel`` at strength 1, as the kohya trainer's targets are."""
    rng = np.random.default_rng(seed)
    factors = {}
    for c, k in canonical_keys(base).items():
        if not (c.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight",
                            "q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight"))):
            continue
        w = base[k]
        if c.startswith("vae/") or w.ndim != 2:
            continue
        m, n = w.shape
        r = min(rank, m, n)
        up = rng.standard_normal((m, r), dtype=np.float32)
        down = rng.standard_normal((r, n), dtype=np.float32)
        scale = rel * float(np.linalg.norm(w)) / float(np.linalg.norm(up @ down))
        factors[c] = ((up * np.float32(scale)).astype(np.float32), down)
    return Lora(factors, rank)


def apply_lora(arrays: Arrays, lora: Lora, strength: float) -> Arrays:
    keys = canonical_keys(arrays)
    out = dict(arrays)
    for c, (up, down) in lora.factors.items():
        k = keys[c]
        out[k] = (out[k] + np.float32(strength) * (up @ down)).astype(np.float32)
    return out


# ------------------------------------------------------------------ cases


@dataclass
class Case:
    name: str
    arrays: Callable[[], Mapping[str, np.ndarray]]
    same: set[str] = field(default_factory=set)
    derived: set[str] = field(default_factory=set)  # fine-tune (not same) of these
    merge: dict[str, float] = field(default_factory=dict)  # expected UNet ratios
    loras: dict[str, float] = field(default_factory=dict)  # flagged LoRA -> strength
    low_rank: int | None = None  # an unknown LoRA of this rank is merged
    replaced: set[str] = field(default_factory=set)  # components swapped vs the base
    unrelated: bool = False


@dataclass
class World:
    bank: list[BankModel]
    cases: list[Case]


def build(scale: float = 1 / 16, *, full: bool = False, seed: int = 0) -> World:
    specs = {k: v for k, v in modelgen.sd15(scale, dt="F32").items() if v[0] == "F32"}
    A = random_model(specs, seed + 1)
    B = random_model(specs, seed + 2)
    C = random_model(specs, seed + 3)
    flagged = fine_tune(A, 0.05, seed + 4)  # a flagged fine-tune of A
    ranks = [4, 8, 16, 32, 64, 128] if full else [4, 16]
    L = {f"lora-r{r}": random_lora(A, r, seed + 10 + r) for r in ranks}
    unknown = random_lora(A, 8, seed + 99)

    def fp_arrays(a: Mapping[str, np.ndarray]) -> Fingerprint:
        return fingerprint_arrays(a)

    bank = [
        BankModel("bases", "A", "base", fp_arrays(A)),
        BankModel("bases", "B", "base", fp_arrays(B)),
        BankModel("flagged", "F", "checkpoint", fp_arrays(flagged)),
    ]
    for name, lo in L.items():
        bank.append(BankModel("flagged", name, "lora", lora_fingerprint(lo.kohya())))

    cases: list[Case] = [
        # F is a fine-tune of A: copies of either are fine-tune relatives of the other.
        Case("fp16 copy of A", lambda: to_fp16(A), same={"bases/A"}, derived={"flagged/F"}),
        Case("bf16 copy of F", lambda: bf16_round(flagged), same={"flagged/F"}, derived={"bases/A"}),
        Case("A with EMA added (EMA ignored)", lambda: with_ema(A, seed + 5), same={"bases/A"},
             derived={"flagged/F"}),
        Case("A renamed to diffusers layout", lambda: renamed(A), same={"bases/A"}, derived={"flagged/F"}),
        Case("F fine-tuned 2% further", lambda: fine_tune(flagged, 0.02, seed + 6),
             derived={"flagged/F", "bases/A"}),
        Case("A fine-tuned 10%", lambda: fine_tune(A, 0.10, seed + 7), derived={"bases/A", "flagged/F"}),
        Case("A with B's VAE", lambda: {**A, **{k: v for k, v in B.items() if k.startswith("first_stage_model.")}},
             derived={"bases/A", "flagged/F"}, replaced={"vae"}),
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
        Case("unknown rank-8 LoRA into A at 0.8", lambda: apply_lora(A, unknown, 0.8),
             derived={"bases/A", "flagged/F"}, low_rank=8),
    ]
    if full:
        for r in ranks:
            lo = random_lora(A, r, seed + 200 + r)
            cases.append(Case(f"unknown rank-{r} LoRA into A at 0.5", lambda lo=lo: apply_lora(A, lo, 0.5),
                              derived={"bases/A", "flagged/F"}, low_rank=r))
    strengths = [0.1, 0.2, 0.35, 0.5, 0.7, 1.0] if full else [0.1, 0.2, 0.5, 1.0]
    names = list(L)
    for i, (lname, lo) in enumerate(L.items()):
        for s in strengths:
            cases.append(Case(f"{lname} at {s} into A", lambda lo=lo, s=s: apply_lora(A, lo, s),
                              derived={"bases/A", "flagged/F"}, loras={f"flagged/{lname}": s}))
        other = L[names[(i + 1) % len(names)]]
        oname = names[(i + 1) % len(names)]
        s = strengths[1 + i % (len(strengths) - 1)]
        cases.append(Case(
            f"{lname} at {s} + {oname} at 0.5 into A, fine-tuned 1%, fp16",
            lambda lo=lo, s=s, other=other, i=i: to_fp16(
                fine_tune(apply_lora(apply_lora(A, lo, s), other, 0.5), 0.01, seed + 30 + i)),
            derived={"bases/A", "flagged/F"}, loras={f"flagged/{lname}": s, f"flagged/{oname}": 0.5}))
        cases.append(Case(
            f"{lname} at {s} into F (a fine-tune of A)",
            lambda lo=lo, s=s: apply_lora(flagged, lo, s),
            derived={"flagged/F", "bases/A"}, loras={f"flagged/{lname}": s}))
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


def evaluate(world: World, *, log: Callable[[str], None] | None = None) -> dict[str, Tally]:
    tallies = {q: Tally() for q in ("same weights", "derived (fine-tune)", "replaced component",
                                    "merge", "contains LoRA", "unknown low-rank delta",
                                    "any finding on unrelated model")}
    labels = [e.label for e in world.bank]
    for case in world.cases:
        rep: LineageReport = answer(fingerprint_arrays(case.arrays()), world.bank)
        same = {f.entry for f in rep.same}
        derived = {f.entry for f in rep.derived}
        merged = {}
        for m in rep.merges:
            if m.component == "unet":
                merged = m.parts
        loras = {lo.entry: lo.strength for lo in rep.loras}
        for lbl in labels:
            _count(tallies["same weights"], lbl in case.same, lbl in same)
            if not case.merge:
                _count(tallies["derived (fine-tune)"], lbl in case.derived, lbl in derived)
            if lbl.startswith("flagged/lora"):
                _count(tallies["contains LoRA"], lbl in case.loras, lbl in loras)
                if lbl in case.loras and lbl in loras:
                    tallies["contains LoRA"].errors.append(abs(loras[lbl] - case.loras[lbl]))
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
    return tallies


def table(tallies: Mapping[str, Tally]) -> str:
    lines = ["| question | true positives | false positives | strength / ratio / rank error |",
             "|---|---|---|---|"]
    return "\n".join(lines + [t.row(q) for q, t in tallies.items()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1 / 16)
    ap.add_argument("--full", action="store_true", help="ranks 4-128 and more strengths")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    world = build(args.scale, full=args.full)
    tallies = evaluate(world, log=print if args.verbose else None)
    print(f"scale {args.scale}, {len(world.cases)} suspects, bank of {len(world.bank)}")
    print(table(tallies))
    return 0


def iter_cases(world: World) -> Iterator[Case]:
    yield from world.cases


if __name__ == "__main__":
    raise SystemExit(main())


# ------------------------------------------------------------------ LyCORIS (LoHa, LoKr)


@dataclass
class Lycoris:
    """A LoHa or LoKr in kohya/LyCORIS naming, with the deltas it adds computed
    directly from the LyCORIS formulas (numpy ``*`` and ``np.kron``)."""

    tensors: Arrays  # the file's tensors
    deltas: dict[str, np.ndarray]  # canonical -> delta at strength 1, shaped like the weight


def _attention_targets(base: Arrays) -> Iterator[tuple[str, np.ndarray]]:
    for c, k in canonical_keys(base).items():
        if c.startswith(("unet/", "text_encoder/")) and base[k].ndim == 2 and c.endswith((
                "to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight",
                "q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight")):
            yield c, base[k]


def random_loha(base: Arrays, rank: int, seed: int, rel: float = 0.15) -> Lycoris:
    """``((w1_a @ w1_b) * (w2_a @ w2_b)) * alpha / rank`` on every attention projection;
    alpha = rank / 2, so the scale is not 1."""
    from assay.models.fingerprint import canonical_to_kohya

    rng = np.random.default_rng(seed)
    tensors: Arrays = {}
    deltas: dict[str, np.ndarray] = {}
    alpha = rank / 2
    for c, w in _attention_targets(base):
        m, n = w.shape
        f = {x: rng.standard_normal(s, dtype=np.float32)
             for x, s in (("w1_a", (m, rank)), ("w1_b", (rank, n)), ("w2_a", (m, rank)), ("w2_b", (rank, n)))}
        raw = (f["w1_a"] @ f["w1_b"]) * (f["w2_a"] @ f["w2_b"]) * np.float32(alpha / rank)
        f["w1_a"] *= np.float32(rel * float(np.linalg.norm(w)) / float(np.linalg.norm(raw)))
        mod = canonical_to_kohya(c)
        for x, v in f.items():
            tensors[f"{mod}.hada_{x}"] = v
        tensors[mod + ".alpha"] = np.array(alpha, dtype=np.float32)
        deltas[c] = ((f["w1_a"] @ f["w1_b"]) * (f["w2_a"] @ f["w2_b"]) * np.float32(alpha / rank)).astype(np.float32)
    return Lycoris(tensors, deltas)


def random_lokr(base: Arrays, rank: int, seed: int, factor: int = 4, rel: float = 0.15) -> Lycoris:
    """``kron(lokr_w1, lokr_w2_a @ lokr_w2_b) * alpha / rank`` (LyCORIS' usual layout:
    a full small w1, a factorised w2) on every attention projection whose sides
    ``factor`` divides; alpha = 2 * rank."""
    from assay.models.fingerprint import canonical_to_kohya

    rng = np.random.default_rng(seed)
    tensors: Arrays = {}
    deltas: dict[str, np.ndarray] = {}
    alpha = 2.0 * rank
    for c, w in _attention_targets(base):
        m, n = w.shape
        if m % factor or n % factor:
            continue
        w1 = rng.standard_normal((factor, factor), dtype=np.float32)
        w2a = rng.standard_normal((m // factor, rank), dtype=np.float32)
        w2b = rng.standard_normal((rank, n // factor), dtype=np.float32)
        raw = np.kron(w1, w2a @ w2b) * np.float32(alpha / rank)
        w1 *= np.float32(rel * float(np.linalg.norm(w)) / float(np.linalg.norm(raw)))
        mod = canonical_to_kohya(c)
        tensors |= {mod + ".lokr_w1": w1, mod + ".lokr_w2_a": w2a, mod + ".lokr_w2_b": w2b,
                    mod + ".alpha": np.array(alpha, dtype=np.float32)}
        deltas[c] = (np.kron(w1, w2a @ w2b) * np.float32(alpha / rank)).astype(np.float32)
    return Lycoris(tensors, deltas)


def apply_deltas(arrays: Arrays, deltas: Mapping[str, np.ndarray], strength: float) -> Arrays:
    """Merge full deltas (canonical -> delta) into a checkpoint's weights."""
    keys = canonical_keys(arrays)
    out = dict(arrays)
    for c, d in deltas.items():
        k = keys[c]
        out[k] = (out[k] + np.float32(strength) * d.reshape(out[k].shape)).astype(np.float32)
    return out
