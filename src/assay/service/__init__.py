"""``assay serve``: the HTTP API over the same library calls as the CLI.

``create_app(settings)`` builds the FastAPI application of one worker; ``Settings``
holds its configuration. See docs/service.md. Imported lazily, so that the CLI
does not pay for FastAPI on every command.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(name)
