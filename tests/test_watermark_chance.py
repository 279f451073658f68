"""Watermark evidence strength follows how often an UNMARKED image would match as many
bits (watermark.chance_at_most), not Stability's detector bands alone: its "likely" and
"very likely" bands are reached by chance about once in a few hundred to a few thousand
images, and a scan of a 1,000-file folder found two unmarked files at "likely"
(an SD 2.x 26 of 32, an SDXL 35 of 48)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assay.provenance import watermark as wm
from assay.provenance.verdict import STRENGTH_RANK

PAYLOAD = {p.name: p for p in wm.PAYLOADS}


def match(name: str, matched: int) -> wm.WatermarkMatch:
    p = PAYLOAD[name]
    return wm.WatermarkMatch(p, matched, wm.level_for(matched, p))


def uniform_tail(n: int, k: int) -> float:
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2**n


@pytest.mark.parametrize("name", ["sd1", "sd2", "sdxl"])
def test_the_bound_covers_fair_coins_and_falls_with_every_bit(name: str) -> None:
    p = PAYLOAD[name]
    n = len(p.bits)
    previous = 1.0
    for k in range(p.cuts[1] + 1, n + 1):
        bound = wm.chance_at_most(p, k)
        assert bound >= uniform_tail(n, k) * 0.999  # q = 1/2 is one of the cases maximised over
        assert bound < previous
        previous = bound


@pytest.mark.parametrize(("name", "q", "k"), [("sdxl", 0.5, 38), ("sdxl", 0.3, 36), ("sd2", 0.3, 24),
                                              ("sd2", 0.5, 27)])
def test_the_bound_holds_for_biased_unmarked_bits(name: str, q: float, k: int) -> None:
    """Bits that read 1 with probability q (unmarked photos decode to nearly all zeros):
    the observed rate of >= k matched bits never exceeds the bound."""
    p = PAYLOAD[name]
    rng = np.random.default_rng(3)
    reads = rng.random((400_000, len(p.bits))) < q
    matched = (reads == np.array(p.bits, dtype=bool)).sum(axis=1)
    observed = float((matched >= k).mean())
    assert observed > 0  # the case is one chance does reach
    assert observed <= wm.chance_at_most(p, k) * 1.1 + 3 / 400_000


def test_the_two_unmarked_files_a_scan_met_are_at_most_weak() -> None:
    (sd2,) = wm.evidence_from_matches([match("sd2", 26)])
    assert sd2.strength == "weak" and sd2.facts["confidence"] == "likely"
    assert 1e-4 < sd2.facts["chance_at_most"] <= 1e-3
    assert "at most about once in" in sd2.summary
    assert wm.evidence_from_matches([match("sdxl", 35)]) == []  # chance ~1 in 640: no evidence


def test_strength_needs_chance_below_one_in_a_million_or_a_billion() -> None:
    for name in ("sd1", "sd2", "sdxl"):
        p = PAYLOAD[name]
        for k in range(len(p.bits) + 1):
            m = match(name, k)
            strength = wm.strength_for(m)
            chance = wm.chance_at_most(p, k) if m.level in ("likely", "very likely") else None
            if strength == "strong":
                assert chance is not None and chance <= 1e-9
            elif strength == "moderate":
                assert chance is not None and 1e-9 < chance <= 1e-6
            elif strength == "weak":
                assert chance is not None and 1e-6 < chance <= 1e-3
            else:
                assert chance is None or chance > 1e-3
    # Stability's "very likely" at 36 of 48 is chance ~1 in 2,000: weak, not strong
    assert wm.strength_for(match("sdxl", 36)) == "weak"
    # a freshly marked image reads every bit
    assert {wm.strength_for(match(n, len(PAYLOAD[n].bits))) for n in PAYLOAD} == {"strong"}


def test_best_match_first_and_every_item_says_its_chance() -> None:
    ev = wm.evidence_from_matches([match("sd2", 30), match("sdxl", 48), match("sd1", 70)])
    assert [e.facts["payload"] for e in ev] == ["sdxl", "sd2"]
    assert [STRENGTH_RANK[e.strength] for e in ev] == sorted(STRENGTH_RANK[e.strength] for e in ev)
    assert all(e.facts["chance_at_most"] > 0 for e in ev)
    assert "once in 10^14 images" in ev[0].summary
