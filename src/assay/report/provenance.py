"""Provenance section of a file record: evidence records and one cautious verdict."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
