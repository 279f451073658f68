"""Model section of a file record (model-file forensics)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: str
    details: dict[str, Any] = Field(default_factory=dict)
