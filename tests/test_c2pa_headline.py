"""Issue 12, item 1: the verdict's headline comes from the ACTIVE manifest; the
ingredients are history; an invalid or unloadable active manifest reads "present
but invalid" whatever the ingredients say; the evidence names the check that failed
(claim signature, hash binding, identity assertion, timestamp); `cryptographic`
only for a signer that chains to a configured trust anchor, and the evidence names
the anchors. Fixtures are signed here with the SDK's public test certificate; the
SDK's own reader is the reference for which manifest is active and valid."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assay.provenance import c2pa as c2pa_source
from assay.provenance.analyzer import analyze_provenance
from assay.provenance.verdict import verdict
from c2pa_sign import pattern_jpeg, sign

c2pa = pytest.importorskip("c2pa")


@pytest.fixture(scope="module")
def c2dir(testdata: Path) -> Path:
    return testdata / "c2pa"


@pytest.fixture(scope="module")
def anchors(c2dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("anchors") / "test-anchors.pem"
    p.write_text((c2dir / "es256_certs.pem").read_text())
    return p


@pytest.fixture(scope="module")
def ai_jpeg(c2dir: Path) -> bytes:
    """A signed AI-generated pattern: the ingredient of the fixtures below."""
    return sign(c2dir, pattern_jpeg(), "image/jpeg", "trainedAlgorithmicMedia", agent="AIGen 2")


def _reference(data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
    """The SDK reader's own view, offline ({} when the file has no manifest)."""
    ctx = c2pa.Context(settings=c2pa.Settings.from_dict(c2pa_source.OFFLINE_SETTINGS))
    reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, ctx)
    if reader is None:
        return {}
    with reader:
        return json.loads(reader.json())


def _report(data: bytes, fmt: str = "jpeg", anchors: Path | None = None):
    return analyze_provenance(Path(f"x.{fmt}"), data, fmt, trust_anchors=anchors)


# -- the active manifest decides --------------------------------------------------------


def test_composite_over_ai_ingredient_is_ai_edited_with_history(
    c2dir: Path, ai_jpeg: bytes
) -> None:
    data = sign(
        c2dir, ai_jpeg, "image/jpeg", "compositeWithTrainedAlgorithmicMedia",
        agent="Editor 1", ingredient=ai_jpeg,
    )
    ref = _reference(data)
    assert ref["validation_state"] == "Valid" and ref["active_manifest"] in ref["manifests"]
    report = _report(data)
    assert report.verdict.startswith("AI-edited: signed Content Credential (Editor 1; signer not trusted)")
    assert "made from an AI-generated ingredient (AIGen 2)" in report.verdict
    c2 = [e for e in report.evidence if e.source == "c2pa"]
    assert [e.facts["role"] for e in c2] == ["active", "ingredient"]
    assert c2[0].facts["label"] == ref["active_manifest"]


def _edit(term: str, action: str = "c2pa.edited", agent: str = "GenFill 3") -> dict[str, Any]:
    return {"action": action, "softwareAgent": agent,
            "digitalSourceType": f"http://cv.iptc.org/newscodes/digitalsourcetype/{term}"}  # fmt: skip


def test_photo_edited_with_generative_tool_is_ai_edited_not_generated(c2dir: Path) -> None:
    # A capture, then an edit whose source type is trainedAlgorithmicMedia (generative
    # fill): the created action says what the asset is, the edit what it added. assay
    # ranked every action's source type alike and read this "AI-generated".
    data = sign(c2dir, pattern_jpeg(), "image/jpeg", "digitalCapture", agent="Camera 1",
                more_actions=[_edit("trainedAlgorithmicMedia")])  # fmt: skip
    ref = _reference(data)
    assert ref["validation_state"] == "Valid"
    report = _report(data)
    assert report.verdict.startswith("AI-edited: signed Content Credential (GenFill 3; signer not trusted)")
    (e,) = [e for e in report.evidence if e.source == "c2pa"]
    assert (e.claim, e.facts["ai_edit_actions"]) == ("ai-edited", ["c2pa.edited"])
    assert e.facts["digital_source_types"] == ["digitalCapture", "trainedAlgorithmicMedia"]
    assert "trainedAlgorithmicMedia on c2pa.edited only: an AI edit, not how the asset was made" in e.summary


@pytest.mark.parametrize(("actions", "claim"), [
    # trainedAlgorithmicMedia on the origin action: generated, whatever the later edits add.
    ([{"action": "c2pa.created", "digitalSourceType": "trainedAlgorithmicMedia"},
      {"action": "c2pa.edited", "digitalSourceType": "trainedAlgorithmicMedia"}], "ai-generated"),
    ([{"action": "c2pa.opened", "digitalSourceType": "trainedAlgorithmicMedia"}], "ai-generated"),
    # c2pa-python's pdf-file.pdf: one edit by Adobe Firefly in an Express document.
    ([{"action": "c2pa.edited", "digitalSourceType": "trainedAlgorithmicMedia"}], "ai-edited"),
    ([{"action": "c2pa.placed", "digitalSourceType": "trainedAlgorithmicMedia"}], "ai-edited"),
    ([{"action": "c2pa.created", "digitalSourceType": "digitalCapture"},
      {"action": "c2pa.edited", "digitalSourceType": "compositeWithTrainedAlgorithmicMedia"}], "ai-edited"),
    ([{"action": "c2pa.created", "digitalSourceType": "digitalCapture"},
      {"action": "c2pa.color_adjustments"}], "camera-captured"),
])  # fmt: skip
def test_source_type_of_the_origin_action_decides_generated(actions: list[dict[str, str]], claim: str) -> None:
    store = _store("Valid", [])
    for a in actions:
        a["digitalSourceType"] = a.get("digitalSourceType") and (
            "http://cv.iptc.org/newscodes/digitalsourcetype/" + a["digitalSourceType"])
    m = store["manifests"]["urn:c2pa:active"]
    m["assertions"][0]["data"]["actions"] = [{k: v for k, v in a.items() if v} for a in actions]
    (e,) = c2pa_source.manifest_evidence(store)
    assert e.claim == claim


@pytest.mark.parametrize(("actions", "claim"), [
    # c2pa-rs's update_manifest.jpg: an update manifest that opened its parent and edited
    # its metadata only read "edited: signed Content Credential".
    (["c2pa.opened", "c2pa.edited.metadata"], "unknown"),
    (["c2pa.created", "c2pa.transcoded", "c2pa.repackaged", "c2pa.watermarked", "c2pa.redacted"], "unknown"),
    (["c2pa.opened", "c2pa.cropped"], "edited"),
    (["c2pa.opened", "c2pa.edited"], "edited"),
])  # fmt: skip
def test_actions_that_leave_the_content_alone_are_no_edit(actions: list[str], claim: str) -> None:
    store = _store("Valid", [])
    store["manifests"]["urn:c2pa:active"]["assertions"][0]["data"]["actions"] = [{"action": a} for a in actions]
    (e,) = c2pa_source.manifest_evidence(store)
    assert e.claim == claim


@pytest.mark.parametrize(("actions", "claim"), [
    ([{"action": "c2pa.created"}], "ai-generated"),
    ([], "ai-generated"),
    ([{"action": "c2pa.opened"}, {"action": "c2pa.edited"}], "ai-edited"),
])  # fmt: skip
def test_adobe_legacy_generative_ai_assertion(actions: list[dict[str, str]], claim: str) -> None:
    # Firefly betas (2023) marked generation with com.adobe.generative-ai, which the CAI's
    # viewer (c2pa-js selectGenerativeInfo, type 'legacy') reads as generative AI; assay
    # read such a manifest as "edited" or no claim at all.
    store = _store("Valid", [])
    m = store["manifests"]["urn:c2pa:active"]
    m["assertions"] = [{"label": "c2pa.actions", "data": {"actions": actions}},
                       {"label": "com.adobe.generative-ai",
                        "data": {"description": "Adobe Firefly", "version": "1.0.0", "prompt": "a cat"}}]  # fmt: skip
    (e,) = c2pa_source.manifest_evidence(store)
    assert e.claim == claim
    assert e.facts["generative_ai_assertion"] == {"description": "Adobe Firefly", "version": "1.0.0"}
    assert "Adobe's generative-AI assertion (com.adobe.generative-ai) names Adobe Firefly" in e.summary


def test_generator_named_in_xmp_of_a_signed_composite_is_ai_edited(c2dir: Path) -> None:
    # The signed credential declares a capture edited with a generative tool (composite);
    # unsigned XMP CreatorTool names Adobe Firefly: the headline read "AI-generated".
    import io as _io

    from PIL import Image

    pk = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
          b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Adobe Firefly"/>'
          b"</rdf:RDF></x:xmpmeta>")  # fmt: skip
    buf = _io.BytesIO()
    Image.open(_io.BytesIO(pattern_jpeg())).save(buf, "JPEG", xmp=pk, quality=90)
    data = sign(c2dir, buf.getvalue(), "image/jpeg", "digitalCapture", agent="Camera 1",
                more_actions=[_edit("compositeWithTrainedAlgorithmicMedia", agent="Adobe Firefly")])  # fmt: skip
    report = _report(data)
    assert report.verdict.startswith("AI-edited: "), report.verdict
    (x,) = [e for e in report.evidence if e.source == "xmp"]
    assert x.claim == "ai-edited" and "its Content Credential declares the asset a composite" in x.summary


def test_unloadable_active_manifest_is_invalid_whatever_the_ingredient(
    c2dir: Path, ai_jpeg: bytes
) -> None:
    # An identity assertion that is not valid CBOR for its type: the SDK signs it,
    # then cannot load the active manifest ("Failed to load manifest"), while the
    # AI-generated ingredient's manifest loads and validates.
    bad = {"label": "cawg.identity", "data": {"x": 1}, "kind": "Cbor"}
    data = sign(
        c2dir, ai_jpeg, "image/jpeg", "compositeWithTrainedAlgorithmicMedia",
        ingredient=ai_jpeg, extra_assertions=[bad],
    )
    ref = _reference(data)
    assert ref["validation_state"] == "Invalid"
    assert ref["active_manifest"] not in ref["manifests"]  # the reference: unloadable
    assert any(
        e.get("explanation") == "Failed to load manifest" for e in ref["validation_status"]
    )
    report = _report(data)
    assert report.verdict == (
        "Content Credential present but invalid (its active manifest could not be loaded)"
    )
    assert "AI-generated" not in report.verdict and "made from" not in report.verdict
    active = next(e for e in report.evidence if e.facts.get("role") == "active")
    assert active.facts["loaded"] is False
    assert active.strength == "weak"
    assert active.facts["label"] == ref["active_manifest"]
    assert any(c.startswith("manifest could not be loaded") for c in active.facts["failed_checks"])


def test_invalid_active_over_valid_ai_ingredient_is_invalid(c2dir: Path, ai_jpeg: bytes) -> None:
    data = bytearray(
        sign(c2dir, ai_jpeg, "image/jpeg", "compositeWithTrainedAlgorithmicMedia", ingredient=ai_jpeg)
    )
    data[bytes(data).rfind(b"\xff\xda") + 20] ^= 0x55  # pixels changed after signing
    ref = _reference(bytes(data))
    assert ref["validation_state"] == "Invalid"
    report = _report(bytes(data))
    assert report.verdict == (
        "Content Credential present but invalid (hash binding failed (assertion.dataHash.mismatch))"
    )
    ing = next(e for e in report.evidence if e.facts.get("role") == "ingredient")
    assert ing.claim == "ai-generated" and ing.facts["validation"] == "valid"


# -- which check failed -------------------------------------------------------------------


def _store(state: str, failures: list[str], label: str = "urn:c2pa:active") -> dict[str, Any]:
    """An SDK-shaped manifest store (as c2pa-python's reader JSON) with given failures."""
    sig_url = f"self#jumbf=/c2pa/{label}/c2pa.signature"
    return {
        "active_manifest": label,
        "manifests": {
            label: {
                "claim_generator_info": [{"name": "Gen"}],
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
                }]}}],
                "signature_info": {"issuer": "Some CA", "common_name": "Some Camera"},
            }
        },
        "validation_state": state,
        "validation_results": {"activeManifest": {
            "success": [],
            "failure": [{"code": c, "url": sig_url, "explanation": c} for c in failures],
        }},
        "_anchors": "test anchors",
    }


@pytest.mark.parametrize(
    ("state", "codes", "because", "validation"),
    [
        ("Invalid", ["claimSignature.mismatch"], "claim signature failed (claimSignature.mismatch)", "invalid"),
        ("Invalid", ["assertion.dataHash.mismatch"], "hash binding failed (assertion.dataHash.mismatch)", "invalid"),
        ("Invalid", ["assertion.bmffHash.mismatch"], "hash binding failed (assertion.bmffHash.mismatch)", "invalid"),
        ("Invalid", ["timeStamp.mismatch"], "timestamp failed (timeStamp.mismatch)", "invalid"),
        # A CAWG identity failure that invalidates the store is not a claim-signature failure.
        ("Invalid", ["cawg.ica.signature_mismatch"], "identity assertion (CAWG) failed (cawg.ica.signature_mismatch); the claim signature and hash binding themselves are valid", "invalid"),
        # Offline, a DID cannot be resolved: unverified, not forged.
        ("Invalid", ["cawg.ica.did_unavailable"], "identity assertion (CAWG) could not be verified offline (cawg.ica.did_unavailable); the claim signature and hash binding themselves are valid", "invalid"),
    ],
)
def test_evidence_names_the_failed_check(state: str, codes: list[str], because: str, validation: str) -> None:
    (e,) = c2pa_source.manifest_evidence(_store(state, ["signingCredential.untrusted", *codes]))
    assert e.facts["validation"] == validation
    assert e.facts["invalid_because"] == because
    assert e.strength == "weak"
    assert verdict([e]) == f"Content Credential present but invalid ({because})"
    # The untrusted signer is a trust verdict, not an integrity failure.
    assert "signingCredential.untrusted" not in e.facts["failure_codes"]


def test_identity_assertion_failure_in_a_valid_store_keeps_the_claim() -> None:
    (e,) = c2pa_source.manifest_evidence(
        _store("Valid", ["signingCredential.untrusted", "cawg.identity.pad.invalid"])
    )
    assert (e.claim, e.strength, e.facts["validation"]) == ("camera-captured", "weak", "valid")
    assert e.facts["identity_assertion"] == "invalid"
    assert "identity assertion (CAWG) is invalid" in e.summary
    v = verdict([e])
    assert v.startswith("camera capture declared (weak): signed Content Credential (Gen; signer not trusted)")
    assert v.endswith("its identity assertion (CAWG) is invalid")


def test_a_self_signed_camera_claim_does_not_outrank_generation_evidence() -> None:
    """A forger signs 'digitalCapture' onto a generated picture with a certificate of their
    own: the headline read 'camera capture declared: signed Content Credential (...)'
    above the picture's own generation hints. Such a claim is now weak, like an unsigned
    IPTC camera declaration: the AI hint leads and the claim is named as conflicting."""
    from assay.report.provenance import Evidence

    (cam,) = c2pa_source.manifest_evidence(_store("Valid", ["signingCredential.untrusted"]))
    assert (cam.claim, cam.strength) == ("camera-captured", "weak")
    hint = Evidence(source="unknown-generator-text", claim="ai-generated", strength="weak",
                    summary="PNG tEXt chunk 'parameters' holds text naming generation parameters (seed, steps).",
                    facts={"locations": ["png:tEXt:parameters"], "parameter_words": ["seed", "steps"]})
    v = verdict([cam, hint])
    assert v.startswith("possibly AI-generated (weak)"), v
    assert "conflicting: signed Content Credential (Gen; signer not trusted)" in v


@pytest.mark.parametrize("claim_signer", ["trusted", "untrusted"])
def test_untrusted_identity_credential_is_named(claim_signer: str) -> None:
    # c2pa-rs's C_with_CAWG_data.jpg: the SDK reads the store as Valid, not Trusted, when the
    # identity assertion's X.509 credential is untrusted, even with the claim signer on the
    # trust list. assay dropped the code as a "trust verdict" and said nothing of it, so the
    # headline read "verified Content Credential" with no word that the identity is not.
    store = _store("Valid", ["cawg.x509.credential.untrusted"])
    results = store["validation_results"]["activeManifest"]
    sig_url = "self#jumbf=/c2pa/urn:c2pa:active/c2pa.signature"
    if claim_signer == "trusted":
        results["success"].append({"code": "signingCredential.trusted", "url": sig_url})
    else:
        results["failure"].append({"code": "signingCredential.untrusted", "url": sig_url})
    (e,) = c2pa_source.manifest_evidence(store)
    assert e.facts["validation"] == claim_signer.replace("untrusted", "valid")
    assert e.facts["identity_assertion"] == "signer not trusted"
    assert e.facts["failure_codes"] == []  # not an integrity failure
    assert "identity assertion (CAWG) is signed by a certificate that is not trusted" in e.summary
    assert "cawg.x509.credential.untrusted" in e.summary
    assert verdict([e]).endswith(
        "; its identity assertion (CAWG) is signed by a certificate that is not trusted"
    )


# -- trust ---------------------------------------------------------------------------------


def test_bundled_trust_list_is_used_and_named(c2dir: Path, ai_jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(c2pa_source.ENV_TRUST_ANCHORS, raising=False)
    a = c2pa_source.resolve_anchors(None)
    assert a.source == c2pa_source.BUNDLED_TRUST_LABEL
    assert a.pem.count("-----BEGIN CERTIFICATE-----") == 30
    (e,) = c2pa_source.evidence(Path("x.jpg"), ai_jpeg, "jpeg")
    # The test certificate chains to nothing on the C2PA trust list.
    assert (e.strength, e.facts["validation"], e.facts["signer_trusted"]) == ("moderate", "valid", False)
    assert e.facts["trust_anchors"] == c2pa_source.BUNDLED_TRUST_LABEL
    assert "signed, signer not trusted" in e.summary


def test_env_anchor_makes_the_test_signer_trusted(
    anchors: Path, ai_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(c2pa_source.ENV_TRUST_ANCHORS, str(anchors))
    (e,) = c2pa_source.evidence(Path("x.jpg"), ai_jpeg, "jpeg")
    assert (e.strength, e.facts["validation"]) == ("cryptographic", "trusted")
    assert e.facts["trust_anchors"] == f"{anchors} (2 certificates)"
    assert _report(ai_jpeg).verdict == "AI-generated: verified Content Credential (AIGen 2)"


def test_cli_trust_anchors_option_and_readable_output(
    anchors: Path, ai_jpeg: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assay.cli import app

    monkeypatch.delenv(c2pa_source.ENV_TRUST_ANCHORS, raising=False)
    f = tmp_path / "signed.jpg"
    f.write_bytes(ai_jpeg)
    runner = CliRunner()
    res = runner.invoke(app, ["provenance", str(f)])
    assert res.exit_code == 0, res.output
    assert "[moderate] ai-generated (c2pa)" in res.output
    assert "signer not trusted" in res.output
    assert c2pa_source.BUNDLED_TRUST_LABEL in res.output
    res = runner.invoke(app, ["provenance", "--trust-anchors", str(anchors), str(f), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    (e,) = [e for e in doc["evidence"] if e["source"] == "c2pa"]
    assert e["strength"] == "cryptographic"
    assert e["facts"]["trust_anchors"] == f"{anchors} (2 certificates)"


def test_unreadable_env_anchors_are_a_clear_error(
    tmp_path: Path, ai_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(c2pa_source.ENV_TRUST_ANCHORS, str(tmp_path / "missing.pem"))
    report = _report(ai_jpeg)
    (err,) = [e for e in report.errors if e.source == "c2pa"]
    assert "missing.pem" in err.message and "cannot read trust anchors" in err.message
    assert "could not check: c2pa" in report.verdict


# -- regression set: every shared fixture, the SDK reader as reference ----------------------

_HEAD_OF_TERM = {
    "trainedAlgorithmicMedia": "AI-generated",
    "compositeWithTrainedAlgorithmicMedia": "AI-edited",
    "digitalCapture": "camera capture declared",
}


def _expected_head(ref: dict[str, Any]) -> str:
    """What the headline must start with, from the reference's ACTIVE manifest only."""
    active = ref["manifests"].get(ref.get("active_manifest"))
    if ref.get("validation_state") == "Invalid" or active is None:
        return "Content Credential present but invalid"
    terms = [
        a.get("digitalSourceType", "").rsplit("/", 1)[-1]
        for asr in active.get("assertions", [])
        if asr.get("label", "").startswith("c2pa.actions")
        for a in asr["data"].get("actions", [])
    ]
    for term, head in _HEAD_OF_TERM.items():
        if term in terms:
            return head
    if "algorithmicMedia" in terms:
        return "no generation or capture claim"
    return "edited"


def test_regression_set_headline_follows_the_active_manifest(
    c2dir: Path, testdata: Path, ai_jpeg: bytes
) -> None:
    from assay.sniff import sniff_bytes
    from c2pa_sign import media_samples

    shared = sorted(c2dir.glob("*.jp*g")) + sorted(c2dir.glob("*.png"))
    shared += sorted(p for p in (testdata / "genmeta").rglob("*") if p.is_file())
    files: dict[str, bytes] = {str(p): p.read_bytes() for p in shared}
    files["signed-ai.jpg"] = ai_jpeg
    files["composite.jpg"] = sign(
        c2dir, ai_jpeg, "image/jpeg", "compositeWithTrainedAlgorithmicMedia", ingredient=ai_jpeg
    )
    files["capture-over-ai.jpg"] = sign(
        c2dir, pattern_jpeg(), "image/jpeg", "digitalCapture", ingredient=ai_jpeg
    )
    for mime, (raw, fmt) in media_samples().items():
        files[f"signed.{fmt}"] = sign(c2dir, raw, mime, "compositeWithTrainedAlgorithmicMedia",
                                      ingredient=ai_jpeg)  # fmt: skip
    with_manifest = without = 0
    for name, data in files.items():
        fmt = sniff_bytes(data[:512], len(data)).format
        mime = c2pa_source.MIME.get(fmt)
        if mime is None or not data:
            continue  # empty or broken files: no format the SDK reads
        try:
            ref = _reference(data, mime)
        except c2pa.C2paError:
            continue  # remote-only or unparseable for the SDK too
        verdict_line = _report(data, fmt).verdict
        if not ref:
            assert "Content Credential" not in verdict_line.split(";")[0], name
            without += 1
            continue
        assert verdict_line.startswith(_expected_head(ref)), (name, verdict_line)
        with_manifest += 1
    assert with_manifest >= 18 and without >= 15, (with_manifest, without)


# -- c2pa-rs fixtures no_alg.jpg and prerelease.jpg: found, then failed validation ---------


@pytest.mark.parametrize(("message", "code"), [
    ("Other: unknown algorithm", "algorithm.unsupported"),
    ("Other: prerelease content detected", "com.adobe.prerelease"),
])
def test_sdk_error_after_finding_the_store_is_an_invalid_credential(
    monkeypatch: pytest.MonkeyPatch, ai_jpeg: bytes, message: str, code: str
) -> None:
    # c2pa-rs reads these files as a manifest store with a failing validation status
    # (its store.rs test_no_alg, ingredient.rs test_jpg_prerelease); the Python reader
    # raises instead. assay read that as 'could not check: c2pa' under a headline from
    # other evidence ('camera traces only'), hiding an invalid credential.
    class _Reader:
        @staticmethod
        def try_create(*_a: object) -> None:
            raise c2pa.C2paError(message)

    class _Sdk:
        C2paError = c2pa.C2paError
        Reader = _Reader
        Settings = c2pa.Settings
        Context = c2pa.Context

    monkeypatch.setattr(c2pa_source, "_sdk", lambda: _Sdk)
    report = _report(ai_jpeg)
    assert report.verdict.startswith("Content Credential present but invalid"), report.verdict
    (e,) = [e for e in report.evidence if e.source == "c2pa"]
    assert code in e.facts["failure_codes"]
    assert not [err for err in report.errors if err.source == "c2pa"]
    # an error that says nothing about a credential stays 'could not check'
    message = "Other: asset could not be parsed: Invalid RIFF format"
    report = _report(ai_jpeg)
    assert "could not check: c2pa" in report.verdict and "Content Credential" not in report.verdict
