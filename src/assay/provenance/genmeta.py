"""Generator metadata entry point (the implementation lives in ``generators``)."""

from __future__ import annotations

from .context import is_comfyui_exif_value
from .generators import SOURCES, generator_evidence
from .generators.novelai import NOVELAI_PUBLIC_KEY

__all__ = ["NOVELAI_PUBLIC_KEY", "SOURCES", "generator_evidence", "is_comfyui_exif_value"]
