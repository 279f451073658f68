"""Hash exchanges: banks kept in sync with hash-sharing programmes (NCMEC, StopNCII,
Meta's ThreatExchange, Tech Against Terrorism) or a local file, through
python-threatexchange's ``SignalExchangeAPI`` implementations (``threatexchange`` is
an optional dependency: ``pip install 'assay[exchanges]'``).

- :mod:`.config`: the ``exchanges`` table (settings, checkpoint, last fetch, lease);
- :mod:`.credentials`: credentials from the environment or an owner-only file, and
  ``redact`` for every message that could carry them;
- :mod:`.adapters`: per programme, the library's API object and the mapping of its
  records onto assay's signal types;
- :mod:`.fetch`: incremental fetch, one transaction per page;
- :mod:`.share`: review decisions sent back as feedback where the programme takes it.
"""

from __future__ import annotations

from ..errors import ExchangeError

__all__ = ["ExchangeError", "require_library"]


def require_library() -> None:
    """ExchangeError with what to install if python-threatexchange is missing."""
    try:
        import threatexchange  # noqa: F401
    except ImportError:
        raise ExchangeError("hash exchanges need python-threatexchange, which is not installed",
                            hint="pip install 'assay[exchanges]'") from None
