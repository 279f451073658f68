"""One exception tree. Every error a user can see says what failed and what to do next."""

from __future__ import annotations

from pathlib import Path


class AssayError(Exception):
    """Base of every error assay raises on purpose.

    ``code`` is a short stable identifier (used in JSON output and reports);
    ``str(error)`` is the human message.
    """

    code = "error"
    exit_code = 1  # the `assay` command's exit status for this error

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other arguments than their message: rebuild from the state, so
        # that an error raised in another process (the service's decoder, a scan worker)
        # arrives whole instead of failing to unpickle.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type[AssayError], args: tuple[object, ...], state: dict[str, object]) -> AssayError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class InputError(AssayError):
    """A file given to assay cannot be read or understood."""

    code = "bad-input"

    def __init__(self, path: str | Path, reason: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", hint=hint)


class UnsupportedFormat(InputError):
    code = "unsupported-format"


class DecodeError(InputError):
    code = "decode-error"


class TooLarge(InputError):
    """File or decoded image exceeds a configured limit (decompression bombs, huge files)."""

    code = "too-large"


class InvalidSignal(AssayError):
    """A hash string is malformed for its signal type."""

    code = "invalid-signal"
    exit_code = 2  # from the command line it is a bad option value (files wrap it per line)

    def __init__(self, signal_type: str, value: str, reason: str) -> None:
        self.signal_type = signal_type
        self.value = value
        self.reason = reason
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(f"invalid {signal_type} value {shown!r}: {reason}")


class UnknownSignalType(AssayError):
    code = "unknown-signal-type"
    exit_code = 2


class StoreError(AssayError):
    """The bank store (database) cannot be opened or written."""

    code = "store-error"


class IndexUnavailable(AssayError):
    """A service's own index (its text index) is missing or damaged: the operator's
    problem, not the caller's."""

    code = "index-unavailable"


class StoreMissing(StoreError):
    """A store named on purpose (``--db``, ``ASSAY_DB``) does not exist, and creating
    one was not asked for: a typo must not scan against a new, empty store."""

    code = "store-missing"
    exit_code = 2  # a value of --db / ASSAY_DB that names nothing is bad usage


class ChangesPruned(AssayError):
    """An index's cursor is older than the oldest change the store still keeps (the
    ``changes`` table was pruned past it): it cannot catch up incrementally and must be
    built again from the store. ``watermark`` is the highest change seq pruned."""

    code = "changes-pruned"

    def __init__(self, message: str, *, watermark: int) -> None:
        super().__init__(message, hint="load the index again from the store")
        self.watermark = watermark


class BankNotFound(AssayError):
    code = "bank-not-found"


class BankExists(AssayError):
    code = "bank-exists"


class BankImportError(AssayError):
    """An import was rejected as a whole; nothing was written.

    ``problems`` lists ``(line_number, reason)`` pairs, 1-based line numbers.
    """

    code = "import-rejected"

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = problems
        first = "; ".join(f"line {n}: {r}" for n, r in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{source}: import rejected, nothing was imported: {first}{more}",
            hint="fix the listed lines and import again",
        )


class InvalidBankInput(AssayError):
    """A bank name, content id, note or meta given to the store is not acceptable."""

    code = "invalid-bank-input"


class UnsafeInput(InputError):
    """A file carries content that would run code if loaded the usual way (e.g. a
    pickle importing ``os.system``); assay refuses to go further than its scan.

    ``details`` holds the evidence (for model files: the pickle safety reports).
    """

    code = "unsafe-input"

    def __init__(
        self, path: str | Path, reason: str, *, details: list[object] | None = None
    ) -> None:
        super().__init__(path, reason, hint="do not load this file with pickle or torch.load")
        self.details = details or []


# --- service (HTTP API) errors -------------------------------------------------------
class Unauthorized(AssayError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthorized"


class Forbidden(AssayError):
    """A valid API key whose role does not allow the operation."""

    code = "forbidden"


class RateLimited(AssayError):
    """Too many requests for one API key; ``retry_after`` is in seconds."""

    code = "rate-limited"

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class Busy(RateLimited):
    """A service worker is at its budget of heavy work (large image decodes); try again
    after ``retry_after`` seconds."""

    code = "busy"


class InvalidReview(AssayError):
    """A review decision that cannot be recorded: an unknown decision, a malformed record
    id, a note with control characters."""

    code = "invalid-review"
    exit_code = 2


class NotFound(AssayError):
    """A named thing (entry, job, key) does not exist."""

    code = "not-found"


class ExchangeError(AssayError):
    """A hash exchange cannot be configured or fetched: bad settings, missing or unsafe
    credentials, an answer from the programme that cannot be used. Messages never carry
    credentials (assay.exchanges.credentials.redact)."""

    code = "exchange-error"
