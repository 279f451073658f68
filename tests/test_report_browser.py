"""The HTML case report in a real browser (issue 16, item 6): Debian's headless chromium,
driven through the DevTools protocol. It renders without console errors or network
requests; filter, search and sort work; hostile strings from the evidence are shown as
text and no script from a record runs (with a control proving that the check would see
one run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import casegen
from cdp import Browser, chromium_path

pytest.importorskip("websocket")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        msg = "chromium not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + "; under CI it must be present")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("browser")
    case = casegen.build(d, images=3)
    out = d / "case.html"
    res = casegen.invoke("--db", case.db, "report", str(case.report), "-o", str(out),
                         "--case-id", "C-41 <b>x</b>", "--examiner", "J. Doe \u202eevil")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    return out


@pytest.fixture(scope="module")
def browser(chromium: str) -> Browser:
    b = Browser(chromium)
    yield b  # type: ignore[misc]
    b.close()


def _visible(b: Browser, table: str) -> list[str]:
    return b.js(f"""[...document.querySelectorAll('#{table} tbody tr')].filter(r => !r.hidden)
                    .map(r => r.cells[0].textContent)""")


def test_renders_without_errors_or_network_and_no_record_script_runs(browser: Browser, page: Path) -> None:
    browser.call("Network.enable")
    browser.open(page)
    assert browser.problems() == []
    requests = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
    assert requests == [page.resolve().as_uri()]
    # the page's own script ran (scripts are on), and nothing from a record did
    assert browser.js("document.documentElement.getAttribute('data-ready')") == "8"
    assert browser.js("typeof window.__pwned") == "undefined"
    assert browser.js("document.scripts.length") == 2
    assert browser.js("document.querySelectorAll('img,svg,iframe,object,embed,a[href^=javascript]').length") == 0
    # textContent: sections off screen are not laid out yet (content-visibility), so innerText skips them
    text = browser.js("document.querySelector('header').textContent + document.querySelector('main').textContent")
    for hostile in (casegen.XSS_NAME, casegen.JS_URL_NAME, casegen.CONTENT_ID, "<script>window.__pwned=3</script>",
                    "C-41 <b>x</b>", "invoice\\u202egnp.exe", "J. Doe \\u202eevil"):
        assert hostile in text, hostile
    assert "\u202e" not in text
    assert browser.js("document.title") == "assay case report · C-41 <b>x</b>"


def test_filter_search_select_and_sort(browser: Browser, page: Path) -> None:
    browser.open(page)
    total = len(_visible(browser, "t-inventory"))
    assert total == 10
    # typing into the inventory's filter (real key input through the protocol)
    browser.js("document.querySelector('input.filter[data-table=t-inventory]').focus()")
    browser.call("Input.insertText", text="GEN-")
    rows = _visible(browser, "t-inventory")
    assert sorted(Path(r).name for r in rows) == ["gen-0.png", "gen-1.png", "gen-2.png"]
    assert browser.js("document.querySelector('.shown[data-table=t-inventory]').textContent") == "3 of 10 rows shown"
    browser.js("{const i = document.querySelector('input.filter[data-table=t-inventory]'); i.value = '';"
               "i.dispatchEvent(new Event('input'))}")
    assert len(_visible(browser, "t-inventory")) == total
    # the search box filters every table at once
    browser.js("document.getElementById('q').focus()")
    browser.call("Input.insertText", text="evil.pkl")
    assert [Path(r).name for r in _visible(browser, "t-inventory")] == ["evil.pkl"]
    assert [Path(r).name for r in _visible(browser, "t-models")] == ["evil.pkl"]
    assert _visible(browser, "t-matches") == []
    browser.js("{const q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input'))}")
    # a column's value list (kind = model)
    browser.js("""{const s = [...document.querySelectorAll('select.colfilter')]
                    .find(x => x.getAttribute('aria-label') === 'filter by kind');
                  s.value = 'model'; s.dispatchEvent(new Event('change'))}""")
    assert sorted(Path(r).name for r in _visible(browser, "t-inventory")) == ["evil.pkl", "model.safetensors"]
    browser.js("""{const s = [...document.querySelectorAll('select.colfilter')]
                    .find(x => x.getAttribute('aria-label') === 'filter by kind');
                  s.value = ''; s.dispatchEvent(new Event('change'))}""")
    # sorting by size: numeric, both directions, and back by name
    size_col = browser.js("[...document.querySelectorAll('#t-inventory th')].findIndex(t => t.textContent === 'size')")
    sizes = f"[...document.querySelectorAll('#t-inventory tbody tr')].map(r => +r.cells[{size_col}].dataset.v)"
    browser.js(f"document.querySelectorAll('#t-inventory th button')[{size_col}].click()")
    asc = browser.js(sizes)
    assert asc == sorted(asc) and asc[0] < asc[-1]
    assert browser.js(f"document.querySelectorAll('#t-inventory th')[{size_col}].getAttribute('aria-sort')") == "ascending"
    browser.js(f"document.querySelectorAll('#t-inventory th button')[{size_col}].click()")
    assert browser.js(sizes) == sorted(asc, reverse=True)
    browser.js("document.querySelectorAll('#t-inventory th button')[0].click()")
    names = browser.js("[...document.querySelectorAll('#t-inventory tbody tr')].map(r => r.cells[0].textContent.toLowerCase())")
    assert names == sorted(names)
    assert browser.problems() == []


def test_csp_stops_injected_markup_and_the_check_can_see_a_script_run(browser: Browser, page: Path,
                                                                     tmp_path: Path) -> None:
    """Defence in depth: even markup that escaped escaping could not run under the page's
    policy. And a control: the same injection without the policy does run, so the
    ``window.__pwned`` check above is a real one."""
    html = page.read_text(encoding="utf-8")
    injected = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    hostile = tmp_path / "injected.html"
    hostile.write_text(html.replace("<main>", "<main>" + injected, 1), encoding="utf-8")
    browser.open(hostile)
    assert browser.js("typeof window.__pwned") == "undefined"
    assert any("Content Security Policy" in p for p in browser.problems())
    no_csp = tmp_path / "no-csp.html"
    start = html.index('<meta http-equiv="Content-Security-Policy"')
    stripped = html[:start] + html[html.index(">", start) + 1:]
    no_csp.write_text(stripped.replace("<main>", "<main>" + injected, 1), encoding="utf-8")
    browser.open(no_csp)
    assert browser.js("window.__pwned") in (1, 2)


def test_printed_copy_has_page_headers_and_numbers(browser: Browser, page: Path) -> None:
    import base64
    import io

    pypdf = pytest.importorskip("pypdf")
    browser.open(page)
    pdf = base64.b64decode(browser.call("Page.printToPDF", preferCSSPageSize=True, printBackground=False)["data"])
    pages = pypdf.PdfReader(io.BytesIO(pdf)).pages
    texts = [p.extract_text() for p in pages]
    n = len(texts)
    assert n >= 2
    for i, t in enumerate(texts, 1):
        assert "assay case report" in t and "case C-41 <b>x</b>" in t, t[:300]  # the running header
        assert f"page {i} of {n}" in t
    whole = "".join("".join(texts).split())  # narrow columns wrap long values across lines
    assert casegen.CONTENT_ID in whole and "Fileinventory" in whole and "Searcheverytable" not in whole
