"""Provenance: evidence that an image was generated (and by what), or captured.

One module per evidence source; each exposes ``evidence(ctx) -> list[Evidence]``.
"""
