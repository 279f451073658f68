"""CASE/UCO export (issue 16, item 3): files as observable:File with types:Hash facets, the
scan as investigation:InvestigativeAction with its tool:Tool, findings as core:Annotation;
valid under the CASE SHACL shapes (case-utils' validator, run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import casegen

case_validate = pytest.importorskip("case_utils.case_validate")
rdflib = pytest.importorskip("rdflib")

# case-utils reads its ontology through importlib.resources' legacy calls
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
UCO = "https://ontology.unifiedcyberontology.org/uco/"
PREFIXES = "".join(f"PREFIX {p}: <{UCO}{p}/> " for p in ("observable", "types", "core", "action", "tool")) + \
    "PREFIX investigation: <https://ontology.caseontology.org/case/investigation/> "


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[casegen.Case, Path]:
    d = tmp_path_factory.mktemp("caseuco")
    case = casegen.build(d)
    out = d / "case.jsonld"
    res = casegen.invoke("--db", case.db, "report", str(case.report), "--format", "case", "-o", str(out),
                         "--case-id", "C-41", "--examiner", "J. Doe")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "wrote " in res.output and "(case," in res.output  # type: ignore[attr-defined]
    return case, out


def _conforms(path: Path) -> tuple[bool, str]:
    result = case_validate.validate(str(path))
    return bool(result.conforms), str(result.text)


def test_export_is_valid_case(exported: tuple[casegen.Case, Path]) -> None:
    _, out = exported
    ok, text = _conforms(out)
    assert ok, text[:3000]


def test_the_validator_catches_a_broken_export(exported: tuple[casegen.Case, Path], tmp_path: Path) -> None:
    """The check above could pass vacuously if the shapes never applied: a hash value that
    is not hexadecimal and a size that is not an integer must fail."""
    _, out = exported
    doc = json.loads(out.read_text())
    node = next(n for n in doc["@graph"] if n.get("@type") == "observable:File")
    facet = next(f for f in node["core:hasFacet"] if f["@type"] == "observable:ContentDataFacet")
    facet["observable:hash"][0]["types:hashMethod"] = "SHA-256-ish"
    facet["observable:sizeInBytes"] = {"@type": "xsd:string", "@value": "big"}
    broken = tmp_path / "broken.jsonld"
    broken.write_text(json.dumps(doc))
    ok, text = _conforms(broken)
    assert not ok and "hashMethod" in text and "sizeInBytes" in text


def test_graph_holds_files_hashes_action_tool_and_findings(exported: tuple[casegen.Case, Path]) -> None:
    case, out = exported
    g = rdflib.Graph().parse(out, format="json-ld")
    lines = [json.loads(x) for x in case.report.read_text().splitlines()]
    head, summary = lines[0], lines[-1]
    files = [x for x in lines if x.get("schema") == "assay.file/1"]
    rows = g.query(PREFIXES + """
        SELECT ?path ?method ?value WHERE {
          ?f a observable:File ; core:hasFacet ?ff , ?cf .
          ?ff a observable:FileFacet ; observable:filePath ?path .
          ?cf a observable:ContentDataFacet ; observable:hash ?h .
          ?h types:hashMethod ?method ; types:hashValue ?value . }""")
    got = {(str(p), str(m), str(v).lower()) for p, m, v in rows}
    for rec in files:
        for s in rec["signals"]:
            if s["type"] in ("md5", "sha1", "sha256") and "mode" not in s:
                assert (rec["path"], s["type"].upper(), s["value"]) in got
    (action,) = g.query(PREFIXES + """
        SELECT ?start ?end ?version (COUNT(DISTINCT ?o) AS ?objects) WHERE {
          ?a a investigation:InvestigativeAction ; action:startTime ?start ; action:endTime ?end ;
             action:instrument ?t ; action:object ?o .
          ?t a tool:Tool ; tool:version ?version . } GROUP BY ?start ?end ?version""")
    assert str(action[0]) == head["started_at"] and str(action[1]) == summary["ended_at"]
    assert str(action[2]) == head["version"] and int(action[3]) == len(files)
    statements = [str(s) for (s,) in g.query(
        PREFIXES + "SELECT ?s WHERE { ?a a core:Annotation ; core:statement ?s . }")]
    assert any(casegen.CONTENT_ID in s and "md5" in s for s in statements)
    assert any(s.startswith("model file safety: dangerous") for s in statements)
    assert any("AI-generated" in s for s in statements)
    assert any("matches its sidecar" in s for s in statements)
    (name,) = g.query(PREFIXES + "SELECT ?n WHERE { ?i a investigation:Investigation ; core:name ?n . }")
    assert str(name[0]) == "C-41"
