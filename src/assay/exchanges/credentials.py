"""Credentials of exchanges: from an environment variable or a file only its owner can
read; never stored, never logged, and cut out of every message (``redact``).

Where they come from, first found wins:

1. ``ASSAY_EXCHANGE_<NAME>_CREDENTIALS`` (the exchange's name upper-cased, other
   characters than letters and digits as ``_``);
2. the file named by the exchange's ``credentials_file`` setting, which must belong to
   the user running assay and be unreadable by group and others (``chmod 600``);
3. python-threatexchange's own variable for the programme (``TX_NCMEC_CREDENTIALS``,
   ``TX_ACCESS_TOKEN``, ``TX_STOPNCII_KEYS``, ``PYTX_TAT_CREDENTIALS``).

The text has the library's format: ``user:password`` (NCMEC, TAT), the app token
``APPID|SECRET`` (ThreatExchange), ``function_key,subscription_key`` (StopNCII).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, quote_plus

from ..errors import ExchangeError

LIBRARY_ENV: Final = {
    "ncmec": "TX_NCMEC_CREDENTIALS",
    "threatexchange": "TX_ACCESS_TOKEN",
    "stopncii": "TX_STOPNCII_KEYS",
    "tat": "PYTX_TAT_CREDENTIALS",
}
MAX_FILE = 64 * 1024


def env_var(name: str) -> str:
    return "ASSAY_EXCHANGE_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_CREDENTIALS"


def read_file(path: str | Path) -> str:
    """The text of a credentials file, refused unless only its owner (this user) can read it."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise ExchangeError(f"credentials file {p} does not exist") from None
    except OSError as exc:
        raise ExchangeError(f"credentials file {p} cannot be opened: {exc.strerror or exc}",
                            hint="it must be a regular file (not a symbolic link) readable by you") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ExchangeError(f"credentials file {p} is not a regular file")
        if st.st_mode & 0o077:
            raise ExchangeError(
                f"credentials file {p} can be read or written by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                "refused", hint=f"make it private: chmod 600 {p}")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise ExchangeError(f"credentials file {p} belongs to another user (uid {st.st_uid}); refused",
                                hint="the file must belong to the user running assay")
        if st.st_size > MAX_FILE:
            raise ExchangeError(f"credentials file {p} is larger than {MAX_FILE} bytes")
        data = os.read(fd, MAX_FILE + 1)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ExchangeError(f"credentials file {p} is not UTF-8 text") from None


def find(name: str, kind: str, settings: dict[str, Any]) -> tuple[str, str]:
    """(credential text, where it came from) for an exchange; ExchangeError if none."""
    var = env_var(name)
    value = os.environ.get(var, "").strip()
    if value:
        return value, f"environment variable {var}"
    path = settings.get("credentials_file")
    if path:
        return read_file(path), f"file {path}"
    lib = LIBRARY_ENV.get(kind)
    if lib and os.environ.get(lib, "").strip():
        return os.environ[lib].strip(), f"environment variable {lib}"
    where = [f"the environment variable {var}"]
    if lib:
        where.append(lib)
    raise ExchangeError(f"exchange {name!r} ({kind}) has no credentials",
                        hint=f"set {' or '.join(where)}, or point --credentials-file at a file "
                             "only you can read (chmod 600)")


def secrets_of(text: str) -> list[str]:
    """The pieces of a credential text worth hiding on their own (a password without its
    user name still must not be shown)."""
    parts = {text}
    for sep in (":", ",", "|"):
        if sep in text:
            parts.update(p for p in text.split(sep))
    return sorted((p for p in parts if len(p) >= 4), key=len, reverse=True)


_QUERY_SECRET = re.compile(
    r"(?i)\b(access_token|token|key|code|password|passwd|secret|signature|sig|subscription-key|apikey|api_key)=[^&\s'\"]+")
_USERINFO = re.compile(r"(?i)\b(https?://)[^/\s@]+@")
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)\s+[A-Za-z0-9+/=._-]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret, every credential-like query parameter, URL user
    information and Authorization header value replaced by ``***``."""
    for s in secrets:
        if not s:
            continue
        for form in {s, quote(s, safe=""), quote_plus(s, safe="")}:
            text = text.replace(form, "***")
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}=***", text)
    text = _USERINFO.sub(r"\1***@", text)
    return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)} ***", text)


# -- logs: the HTTP libraries log request lines (ThreatExchange's carry the token) -------
_ACTIVE: list[str] = []
_LOGGERS = ("", "urllib3.connectionpool", "urllib3.util.retry", "requests", "threatexchange")


class _RedactFilter:
    """A logging filter that rewrites any record carrying a secret of a running fetch."""

    def filter(self, record: Any) -> bool:
        if not _ACTIVE:
            return True
        try:
            msg = record.getMessage()
        except Exception:  # a record that cannot be formatted: leave it to logging
            return True
        shown = redact(msg, list(_ACTIVE))
        if shown != msg:
            record.msg, record.args = shown, ()
        return True


_FILTER = _RedactFilter()


class redacting:
    """Within the block, log records (of the root, urllib3, requests and
    python-threatexchange loggers) have ``secrets`` and credential-like URL parts cut out."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if s]

    def __enter__(self) -> redacting:
        import logging

        for name in _LOGGERS:
            lg = logging.getLogger(name)
            if _FILTER not in lg.filters:
                lg.addFilter(_FILTER)  # type: ignore[arg-type]
        _ACTIVE.extend(self.secrets)
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self.secrets:
            if s in _ACTIVE:
                _ACTIVE.remove(s)
