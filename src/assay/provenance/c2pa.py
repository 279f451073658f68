"""C2PA Content Credentials, read and validated with the official c2pa-python SDK.

Every manifest in the store (the active one and those of its ingredients) becomes
one Evidence record carrying its digital source type, claim generator, signer and
validation result. The SDK runs offline: remote manifests and OCSP are never
fetched (a file that points to a remote manifest is reported, with its URL, as
"not fetched"), and trust is decided only against the PEM bundle the caller gives.

Strength:
* signature and hashes valid, signer on the trust list ("Trusted"): cryptographic.
* valid but the signer is not on a trust list: cryptographic for AI claims (a
  signed "this is AI" is self-incriminating), moderate for camera or edit claims
  (anyone can mint a certificate and sign "digitalCapture").
* invalid (content altered after signing, broken signature): weak, with the
  failure codes; the declared claim is reported but not relied on.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import AssayError, DecodeError, InputError
from ..report.provenance import Claim, Evidence, Strength
from .xmp import digital_source_type

MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "gif": "image/gif",
    "avif": "image/avif",
    "heif": "image/heif",
}

# Never let the SDK reach the network because of a file's contents: no remote
# manifests, no OCSP, and (belt and braces, covering any other fetch such as
# identity-assertion resolution) an empty allow-list for the SDK's HTTP resolver.
OFFLINE_SETTINGS: dict[str, Any] = {
    "core": {"allowed_network_hosts": [], "allow_redirects": False},
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
}

_CLAIM_RANK: dict[Claim, int] = {
    "ai-generated": 0,
    "ai-edited": 1,
    "edited": 2,
    "camera-captured": 3,
    "unknown": 4,
}
# Actions that record where the content came from rather than a change to it.
_NEUTRAL_ACTIONS = {
    "c2pa.created",
    "c2pa.opened",
    "c2pa.placed",
    "c2pa.published",
    "c2pa.converted",
}
_MAX_LIST = 50  # cap on lists copied into facts from a hostile manifest

_contexts: dict[tuple[int, str | None, float], Any] = {}
_lock = threading.Lock()


def _sdk() -> Any:
    try:
        import c2pa
    except ImportError as exc:
        raise AssayError(
            f"C2PA check unavailable: {exc}", hint="install the c2pa-python package"
        ) from exc
    return c2pa


def _context(trust_anchors: Path | None) -> Any:
    """An SDK Context with offline settings (and trust anchors), built once per bundle."""
    c2pa = _sdk()

    # Keyed by process too: a native context must not be reused in a forked worker.
    key: tuple[int, str | None, float] = (os.getpid(), None, 0.0)
    pem: str | None = None
    if trust_anchors is not None:
        try:
            key = (os.getpid(), str(trust_anchors), trust_anchors.stat().st_mtime)
            pem = trust_anchors.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(trust_anchors, f"cannot read trust anchors: {exc}") from exc
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise InputError(trust_anchors, "trust anchors file holds no PEM certificate")
    with _lock:
        ctx = _contexts.get(key)
        if ctx is None:
            settings = c2pa.Settings.from_dict(OFFLINE_SETTINGS)
            if pem is not None:
                settings.update({"trust": {"trust_anchors": pem}})
            ctx = c2pa.Context(settings=settings)
            _contexts[key] = ctx
        return ctx


def read_store(
    path: Path, data: bytes, fmt: str, *, trust_anchors: Path | None = None
) -> dict[str, Any] | None:
    """The manifest store as the SDK reports it (JSON dict), or None when the file
    has no embedded manifest. A remote-only manifest yields ``{"remote_url": url}``.
    Raises DecodeError when the C2PA data cannot be parsed."""
    c2pa = _sdk()

    mime = MIME.get(fmt)
    if mime is None:
        return None
    ctx = _context(trust_anchors)
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, ctx)
        if reader is None:
            return None
        with reader:
            text = reader.json()
    except c2pa.C2paError as exc:
        msg = str(exc)
        # This SDK version raises the base class with a "Remote: ..." message; later
        # ones may use the RemoteManifest subclass.
        remote_cls = getattr(c2pa.C2paError, "RemoteManifest", ())
        if (
            isinstance(exc, remote_cls)
            or msg.startswith("Remote:")
            or "remote manifest" in msg.lower()
        ):
            return {"remote_url": _url_from(msg)}
        raise DecodeError(path, f"C2PA data unreadable: {_clean(msg)}") from exc
    try:
        store = json.loads(text)
    except ValueError as exc:
        raise DecodeError(path, f"C2PA SDK returned invalid JSON: {exc}") from exc
    if not isinstance(store, dict):
        raise DecodeError(path, "C2PA SDK returned a non-object manifest store")
    return store


def _url_from(msg: str) -> str | None:
    for word in msg.split():
        if word.startswith(("http://", "https://")):
            return _clean(word)[:2048]
    return None


def _clean(s: str) -> str:
    return "".join(c if c.isprintable() else " " for c in s)[:500]


def _name(agent: Any) -> str | None:
    if isinstance(agent, dict):
        agent = agent.get("name")
    return agent[:200] if isinstance(agent, str) and agent else None


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a in manifest.get("assertions") or []:
        if not isinstance(a, dict) or not str(a.get("label", "")).startswith("c2pa.actions"):
            continue
        data = a.get("data")
        acts = data.get("actions") if isinstance(data, dict) else None
        for act in acts if isinstance(acts, list) else []:
            if isinstance(act, dict):
                out.append(act)
    return out[:_MAX_LIST]


def _failures_for(store: dict[str, Any], label: str) -> list[str]:
    """Validation failure codes that concern one manifest (trust aside)."""
    entries: list[Any] = list(store.get("validation_status") or [])
    results = store.get("validation_results") or {}
    if isinstance(results, dict):
        active = results.get("activeManifest") or {}
        if isinstance(active, dict):
            entries += active.get("failure") or []
        for delta in results.get("ingredientDeltas") or []:
            vd = delta.get("validationDeltas") if isinstance(delta, dict) else None
            if isinstance(vd, dict):
                entries += vd.get("failure") or []
    for m in (store.get("manifests") or {}).values():
        for ing in m.get("ingredients") or [] if isinstance(m, dict) else []:
            if isinstance(ing, dict) and ing.get("active_manifest") == label:
                entries += [
                    dict(e, url=label)
                    for e in ing.get("validation_status") or []
                    if isinstance(e, dict)
                ]
    codes: list[str] = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        code, url = str(e.get("code", "")), str(e.get("url", ""))
        if not _concerns(url, label) or code.endswith(".untrusted") or code in codes:
            continue
        codes.append(code)
    return codes[:_MAX_LIST]


def _untrusted(store: dict[str, Any], label: str) -> bool:
    return any(
        isinstance(e, dict)
        and str(e.get("code", "")).endswith(".untrusted")
        and _concerns(str(e.get("url", "")), label)
        for e in store.get("validation_status") or []
    )


def _concerns(url: str, label: str) -> bool:
    """Does a validation entry's JUMBF URL point into the manifest ``label``?"""
    return url == label or f"/{label}/" in url + "/"


def manifest_evidence(store: dict[str, Any]) -> list[Evidence]:
    """One Evidence per manifest in the store, active manifest first."""
    if "remote_url" in store:
        url = store.get("remote_url") or "an unreadable address"
        return [
            Evidence(
                source="c2pa",
                claim="unknown",
                strength="weak",
                summary=(
                    f"The file points to a remote Content Credential at {url}; it was not "
                    "fetched (assay never fetches what a file points to), so nothing in it "
                    "was verified."
                ),
                facts={"remote_manifest": True, "remote_url": url, "fetched": False},
            )
        ]
    manifests = store.get("manifests") or {}
    if not isinstance(manifests, dict):
        return []
    active = store.get("active_manifest")
    state = str(store.get("validation_state") or "Unknown")
    labels = sorted(manifests, key=lambda k: (k != active, k))
    return [
        _one(store, label, manifests[label], label == active, state)
        for label in labels[:_MAX_LIST]
        if isinstance(manifests[label], dict)
    ]


def _one(
    store: dict[str, Any], label: str, m: dict[str, Any], is_active: bool, state: str
) -> Evidence:
    acts = _actions(m)
    terms: list[str] = []
    claim: Claim = "unknown"
    agent: str | None = None
    best: int | None = None
    for act in acts:
        dst = act.get("digitalSourceType")
        st = digital_source_type(dst) if isinstance(dst, str) else None
        if st is None:
            continue
        if st.term not in terms:
            terms.append(st.term)
        rank = _CLAIM_RANK[st.claim]
        # The action that declares the most telling source type names the tool.
        if best is None or rank < best or (rank == best and agent is None):
            claim, best = st.claim, rank
            agent = _name(act.get("softwareAgent")) or agent
    if claim == "unknown" and any(str(a.get("action")) not in _NEUTRAL_ACTIONS for a in acts):
        claim = "edited"
    info = m.get("claim_generator_info")
    cg_name = _name(info[0]) if isinstance(info, list) and info else None
    claim_generator = _name(m.get("claim_generator")) or cg_name
    generator = agent or cg_name or claim_generator or "unnamed software"
    sig = m.get("signature_info") if isinstance(m.get("signature_info"), dict) else {}
    failures = _failures_for(store, label)
    if is_active and state == "Invalid" and not failures:
        # The store is invalid because of an ingredient: say which codes made it so.
        failures = sorted(
            {c for lab in store.get("manifests") or {} for c in _failures_for(store, lab)}
        )
    if failures or (is_active and state == "Invalid"):
        validation = "invalid"
    elif state == "Trusted" and not _untrusted(store, label):
        validation = "trusted"
    else:
        validation = "valid"
    strength: Strength
    if validation == "invalid":
        strength = "weak"
    elif validation == "trusted" or claim in ("ai-generated", "ai-edited"):
        strength = "cryptographic"
    else:
        strength = "moderate"

    role = "active manifest" if is_active else "ingredient manifest"
    declared = f"declares {', '.join(terms)}" if terms else "declares no digital source type"
    signer = sig.get("common_name") or sig.get("issuer") or "an unnamed signer"
    if validation == "invalid":
        summary = (
            f"Content Credential present but invalid ({', '.join(failures) or state}): the "
            f"{role} from {generator} {declared}, but the content was altered after signing "
            "or the signature is broken."
        )
    else:
        trust = (
            "signed by a trusted certificate"
            if validation == "trusted"
            else "signature valid, but the signer is not on the configured trust list"
        )
        summary = (
            f"The {role} of its Content Credential ({generator}) {declared}; {trust} ({signer})."
        )
    facts: dict[str, Any] = {
        "label": label,
        "role": "active" if is_active else "ingredient",
        "validation": validation,
        "validation_state": state,
        "failure_codes": failures,
        "digital_source_types": terms,
        "generator": generator,
        "claim_generator": claim_generator,
        "signer_issuer": sig.get("issuer"),
        "signer_common_name": sig.get("common_name"),
        "signed_at": sig.get("time"),
        "actions": [str(a.get("action"))[:100] for a in acts],
        "title": _name(m.get("title")),
        "ingredients": [
            {
                "title": _name(i.get("title")),
                "relationship": i.get("relationship"),
                "manifest": i.get("active_manifest"),
            }
            for i in (m.get("ingredients") or [])[:_MAX_LIST]
            if isinstance(i, dict)
        ],
    }
    return Evidence(source="c2pa", claim=claim, strength=strength, summary=summary, facts=facts)


def evidence(
    path: Path, data: bytes, fmt: str, *, trust_anchors: Path | None = None
) -> list[Evidence]:
    """C2PA evidence for one file (empty when it carries no Content Credential)."""
    store = read_store(path, data, fmt, trust_anchors=trust_anchors)
    return [] if store is None else manifest_evidence(store)
