"""The `assay` command: a thin face over the library. Parses, calls, renders.

Exit codes: 0 done; 1 an error (message on stderr); 2 bad usage; 3 `scan
--fail-on-match` found a match. Every command that prints results takes
``--json`` (schemas in docs/json.md).
"""

from __future__ import annotations

import sys

from ..errors import AssayError

# Each command module registers its commands when imported, and is imported when one of
# its commands is used (_common.COMMANDS): `assay hash` never loads the code of `scan`.
from ._common import _esc, app, err

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except AssayError as exc:  # raised outside a command (the group handles the rest)
        err.print(f"[red]error:[/red] {_esc(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
