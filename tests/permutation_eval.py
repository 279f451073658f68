"""Evaluation of lineage across function-preserving permutations (issue #22): the table.

For each family of ``tests/permutations.py`` (a BERT encoder, a UNet-like conv stack
with GroupNorm, a ReLU MLP) several independently initialised bases are banked; every
base then gets every symmetry of its family applied (fresh random permutations per
suspect), alone and followed by a fine-tune of 1-5 % relative drift, and the permuted
copies of *other* bases are asked against the bank too. Then the independently
trained models: numpy-trained MLPs (three seeds, same data) and, when present, the
torch-trained BERT encoders in ``tests/data/trained_bert_seed*.safetensors``: every
permuted (and permuted + fine-tuned) copy must link to its own origin only.

    python tests/permutation_eval.py [--scale minilm] [--seeds 3]

``--scale minilm`` uses MiniLM-L6 shapes for the BERT (hidden 384, FFN 1536, 12 heads,
6 layers, vocabulary 30522: 22 M parameters); the default is small enough for CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import permutations as pm  # noqa: E402
from assay.models.alignment import canonical_arrays  # noqa: E402
from assay.models.fingerprint import fingerprint_arrays  # noqa: E402
from assay.models.lineage import BankModel, LineageReport, answer  # noqa: E402

Arrays = dict[str, np.ndarray]
DATA = Path(__file__).resolve().parent / "data"


@dataclass
class Family:
    name: str
    make: Callable[[int], Arrays]
    symmetries: dict[str, Callable[[Arrays, np.random.Generator], Arrays]]


def families(scale: str) -> list[Family]:
    if scale == "minilm":
        h, ff, heads, layers, vocab, pos = 384, 1536, 12, 6, 30522, 512
        ch, inner, groups = 320, 640, 32
    else:
        h, ff, heads, layers, vocab, pos = 64, 256, 4, 2, 200, 32
        ch, inner, groups = 64, 128, 8

    def bert(seed: int) -> Arrays:
        return pm.bert(seed, hidden=h, layers=layers, ff=ff, vocab=vocab, positions=pos)

    def ffn(a: Arrays, rng: np.random.Generator) -> Arrays:
        for n in range(layers):
            a = pm.bert_permute_ffn(a, n, rng.permutation(ff))
        return a

    def heads_(a: Arrays, rng: np.random.Generator) -> Arrays:
        for n in range(layers):
            a = pm.bert_permute_heads(a, n, rng.permutation(heads), heads=heads)
        return a

    def hidden(a: Arrays, rng: np.random.Generator) -> Arrays:
        return pm.bert_permute_hidden(a, rng.permutation(h))

    def everything(a: Arrays, rng: np.random.Generator) -> Arrays:
        return ffn(heads_(hidden(a, rng), rng), rng)

    def groupnorm(a: Arrays, rng: np.random.Generator) -> Arrays:
        return pm.unet_permute(a, pm.group_perm(ch, groups, rng), pm.group_perm(inner, groups, rng))

    def relu(a: Arrays, rng: np.random.Generator) -> Arrays:
        a = pm.mlp_permute(a, 0, rng.permutation(256), np.exp(rng.uniform(-1, 1, 256)))
        return pm.mlp_permute(a, 1, rng.permutation(256), np.exp(rng.uniform(-1, 1, 256)))

    return [
        Family("bert", bert, {"FFN neurons": ffn, "attention heads": heads_, "hidden dimension": hidden,
                              "all three": everything}),
        Family("unet", lambda s: pm.unet(s, channels=ch, inner=inner), {"GroupNorm channel groups": groupnorm}),
        Family("mlp", pm.mlp, {"ReLU neurons + positive scaling": relu}),
    ]


@dataclass
class Tally:
    hit: int = 0
    total: int = 0
    false_links: int = 0
    asked: int = 0
    seconds: list[float] = field(default_factory=list)

    def row(self, name: str) -> str:
        rate = f"{self.hit}/{self.total} = {self.hit / self.total:.2f}" if self.total else "-"
        secs = f"{statistics.median(self.seconds):.2f} s" if self.seconds else "-"
        return f"| {name} | {rate} | {self.false_links}/{self.asked} | {secs} |"


VERDICTS: list[str] = []  # every query's answers in order, for comparing two versions of the code
WEIGHTS = True  # False: the suspect's fingerprint alone (a stored fingerprint, a service query)


def _ask(suspect: Arrays, bank: list[BankModel]) -> tuple[LineageReport, float]:
    t = time.perf_counter()
    rep = answer(fingerprint_arrays(suspect), bank, canonical_arrays(suspect) if WEIGHTS else None)
    secs = time.perf_counter() - t
    VERDICTS.append(" || ".join(rep.explanations()))
    return rep, secs


def _links(rep: LineageReport) -> set[str]:
    return ({s.entry for s in rep.same} | {d.entry for d in rep.derived} | {r.entry for r in rep.related}
            | {e for m in rep.merges for e in m.parts})


def evaluate(scale: str = "small", seeds: int = 3, drifts: tuple[float, ...] = (0.01, 0.02, 0.05),
             log: Callable[[str], None] | None = None) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}

    def tally(key: str) -> Tally:
        return tallies.setdefault(key, Tally())

    rng = np.random.default_rng(22)
    for fam in families(scale):
        bases = {f"{fam.name}-{s}": fam.make(100 + s) for s in range(seeds)}
        bank = [BankModel("flagged", n, "checkpoint", fingerprint_arrays(a)) for n, a in bases.items()]
        stranger = fam.make(999)  # never banked
        for sym, rewrite in fam.symmetries.items():
            for name, base in bases.items():
                label = f"flagged/{name}"
                p = rewrite(base, rng)
                rep, secs = _ask(p, bank)
                t = tally(f"pure: {sym} -> same weights up to permutation")
                t.total += 1
                t.hit += [s.entry for s in rep.same] == [label] and rep.same[0].permutation is not None
                t.asked += len(bank) - 1
                t.false_links += len(_links(rep) - {label})
                t.seconds.append(secs)
                for drift in drifts:
                    rep, secs = _ask(pm.fine_tune(rewrite(base, rng), drift, int(rng.integers(1 << 30))), bank)
                    # no base banked: a relative whose direction is not measured (related)
                    t = tally(f"{sym} + fine-tune {100 * drift:g}% -> fine-tune relative")
                    t.total += 1
                    t.hit += ({d.entry for d in rep.derived} | {r.entry for r in rep.related} == {label}
                              and not rep.same)
                    t.asked += len(bank) - 1
                    t.false_links += len(_links(rep) - {label})
                    t.seconds.append(secs)
                if log:
                    log(f"{fam.name} {sym} {name}: {rep.explanations()[0][:160]}")
            rep, secs = _ask(rewrite(stranger, rng), bank)
            t = tally("unrelated base, permuted -> no link")
            t.asked += len(bank)
            t.false_links += len(_links(rep))
            t.seconds.append(secs)
    for name, models, rewrite in _trained():
        bank = [BankModel("flagged", n, "checkpoint", fingerprint_arrays(a)) for n, a in models.items()]
        for n, a in models.items():
            for drift in (0.0, 0.02):
                p = rewrite(a, rng)
                if drift:
                    p = pm.fine_tune(p, drift, 5)
                rep, secs = _ask(p, bank)
                t = tally(f"trained {name}: permuted{' + 2% fine-tune' if drift else ''} copy -> its origin only")
                t.total += 1
                t.hit += _links(rep) == {f"flagged/{n}"}
                t.asked += len(bank) - 1
                t.false_links += len(_links(rep) - {f"flagged/{n}"})
                t.seconds.append(secs)
    return tallies


def _trained() -> list[tuple[str, Mapping[str, Arrays], Callable[[Arrays, np.random.Generator], Arrays]]]:
    sizes = (16, 96, 96, 6)
    mlps = {f"mlp-seed{s}": pm.train_mlp(s, steps=250, sizes=sizes) for s in range(3)}

    def mlp_rewrite(a: Arrays, rng: np.random.Generator) -> Arrays:
        return pm.mlp_permute(pm.mlp_permute(a, 0, rng.permutation(96)), 1, rng.permutation(96))

    out: list[tuple[str, Mapping[str, Arrays], Callable[[Arrays, np.random.Generator], Arrays]]] = [
        ("numpy MLPs", mlps, mlp_rewrite)]
    files = sorted(DATA.glob("trained_bert_seed*.safetensors"))
    if files:
        from safetensors.numpy import load_file

        berts = {f.stem: load_file(str(f)) for f in files}

        def bert_rewrite(a: Arrays, rng: np.random.Generator) -> Arrays:
            h = a["bert.embeddings.LayerNorm.weight"].shape[0]
            ff = a["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]
            b = pm.bert_permute_hidden(a, rng.permutation(h))
            for n in range(2):
                b = pm.bert_permute_heads(b, n, rng.permutation(4))
                b = pm.bert_permute_ffn(b, n, rng.permutation(ff))
            return b

        out.append(("torch BERTs", berts, bert_rewrite))
    return out


def table(tallies: Mapping[str, Tally]) -> str:
    lines = ["| suspect -> expected answer | found as expected | false links / entries asked | median s per query |",
             "|---|---|---|---|"]
    return "\n".join(lines + [t.row(k) for k, t in tallies.items()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", choices=("small", "minilm"), default="small")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--verdicts", type=Path, help="write every query's answers here, one line each")
    ap.add_argument("--fingerprint-only", action="store_true",
                    help="ask with the suspect's fingerprint alone (no weights to align with)")
    args = ap.parse_args(argv)
    global WEIGHTS
    WEIGHTS = not args.fingerprint_only
    t0 = time.perf_counter()
    tallies = evaluate(args.scale, args.seeds, log=print if args.verbose else None)
    print(f"scale {args.scale}, {args.seeds} bases per family, "
          f"{'fingerprint only' if args.fingerprint_only else 'with the suspect weights'}; wall {time.perf_counter() - t0:.0f} s")
    print(table(tallies))
    if args.verdicts:
        args.verdicts.write_text("".join(v + "\n" for v in VERDICTS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
