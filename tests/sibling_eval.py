"""Fine-tunes of a flagged checkpoint against sibling fine-tunes of its base.

A flagged checkpoint F is a base B plus F's change; a suspect is either F trained further
(F + its own change: it should be a 'derived' match against F) or a sibling (B + its own
change: two fine-tunes of one base share the base, not each other's training, so it must
not be a match against F). Changes are full-rank (every tensor) or LoRA-like (rank-8 on
the attention projections), of several sizes; the bank holds F with its base B (kind
base) or F alone. "stress" rows (not in the rates) are siblings whose change shares part
of F's direction, as fine-tunes on similar data might: what the rule does with them. Every suspect is scored by the scan's own rule
(:func:`assay.models.lineage_analyzer.lineage_matches`): a match against F of any
relation.

``PYTHONPATH=src python tests/sibling_eval.py --seeds 10`` prints the rates.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lineage_eval as ev  # noqa: E402
import modelgen  # noqa: E402
from assay.models.fingerprint import fingerprint_arrays  # noqa: E402
from assay.models.lineage import BankModel, answer  # noqa: E402
from assay.models.lineage_analyzer import lineage_matches  # noqa: E402

Change = Callable[[ev.Model, int], ev.Model]


def full(rel: float) -> Change:
    return lambda m, seed: ev.fine_tune(m, rel, seed)


def lora(rel: float, rank: int = 8) -> Change:
    """A LoRA of relative size ``rel`` merged at strength 1 (attention projections only);
    its factors are drawn from the base B (only their shapes and norms matter)."""
    return lambda m, seed: ev.apply_lora(m, ev.random_lora(m, rank, seed, rel=rel), 1.0)


def sharing(rho: float, own: Change) -> Callable[[ev.Model, ev.Model, int], ev.Model]:
    """A sibling whose change points partly F's way (fine-tunes on similar data): rho of
    F's change plus sqrt(1 - rho^2) of a change of its own drawn like F's (cosine ~rho)."""
    def recipe(b: ev.Model, f: ev.Model, seed: int) -> ev.Model:
        other = own(b, seed)
        k = float(np.sqrt(1 - rho * rho))
        return ev.Lazy(b, lambda key: (b[key] + np.float32(rho) * (f[key] - b[key])
                                       + np.float32(k) * (other[key] - b[key])).astype(np.float32))
    return recipe


# (name, F's change, the suspect's recipe from (B, F, seed), truth: derives from F)
def families() -> list[tuple[str, Change, Callable[[ev.Model, ev.Model, int], ev.Model], bool]]:
    out = []
    for fname, fchange in (("F = B + 5% full", full(0.05)), ("F = B + LoRA 15%", lora(0.15))):
        for sname, recipe, truth in (
            ("F + 1% full", lambda b, f, s: ev.fine_tune(f, 0.01, s), True),
            ("F + 5% full", lambda b, f, s: ev.fine_tune(f, 0.05, s), True),
            ("F + 8% full, fp16", lambda b, f, s: ev.to_fp16(ev.fine_tune(f, 0.08, s)), True),
            ("F + LoRA 10%", lambda b, f, s: lora(0.10, 4)(f, s), True),
            ("F + LoRA 30%", lambda b, f, s: lora(0.30, 16)(f, s), True),
            ("B + 1% full", lambda b, f, s: ev.fine_tune(b, 0.01, s), False),
            ("B + 5% full", lambda b, f, s: ev.fine_tune(b, 0.05, s), False),
            ("B + 10% full, fp16", lambda b, f, s: ev.to_fp16(ev.fine_tune(b, 0.10, s)), False),
            ("B + LoRA 15%", lambda b, f, s: lora(0.15)(b, s), False),
            ("B + LoRA 30% r16", lambda b, f, s: lora(0.30, 16)(b, s), False),
            ("stress: B + change sharing 30% of F's direction", sharing(0.3, fchange), False),
            ("stress: B + change sharing 60% of F's direction", sharing(0.6, fchange), False),
        ):
            out.append((f"{fname} | {sname}", fchange, recipe, truth))
    return out


def run(seeds: int, scale: float, *, verbose: bool = False) -> dict[tuple[str, bool], list[int]]:
    specs = {k: v for k, v in modelgen.sd15(scale, dt="F32").items() if v[0] == "F32"}
    rows: dict[tuple[str, bool], list[int]] = {}  # (family, base banked) -> [matches, total]
    for seed in range(seeds):
        b = ev.kept(ev.random_model(specs, 1000 + seed))
        fb = BankModel("bases", "B", "base", fingerprint_arrays(b))
        fps: dict[str, BankModel] = {}
        for name, fchange, recipe, truth in families():
            fkey = name.split(" | ")[0]
            if fkey not in fps:
                f = ev.kept(fchange(b, 2000 + seed))
                fps[fkey] = BankModel("flagged", "F", "checkpoint", fingerprint_arrays(f))
                fmodels = f
            suspect = fingerprint_arrays(recipe(b, fmodels, 3000 + seed))
            for with_base in (True, False):
                bank = [fb, fps[fkey]] if with_base else [fps[fkey]]
                rep = answer(suspect, bank)
                hits = [m for m in lineage_matches(rep, {"bases/B": "base", "flagged/F": "checkpoint"})
                        if m.content_id == "F"]
                row = rows.setdefault((name, with_base), [0, 0, int(truth)])
                row[0] += bool(hits)
                row[1] += 1
                if verbose:
                    print(name, with_base, [m.value for m in hits], rep.explanations(), file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1 / 16)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    rows = run(args.seeds, args.scale, verbose=args.verbose)
    print("| suspect | truth | base banked | matched against F |\n|---|---|---|---|")
    for (name, with_base), (hit, n, truth) in rows.items():
        print(f"| {name} | {'derived' if truth else 'sibling'} | {'yes' if with_base else 'no'} | {hit}/{n} |")
    for truth in (True, False):
        for with_base in (True, False):
            mine = [r for (name, wb), r in rows.items() if r[2] == truth and wb == with_base and "stress" not in name]
            hit, n = sum(r[0] for r in mine), sum(r[1] for r in mine)
            what = "true-positive" if truth else "false-match"
            print(f"{what} rate, base {'banked' if with_base else 'not banked'}: {hit}/{n} = {hit / n:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
