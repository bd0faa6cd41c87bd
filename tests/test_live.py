"""The model live in the browser: the JavaScript forward pass against numpy, and the sampler and the
neuron explorer driven in a real Chromium (Playwright, the system's browser, every request that is not
file: or data: blocked), on a standalone page of each cell and on the report."""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.common.paths import ROOT
from helpers.report import live as live_html
from helpers.runs import explore, live, steps
from helpers.train import checkpoint as ckpt

from conftest import quiet

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROME") or shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MAKE_PAGE = shutil.which("make") is not None and Path(sys.executable).absolute() == ROOT / ".venv/bin/python"
"""Whether `make page` runs this interpreter (the suite under `make test`), so a test may call it."""
MODELS = {"rnn": dict(cell="rnn"), "lstm": dict(cell="lstm"), "gru-2": dict(cell="gru", n_layers=2)}
PRIMES = ["\n", "The ", "def f(x):\n    return", "no such characters: ¤¤"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """A short run of each cell on the Python docs, and a standalone page of its best model."""
    folder = tmp_path_factory.mktemp("live")
    out = {}
    for name, options in MODELS.items():
        quiet(
            steps.train,
            "pydoc_data",
            str(folder / name),
            m=12,
            n_updates=150,
            batch_size=4,
            optimizer="adam",
            eta=0.01,
            checkpoint_every=150,
            sample_every=1000,
            **options,
        )
        page, checkpoint = folder / f"{name}.html", str(folder / name / "best.npz")
        if name == "rnn" and MAKE_PAGE:  # as a user makes one: `make page CHECKPOINT=... PAGE=...`
            cmd = ["make", "--no-print-directory", "page", f"CHECKPOINT={checkpoint}", f"PAGE={page}"]
            cmd.append("ARGS=--length 160")
        else:
            cmd = [sys.executable, "-m", "helpers.runs.live", checkpoint, str(page), "--length", "160"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0 and "KiB" in done.stdout, done.stderr
        out[name] = (folder / name / "best.npz", page)
    return out


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("no Chromium on the PATH (set CHROME=/path/to/chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, url):
    """A page at ``url`` with the network closed; its console and page errors are collected."""
    page = browser.new_page(viewport={"width": 1100, "height": 1200})
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())
    page.goto(url)
    page.wait_for_selector(".charrnn-sampler[data-state=done]", timeout=30_000)
    return page


JS_PROBS = """([prime, t]) => { const L = window.CharRNNLive;
  const m = L.model(document.querySelector('[data-charrnn-live]').dataset.charrnnLive);
  let s = m.zero(); for (const x of m.known(prime)[0]) s = m.step(s, x); return Array.from(m.probs(s, t)); }"""


def test_the_payload_carries_the_weights_as_float32(pages):
    path, _ = pages["gru-2"]
    data, model = live.payload(str(path), passage="The cat."), ckpt.load(path)
    flat = np.frombuffer(base64.b64decode(data["weights"]), "<f4")
    np.testing.assert_array_equal(flat, model.params.flat.astype(np.float32))
    assert [name for name, _, _ in data["layout"]] == list(model.params.names) and data["layers"] == 2
    assert data["chars"] == model.chars and len(data["printed"][0]["values"]) == len("The cat.")


@pytest.mark.parametrize("name", list(MODELS))
def test_javascript_gives_numpys_next_character_probabilities(pages, browser, name):
    path, page_file = pages[name]
    page = open_page(browser, page_file.as_uri())
    for prime in PRIMES:
        for temperature in (1.0, 0.6):
            known = "".join(ch for ch in prime if ch in ckpt.load(path).chars)
            js = np.array(page.evaluate(JS_PROBS, [prime, temperature]))
            _, py = explore.next_char_probabilities(str(path), known, temperature)
            np.testing.assert_allclose(js, py, atol=1e-5, rtol=0)
    assert not page.errors, page.errors


def test_the_sampler_answers_its_controls(pages, browser):
    page = open_page(browser, pages["lstm"][1].as_uri())
    sample = page.locator(".charrnn-sample")
    first = sample.inner_text()
    assert len(first) == 300
    page.fill("input[aria-label=prime]", "The ")
    page.wait_for_function("t => document.querySelector('.charrnn-sample').innerText !== t", arg=first)
    page.wait_for_selector(".charrnn-sampler[data-state=done]")
    primed = sample.inner_text()
    page.locator("input[aria-label=temperature]").fill(
        "0.3"
    )  # a range input: fill sets its value and fires input
    page.wait_for_function("t => document.querySelector('.charrnn-sample').innerText !== t", arg=primed)
    page.wait_for_selector(".charrnn-sampler[data-state=done]")
    assert "temperature 0.30" in page.locator(".charrnn-values").inner_text()
    page.fill("input[aria-label=prime]", "¤¤The ")  # characters it never saw are left out and named
    page.wait_for_function("() => document.querySelector('.charrnn-note').innerText.includes('¤')")
    assert not page.errors, page.errors


def test_the_explorer_colours_a_typed_passage_and_shows_the_top_5_on_hover(pages, browser):
    page = open_page(browser, pages["gru-2"][1].as_uri())
    page.fill("textarea[aria-label=passage]", "The cat sat.")
    page.wait_for_function("() => document.querySelectorAll('.charrnn-activations span').length === 12")
    spans = page.locator(".charrnn-activations span")
    assert spans.nth(4).evaluate("e => getComputedStyle(e).backgroundColor").startswith("rgb")
    spans.nth(4).hover()
    hover = page.locator(".charrnn-hover").inner_text()
    assert (
        hover.startswith('after "c"') and len(hover.split("next: ")[1].split()) == 10
    )  # 5 characters, 5 values
    colours = "() => [...document.querySelectorAll('.charrnn-activations span')].map(e => e.style.background)"
    before = page.evaluate(colours)
    page.select_option("select[aria-label='hidden unit']", "3")
    assert page.evaluate(colours) != before  # another unit, other colours
    assert not page.errors, page.errors


def test_the_printed_version_is_there_for_the_pdf(pages):
    data = live.payload(str(pages["rnn"][0]), passage="A passage.")
    body = live_html.component(data)
    assert "charrnn-static" in body and "In the HTML version of this report" in body
    assert (
        "unit " in html.unescape(body)
        and "src=" not in body
        and "http://" not in body
        and "https://" not in body
    )
    assert (
        json.loads(body.split('type="application/json"')[1].split(">", 1)[1].split("</script>")[0])["K"]
        == data["K"]
    )


def test_the_report_carries_the_best_model_live_and_prints_it_static(report_run, browser):
    """make report's report.html: the best model writes in the browser with numpy's probabilities; the
    PDF shows the coloured passage and says where the live version is."""
    page = open_page(browser, (report_run / "report.html").as_uri())
    best = str(report_run / "best.npz")
    for prime in PRIMES[:3]:
        known = "".join(ch for ch in prime if ch in ckpt.load(best).chars)
        js = np.array(page.evaluate(JS_PROBS, [prime, 1.0]))
        np.testing.assert_allclose(js, explore.next_char_probabilities(best, known)[1], atol=1e-5, rtol=0)
    first = page.locator(".charrnn-sample").inner_text()
    page.fill("input[aria-label=prime]", "The ")
    page.wait_for_function("t => document.querySelector('.charrnn-sample').innerText !== t", arg=first)
    assert page.locator(".charrnn-static").is_hidden() and not page.errors, page.errors
    from pypdf import PdfReader

    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(report_run / "report.pdf").pages)
    assert "5 The model, live" in text and "In the HTML version of this report the model writes here" in text
