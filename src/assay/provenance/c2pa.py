"""C2PA Content Credentials, read and validated with the official c2pa-python SDK.

The ACTIVE manifest (the one that signs the file as it is) is the credential's
word about the file; every other manifest in the store is an ingredient's, i.e.
the asset's history ("made from an AI-generated ingredient"). Each manifest
becomes one Evidence record with its digital source type, generator, signer and
validation result; the verdict takes its headline from the active record only.

The SDK runs offline: remote manifests, OCSP and identity resolution are never
fetched (a file that points to a remote manifest is reported, with its URL, as
"not fetched"). Trust is decided against one PEM bundle of trust anchors: the
caller's (``--trust-anchors``), else ``$ASSAY_C2PA_TRUST_ANCHORS``, else the
bundled snapshot of the public C2PA trust list (trust/README.md). Every record
names the anchors it was checked against.

Strength:
* signature and bindings valid, signer chains to a configured anchor: cryptographic.
* valid, but the signer chains to no configured anchor: moderate ("signed, signer
  not trusted": anyone can mint a certificate and sign any claim).
* invalid (validation state Invalid, content altered after signing, broken
  signature, unloadable active manifest): weak, with the checks that failed; the
  declared claim is reported but not relied on.
"""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import AssayError, DecodeError, InputError
from ..report.provenance import Claim, Evidence, Strength
from .xmp import digital_source_type

ENV_TRUST_ANCHORS = "ASSAY_C2PA_TRUST_ANCHORS"  # PEM bundle that replaces the bundled list
BUNDLED_TRUST_LIST = "C2PA-TRUST-LIST.pem"
BUNDLED_TRUST_LABEL = "bundled C2PA trust list (issued 2026-08-05)"

# Sniffed format -> the media type the SDK reads it as. Every format the SDK reads
# that `sniff` recognises; images and documents, audio and video alike.
MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "dng": "image/dng",
    "gif": "image/gif",
    "avif": "image/avif",
    "heif": "image/heif",
    "jxl": "image/jxl",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "m4a": "audio/mp4",
    "avi": "video/msvideo",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
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
# Actions whose digital source type describes the asset itself (C2PA: every manifest
# starts with one of them).
_ORIGIN_ACTIONS = {"c2pa.created", "c2pa.opened"}
# Actions that record where the content came from rather than a change to it.
_NEUTRAL_ACTIONS = {
    "c2pa.created",
    "c2pa.opened",
    "c2pa.placed",
    "c2pa.published",
    "c2pa.converted",
    # The C2PA spec: none of these changes the content's "editorial" meaning (metadata
    # edits, re-encoding, a new container, removed assertions, a soft-binding watermark).
    "c2pa.edited.metadata",
    "c2pa.transcoded",
    "c2pa.repackaged",
    "c2pa.redacted",
    "c2pa.watermarked",
}
_MAX_LIST = 50  # cap on lists copied into facts from a hostile manifest
_UNLOADABLE = "Failed to load manifest"  # the SDK's explanation for an unreadable manifest

# Validation status code prefixes -> the check an examiner would name.
_CHECKS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("cawg.",), "identity assertion (CAWG)"),
    (("claimSignature.", "algorithm."), "claim signature"),
    (("signingCredential.",), "signing certificate"),
    (("timeStamp.",), "timestamp"),
    (
        (
            "assertion.dataHash.",
            "assertion.bmffHash.",
            "assertion.boxesHash.",
            "assertion.collectionHash.",
            "assertion.hardBinding",
            "assertion.multipleHardBindings",
        ),
        "hash binding",
    ),
    (("assertion.hashedURI.",), "assertion hash"),
    (("ingredient.",), "ingredient"),
)
CAWG_CHECK = "identity assertion (CAWG)"

_contexts: dict[tuple[int, str, float], Any] = {}
_lock = threading.Lock()


def _sdk() -> Any:
    try:
        import c2pa
    except ImportError as exc:
        raise AssayError(
            f"C2PA check unavailable: {exc}", hint="install the c2pa-python package"
        ) from exc
    return c2pa


# -- trust anchors ------------------------------------------------------------------


@dataclass(frozen=True)
class Anchors:
    """The PEM bundle trust is decided against, and how the evidence names it."""

    pem: str
    source: str
    stamp: float  # mtime of a user's file (0 for the bundled list): a changed file is reread


def resolve_anchors(trust_anchors: Path | None = None) -> Anchors:
    """``trust_anchors`` if given, else ``$ASSAY_C2PA_TRUST_ANCHORS``, else the bundled
    C2PA trust list. Raises InputError naming the file when it is unreadable or holds
    no certificate."""
    if trust_anchors is None:
        env = os.environ.get(ENV_TRUST_ANCHORS, "").strip()
        if env:
            trust_anchors = Path(env).expanduser()
    if trust_anchors is None:
        from importlib import resources  # when a credential is checked, not by every import

        pem = resources.files(__package__).joinpath("trust", BUNDLED_TRUST_LIST).read_text("utf-8")
        return Anchors(pem, BUNDLED_TRUST_LABEL, 0.0)
    try:
        stamp = trust_anchors.stat().st_mtime
        pem = trust_anchors.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputError(trust_anchors, f"cannot read trust anchors: {reason}") from exc
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise InputError(trust_anchors, "trust anchors file holds no PEM certificate")
    n = pem.count("-----BEGIN CERTIFICATE-----")
    return Anchors(pem, f"{trust_anchors} ({n} certificate{'s' if n != 1 else ''})", stamp)


def _context(anchors: Anchors) -> Any:
    """An SDK Context with offline settings and the trust anchors, built once per bundle."""
    c2pa = _sdk()
    # Keyed by process too: a native context must not be reused in a forked worker.
    key = (os.getpid(), anchors.source, anchors.stamp)
    with _lock:
        ctx = _contexts.get(key)
        if ctx is None:
            settings = c2pa.Settings.from_dict(OFFLINE_SETTINGS)
            settings.update({"trust": {"trust_anchors": anchors.pem}})
            ctx = c2pa.Context(settings=settings)
            _contexts[key] = ctx
        return ctx


# -- reading ------------------------------------------------------------------------


def read_store(
    path: Path, data: bytes | BinaryIO, fmt: str, *, trust_anchors: Path | None = None
) -> dict[str, Any] | None:
    """The manifest store as the SDK reports it (JSON dict), or None when the file
    has no embedded manifest. ``data`` is the file's bytes or an open binary file
    (which the SDK streams: a video is never read whole into memory). A remote-only manifest yields ``{"remote_url": url}``.
    The anchors used are under the key ``"_anchors"``.
    Raises DecodeError when the C2PA data cannot be parsed."""
    mime = MIME.get(fmt)
    if mime is None:
        return None
    anchors = resolve_anchors(trust_anchors)
    c2pa = _sdk()
    ctx = _context(anchors)
    try:
        stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        reader = c2pa.Reader.try_create(mime, stream, None, ctx)
        if reader is None:
            return None
        with reader:
            text = reader.json()
    except c2pa.C2paError as exc:
        msg = str(exc)
        if _NO_CREDENTIAL_POSSIBLE in msg:
            return None  # a JPEG XL codestream without a container has nowhere to hold one
        # This SDK version raises the base class with a "Remote: ..." message; later
        # ones may use the RemoteManifest subclass.
        remote_cls = getattr(c2pa.C2paError, "RemoteManifest", ())
        if (
            isinstance(exc, remote_cls)
            or msg.startswith("Remote:")
            or "remote manifest" in msg.lower()
        ):
            return {"remote_url": _url_from(msg), "_anchors": anchors.source}
        code = next((c for k, c in _FOUND_BUT_INVALID.items() if k in msg), None)
        if code is not None:
            # The SDK found the manifest store and failed its validation: the credential
            # is present and invalid, as c2pa-rs reports it (a validation status), not
            # an unreadable file.
            return {
                "active_manifest": "(not loaded)",
                "manifests": {},
                "validation_state": "Invalid",
                "validation_status": [{"code": code, "explanation": _clean(msg)[:200]}],
                "_anchors": anchors.source,
            }
        raise DecodeError(path, f"C2PA data unreadable: {_clean(msg)}") from exc
    try:
        store = json.loads(text)
    except ValueError as exc:
        raise DecodeError(path, f"C2PA SDK returned invalid JSON: {exc}") from exc
    if not isinstance(store, dict):
        raise DecodeError(path, "C2PA SDK returned a non-object manifest store")
    store["_anchors"] = anchors.source
    return store


_NO_CREDENTIAL_POSSIBLE = "naked codestream cannot contain C2PA"
# SDK errors raised after it found a manifest store, with the validation status c2pa-rs
# logs for them (its fixtures no_alg.jpg and prerelease.jpg: the credential is there and
# fails validation; the Python reader raises instead of returning the status).
_FOUND_BUT_INVALID = {
    "unknown algorithm": "algorithm.unsupported",
    "prerelease content detected": "com.adobe.prerelease",
}


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
    return _clean(agent)[:200] if isinstance(agent, str) and agent else None


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


# -- validation results -------------------------------------------------------------


def check_of(code: str, explanation: str = "") -> str:
    """The check a validation status code reports on, in an examiner's words."""
    if explanation == _UNLOADABLE:
        return "manifest could not be loaded"
    for prefixes, name in _CHECKS:
        if code.startswith(prefixes):
            return name
    return "manifest structure"


def _is_trust_code(code: str) -> bool:
    """Trust verdicts (not integrity failures): e.g. signingCredential.untrusted,
    cawg.x509.credential.untrusted, timeStamp.untrusted."""
    return "untrusted" in code


def _concerns(url: str, label: str) -> bool:
    """Does a validation entry's JUMBF URL point into the manifest ``label``?"""
    return url == label or f"/{label}/" in url + "/"


@dataclass
class _Status:
    failures: dict[str, list[dict[str, str]]]  # label -> failure entries
    untrusted: set[str]  # labels with a signingCredential.untrusted
    trusted: set[str]  # labels with a signingCredential.trusted
    # label -> codes saying an identity assertion's (CAWG) signer is not trusted
    identity_untrusted: dict[str, list[str]] = field(default_factory=dict)


def _statuses(store: dict[str, Any], labels: list[str], active: str | None) -> _Status:
    """Every validation entry the SDK reports, attributed to the manifest it concerns:
    by its URL, else (ingredient deltas) by the ingredient assertion it belongs to,
    else to the active manifest (store-level entries)."""
    st = _Status({}, set(), set())
    # ingredient assertion label (c2pa.ingredient.v2) -> the ingredient's manifest label
    by_assertion: dict[str, str] = {}
    manifests = store.get("manifests") or {}
    for m in manifests.values() if isinstance(manifests, dict) else []:
        for ing in (m.get("ingredients") or [])[:_MAX_LIST] if isinstance(m, dict) else []:
            if isinstance(ing, dict) and isinstance(ing.get("active_manifest"), str):
                by_assertion[str(ing.get("label", ""))] = ing["active_manifest"]

    def owner(url: str, fallback: str | None) -> str | None:
        for lab in labels:
            if _concerns(url, lab):
                return lab
        return fallback

    def add(entry: Any, kind: str, fallback: str | None) -> None:
        if not isinstance(entry, dict):
            return
        code = str(entry.get("code", ""))[:100]
        expl = str(entry.get("explanation", ""))
        lab = owner(str(entry.get("url", "")), fallback)
        if lab is None:
            return
        if code == "signingCredential.trusted":
            st.trusted.add(lab)
        if kind != "failure":
            return
        if code == "signingCredential.untrusted":
            st.untrusted.add(lab)
        elif code.startswith("cawg.") and _is_trust_code(code):
            codes = st.identity_untrusted.setdefault(lab, [])
            if code not in codes:
                codes.append(code)
        items = st.failures.setdefault(lab, [])
        if all(i["code"] != code for i in items) and len(items) < _MAX_LIST:
            items.append({"code": code, "explanation": _clean(expl)[:200]})

    results = store.get("validation_results")
    if isinstance(results, dict):
        am = results.get("activeManifest")
        if isinstance(am, dict):
            for kind in ("failure", "success"):
                for e in am.get(kind) or []:
                    add(e, kind, active)
        for delta in results.get("ingredientDeltas") or []:
            if not isinstance(delta, dict):
                continue
            uri = str(delta.get("ingredientAssertionURI", ""))
            fallback = by_assertion.get(uri.rsplit("/", 1)[-1])
            vd = delta.get("validationDeltas")
            if isinstance(vd, dict):
                for kind in ("failure", "success"):
                    for e in vd.get(kind) or []:
                        add(e, kind, fallback)
    # Older SDK output and store-level problems: validation_status holds failures only.
    for e in store.get("validation_status") or []:
        add(e, "failure", active)
    for m in manifests.values() if isinstance(manifests, dict) else []:
        for ing in (m.get("ingredients") or [])[:_MAX_LIST] if isinstance(m, dict) else []:
            if isinstance(ing, dict) and isinstance(ing.get("active_manifest"), str):
                for e in ing.get("validation_status") or []:
                    add(e, "failure", ing["active_manifest"])
    return st


def _failed_checks(failures: list[dict[str, str]]) -> list[dict[str, str]]:
    """Integrity failures (trust verdicts left out), each with the check it concerns."""
    return [
        {"check": check_of(f["code"], f["explanation"]), **f}
        for f in failures
        if not _is_trust_code(f["code"])
    ]


def _checks_phrase(failed: list[dict[str, str]]) -> str:
    """'claim signature failed (claimSignature.mismatch)' for each check that failed."""
    by_check: dict[str, list[str]] = {}
    for f in failed:
        by_check.setdefault(f["check"], []).append(f["code"] or f["explanation"])
    parts = []
    for check, codes in by_check.items():
        # assay never resolves identities over the network: an unresolvable DID is
        # unverified here, which is not the same as a forged identity.
        verb = "failed"
        if all(c.endswith("did_unavailable") for c in codes):
            verb = "could not be verified offline"
        parts.append(f"{check} {verb} ({', '.join(codes)})")
    return "; ".join(parts)


# -- evidence -----------------------------------------------------------------------


def manifest_evidence(store: dict[str, Any]) -> list[Evidence]:
    """One Evidence per manifest in the store: the active manifest first (also when
    it could not be loaded), then the ingredients' manifests."""
    anchors = str(store.get("_anchors") or "none")
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
        manifests = {}
    raw_active = store.get("active_manifest")
    active = raw_active if isinstance(raw_active, str) and raw_active else None
    state = str(store.get("validation_state") or "Unknown")
    labels = [k for k in manifests if isinstance(manifests[k], dict)]
    if active and active not in labels:
        labels.append(active)
    status = _statuses(store, labels, active)
    ingredient_labels = sorted(k for k in labels if k != active)[: _MAX_LIST - 1]
    out: list[Evidence] = []
    if active is not None:
        m = manifests.get(active)
        if isinstance(m, dict):
            out.append(_one(status, active, m, "active", state, anchors, ingredient_labels))
        else:
            out.append(_unloaded(status, active, state, anchors))
    for lab in ingredient_labels:
        out.append(_one(status, lab, manifests[lab], "ingredient", state, anchors, []))
    return out


def _declared(acts: list[dict[str, Any]]) -> tuple[Claim, list[str], str | None, list[str]]:
    """The claim a manifest's actions make, the source-type terms, the tool named, and
    the actions other than created/opened that declare trainedAlgorithmicMedia.

    The source type of ``c2pa.created`` or ``c2pa.opened`` describes the asset itself;
    on any other action (``c2pa.edited``, ``c2pa.placed`` ...) it describes what that
    action added: a photo edited with a generative tool is AI-edited, not AI-generated."""
    terms: list[str] = []
    claim: Claim = "unknown"
    agent: str | None = None
    best: int | None = None
    ai_edits: list[str] = []
    for act in acts:
        dst = act.get("digitalSourceType")
        st = digital_source_type(dst) if isinstance(dst, str) else None
        if st is None:
            continue
        if st.term not in terms:
            terms.append(st.term)
        act_claim = st.claim
        name = _clean(str(act.get("action")))[:100]
        if act_claim == "ai-generated" and name not in _ORIGIN_ACTIONS:
            act_claim = "ai-edited"
            if name not in ai_edits:
                ai_edits.append(name)
        rank = _CLAIM_RANK[act_claim]
        # The action that declares the most telling source type names the tool.
        if best is None or rank < best or (rank == best and agent is None):
            claim, best = act_claim, rank
            agent = _name(act.get("softwareAgent")) or agent
    if claim == "unknown" and any(str(a.get("action")) not in _NEUTRAL_ACTIONS for a in acts):
        claim = "edited"
    return claim, terms, agent, (ai_edits if claim == "ai-edited" else [])


_LEGACY_GENAI = "com.adobe.generative-ai"


def _legacy_generative(m: dict[str, Any]) -> dict[str, str] | None:
    """Adobe's legacy ``com.adobe.generative-ai`` assertion ({description, version}),
    as facts; None when the manifest has none."""
    for a in (m.get("assertions") or [])[:_MAX_LIST]:
        if isinstance(a, dict) and str(a.get("label", "")).split("__")[0] == _LEGACY_GENAI:
            data = a.get("data") if isinstance(a.get("data"), dict) else {}
            return {k: v for k in ("description", "version") if (v := _name(data.get(k)))}
    return None


def _unloaded(status: _Status, label: str, state: str, anchors: str) -> Evidence:
    failed = _failed_checks(status.failures.get(label, []))
    if not any(f["check"] == "manifest could not be loaded" for f in failed):
        failed.insert(
            0,
            {"check": "manifest could not be loaded", "code": "", "explanation": _UNLOADABLE},
        )
    phrase = _checks_phrase(failed)
    return Evidence(
        source="c2pa",
        claim="unknown",
        strength="weak",
        summary=(
            f"Content Credential present but invalid: its active manifest could not be "
            f"loaded ({phrase}), so nothing it declares can be read or relied on; the "
            "ingredients' manifests below are history, not a claim about this file."
        ),
        facts={
            "label": label,
            "role": "active",
            "loaded": False,
            "validation": "invalid",
            "validation_state": state,
            "invalid_because": "its active manifest could not be loaded",
            "failed_checks": [_check_line(f) for f in failed],
            "failure_codes": [f["code"] for f in failed if f["code"]],
            "trust_anchors": anchors,
        },
    )


def _check_line(f: dict[str, str]) -> str:
    code = f["code"] or "-"
    expl = f" ({f['explanation']})" if f["explanation"] and f["explanation"] != code else ""
    return f"{f['check']}: {code}{expl}"


def _one(
    status: _Status,
    label: str,
    m: dict[str, Any],
    role: str,
    state: str,
    anchors: str,
    ingredient_labels: list[str],
) -> Evidence:
    acts = _actions(m)
    claim, terms, agent, ai_edits = _declared(acts)
    legacy = _legacy_generative(m)
    if legacy is not None:
        # Adobe's pre-standard generative-AI assertion (Firefly betas, 2023), which the CAI's
        # own viewer reads as generative AI: generated, unless the actions say the asset was
        # captured or edited, when the generative step was an edit of it.
        if claim == "unknown":
            claim = "ai-generated"
        elif claim in ("camera-captured", "edited"):
            claim = "ai-edited"
        agent = agent or legacy.get("description")
    info = m.get("claim_generator_info")
    cg_name = _name(info[0]) if isinstance(info, list) and info else None
    claim_generator = _name(m.get("claim_generator")) or cg_name
    generator = agent or cg_name or claim_generator or "unnamed software"
    sig = m.get("signature_info") if isinstance(m.get("signature_info"), dict) else {}
    failed = _failed_checks(status.failures.get(label, []))
    identity_failed = [f for f in failed if f["check"] == CAWG_CHECK]
    claim_failed = [f for f in failed if f["check"] != CAWG_CHECK]
    is_active = role == "active"
    because = ""
    if claim_failed:
        because = _checks_phrase(claim_failed)
    elif is_active and state == "Invalid":
        if identity_failed:
            because = (
                _checks_phrase(identity_failed)
                + "; the claim signature and hash binding themselves are valid"
            )
        else:
            # The store is invalid because of an ingredient: say which, and what failed.
            for lab in ingredient_labels:
                ing_failed = _failed_checks(status.failures.get(lab, []))
                if ing_failed:
                    because = f"an ingredient's credential: {_checks_phrase(ing_failed)}"
                    failed += [dict(f, check=f"ingredient {f['check']}") for f in ing_failed]
                    break
            because = because or "validation state Invalid"
    if because:
        validation = "invalid"
    elif label not in status.untrusted and (state == "Trusted" or label in status.trusted):
        validation = "trusted"
    else:
        validation = "valid"
    strength: Strength = {"invalid": "weak", "trusted": "cryptographic"}.get(
        validation, "moderate"
    )  # type: ignore[assignment]
    if validation == "valid" and claim == "camera-captured":
        # Signed by a certificate nobody vouches for: anyone can make one and sign
        # "digitalCapture" onto any file, the claim a forger writes (an unsigned IPTC
        # camera declaration is weak for the same reason); an AI claim so signed still
        # incriminates its signer, and stays moderate.
        strength = "weak"

    noun = "active manifest" if is_active else "ingredient manifest"
    declared = f"declares {', '.join(terms)}" if terms else "declares no digital source type"
    if legacy is not None:
        declared += f"; Adobe's generative-AI assertion ({_LEGACY_GENAI}) names {legacy.get('description') or 'no model'}"
    if ai_edits:
        declared += (
            f"; trainedAlgorithmicMedia on {', '.join(ai_edits)} only: an AI edit, not how "
            "the asset was made"
        )
    cn, issuer = _name(sig.get("common_name")), _name(sig.get("issuer"))
    signer = cn or issuer or "an unnamed signer"
    if cn and issuer and issuer != cn:
        signer = f"{cn}, issued by {issuer}"
    if validation == "invalid":
        summary = (
            f"Content Credential present but invalid: {because}. The {noun} from "
            f"{generator} {declared}, but that is not relied on."
        )
    elif validation == "trusted":
        summary = (
            f"The {noun} of its Content Credential ({generator}) {declared}; signed by a "
            f"trusted certificate ({signer}; chains to the {anchors})."
        )
    else:
        summary = (
            f"The {noun} of its Content Credential ({generator}) {declared}; signed, signer "
            f"not trusted ({signer}; chains to no certificate of the {anchors})."
        )
    if identity_failed and validation != "invalid":
        summary += f" Its identity assertion (CAWG) is invalid: {_checks_phrase(identity_failed)}."
    # The SDK reads a store whose identity assertion is signed by an untrusted credential
    # as Valid, not Trusted, even when the claim's signer is trusted: say so.
    identity_untrusted = status.identity_untrusted.get(label, [])
    if identity_untrusted and not identity_failed and validation != "invalid":
        summary += (
            " Its identity assertion (CAWG) is signed by a certificate that is not trusted "
            f"({', '.join(identity_untrusted)}): who it names is not verified."
        )
    facts: dict[str, Any] = {
        "label": label,
        "role": role,
        "validation": validation,
        "validation_state": state,
        "invalid_because": because or None,
        "failed_checks": [_check_line(f) for f in failed],
        "failure_codes": [f["code"] for f in failed if f["code"]],
        "identity_assertion": (
            "invalid" if identity_failed else "signer not trusted" if identity_untrusted else None
        ),
        "digital_source_types": terms,
        "ai_edit_actions": ai_edits or None,
        "generative_ai_assertion": legacy,
        "generator": generator,
        "claim_generator": claim_generator,
        "signer_issuer": issuer,
        "signer_common_name": cn,
        "signer_trusted": validation == "trusted",
        "signed_at": _name(sig.get("time")),
        "trust_anchors": anchors,
        "actions": [_clean(str(a.get("action")))[:100] for a in acts],
        "title": _name(m.get("title")),
        "ingredients": [
            {
                "title": _name(i.get("title")),
                "relationship": _name(i.get("relationship")),
                "manifest": _name(i.get("active_manifest")),
            }
            for i in (m.get("ingredients") or [])[:_MAX_LIST]
            if isinstance(i, dict)
        ],
    }
    return Evidence(source="c2pa", claim=claim, strength=strength, summary=summary, facts=facts)


def evidence(
    path: Path, data: bytes | BinaryIO, fmt: str, *, trust_anchors: Path | None = None
) -> list[Evidence]:
    """C2PA evidence for one file (empty when it carries no Content Credential)."""
    store = read_store(path, data, fmt, trust_anchors=trust_anchors)
    return [] if store is None else manifest_evidence(store)
