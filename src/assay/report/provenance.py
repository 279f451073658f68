"""Provenance section of a file record: evidence records and one cautious verdict."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

Claim = Literal["ai-generated", "ai-edited", "camera-captured", "edited", "unknown"]
Strength = Literal["cryptographic", "strong", "moderate", "weak"]


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str  # e.g. "c2pa", "iptc", "a1111", "comfyui", "novelai", "watermark", "exif"
    claim: Claim
    strength: Strength
    summary: str  # one plain sentence an examiner can cite
    facts: dict[str, Any] = Field(default_factory=dict)


class EvidenceError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    message: str


class ProvenanceReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: str
    evidence: list[Evidence] = Field(default_factory=list)
    errors: list[EvidenceError] = Field(default_factory=list)
    # Did the invisible-watermark search run on pixels big enough to carry a mark?
    # Only then does the text output say what its absence means (not in the JSON).
    _watermark_searched: bool = PrivateAttr(default=False)

    def mark_watermark_searched(self, searched: bool = True) -> None:
        self._watermark_searched = searched

    @property
    def watermark_searched(self) -> bool:
        return self._watermark_searched
