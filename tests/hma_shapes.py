"""Answer shapes of Hasher-Matcher-Actioner (OpenMediaMatch), written from what HMA
documents and tests (hasher-matcher-actioner/src/OpenMediaMatch: schemas/*.py, the
blueprints' docstrings, tests/test_api*.py), not imported from it. Strict: an id sent
as a string or a distance sent as a number is what an HMA client would trip on.
Extra keys are allowed where HMA's own models allow them (assay adds ``content_id``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

STRICT = ConfigDict(strict=True)
STRICT_OPEN = ConfigDict(strict=True, extra="allow")
STRICT_CLOSED = ConfigDict(strict=True, extra="forbid")


class MatchWithDistance(BaseModel):
    """One hit: HMA's integer content id and its distance as a string."""

    model_config = STRICT_OPEN
    bank_content_id: int
    distance: str


class Lookup(RootModel[dict[str, list[MatchWithDistance]]]):
    """GET /m/lookup with signal_type: bank name -> hits."""

    model_config = STRICT


class LookupByType(RootModel[dict[str, dict[str, list[MatchWithDistance]]]]):
    """POST /m/lookup (upload): signal type -> bank name -> hits."""

    model_config = STRICT


class RawLookup(BaseModel):
    """GET /m/raw_lookup: the index's hits, content ids only."""

    model_config = STRICT
    matches: list[int]


class RawLookupWithDistance(BaseModel):
    """GET /m/raw_lookup with include_distance."""

    model_config = STRICT
    matches: list[MatchWithDistance]


class Hashes(RootModel[dict[str, str]]):
    """/h/hash: signal type -> hash."""

    model_config = STRICT


class IndexTypeStatus(BaseModel):
    model_config = STRICT_CLOSED
    present: bool
    built_to: int
    size: int


class IndexStatus(RootModel[dict[str, IndexTypeStatus]]):
    model_config = STRICT


class Similarity(BaseModel):
    model_config = STRICT_CLOSED
    distance: int | None = None


class Compare(RootModel[dict[str, tuple[bool, Similarity]]]):
    """/m/compare: signal type -> [match, {distance}]."""

    model_config = STRICT


class BankConfig(BaseModel):
    model_config = STRICT_CLOSED
    name: str
    matching_enabled_ratio: float


class BankList(RootModel[list[BankConfig]]):
    model_config = STRICT


class BankedContentMetadata(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)
    content_id: str | None = None
    content_uri: str | None = None
    json_: dict[str, Any] | None = Field(default=None, alias="json")
    collab: dict[str, list[str]] | None = None


class BankContent(BaseModel):
    model_config = STRICT_CLOSED
    id: int
    disable_until_ts: int
    original_media_uri: str | None = None
    bank: BankConfig
    signals: dict[str, str] | None = None
    metadata: BankedContentMetadata | None = None
    note: str | None = None


class ContentAdded(BaseModel):
    """POST /c/bank/<name>/content and /signal: the new content's id and its signals."""

    model_config = STRICT_CLOSED
    id: int
    signals: dict[str, str]


class Deleted(BaseModel):
    model_config = STRICT_CLOSED
    deleted: int


class Success(BaseModel):
    model_config = STRICT_CLOSED
    message: str


class SignalTypeConfig(BaseModel):
    model_config = STRICT_CLOSED
    name: str
    enabled_ratio: float


class SignalTypes(RootModel[list[SignalTypeConfig]]):
    model_config = STRICT


class ContentTypeConfig(BaseModel):
    model_config = STRICT_CLOSED
    name: str
    enabled: bool


class ContentTypes(RootModel[list[ContentTypeConfig]]):
    model_config = STRICT
