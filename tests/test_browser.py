"""JupyterLab in a real browser: the notebooks open unmodified, run top to bottom, show Table 1, and the
sampler answers the mouse and the keyboard.

Starts JupyterLab from this environment on 127.0.0.1 (a free port, a token) on a temporary folder
holding 01 and 03 with tiny parameters (papermill's parameters cell, as `make report` would inject
it), and drives it with Playwright and the system's Chromium (never a downloaded browser). Skipped
when Chromium or the playwright package is missing. About a minute.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from helpers.common.paths import ROOT
from helpers.runs import steps

from conftest import quiet

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROME") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="no Chromium on the PATH (set CHROME=/path/to/chromium)")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT = 120_000  # ms, for a whole notebook to run on a busy two-core machine


SHOTS = os.environ.get("CHARRNN_SCREENSHOTS")
"""A folder to save screenshots of what the test sees into (for a person to look at), or unset."""


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parameterized(name: str, folder: Path, parameters: dict) -> None:
    """notebooks/<name>.ipynb with papermill's injected parameters cell, written into ``folder``."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / f"{name}.ipynb")), parameters)
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(url, token) of a JupyterLab on a folder with 01 and 03, and a tiny trained run for 03."""
    root, run, home = (tmp_path_factory.mktemp(name) for name in ("lab", "run", "home"))
    quiet(
        steps.train,
        "pydoc_data",
        str(run),
        seed=1,
        m=16,
        n_updates=300,
        sample_every=100,
        sample_length=40,
        log_every=10,
        checkpoint_every=100,
    )
    parameterized(
        "01_gradient_test",
        root,
        {"data_path": "pydoc_data", "out_dir": str(run), "m": 8, "seq_lengths": [3, 5]},
    )
    parameterized(
        "03_synthesis",
        root,
        {"data_path": "pydoc_data", "out_dir": str(run), "checkpoint": str(run / "last.npz"), "length": 100},
    )
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    port, token = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "CHARRNN_INTERACTIVE": "1",
    }
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(home / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab did not start:\n{(home / 'lab.log').read_text()}")
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(TIMEOUT)
        yield page
        browser.close()


def open_and_run_all(page, lab, name: str) -> None:
    """Open notebook ``name``, check that opening it changed nothing, and run all its cells."""
    url, token = lab
    page.goto(f"{url}/lab/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook")
    page.wait_for_selector(".jp-StatusBar-Item:has-text('Idle')")  # the kernel has started and said hello
    time.sleep(1)
    tab = page.locator(".lm-TabBar-tab.lm-mod-current").first
    assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), f"{name} shows as modified on opening"
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()


def finished(page) -> None:
    """Wait until every cell has run (no prompt shows [*]), and check none of them failed."""
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')];"
        " return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent) || !/\\[/.test(e.textContent)) }"
    )
    errors = page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) [data-mime-type='application/vnd.jupyter.stderr']"
    )
    assert not [e for e in errors.all_inner_texts() if "Error" in e], errors.all_inner_texts()


def test_gradient_test_shows_table_1(page, lab):
    open_and_run_all(page, lab, "01_gradient_test.ipynb")
    page.wait_for_selector("text=Table 1. Relative error of the analytic gradient", state="attached")
    finished(page)
    table = page.locator("table.results", has=page.locator("th", has_text="seq_length")).first  # Table 1
    assert table.locator("tbody tr").count() == 2  # seq_lengths 3 and 5
    assert "well below 1e-6" in page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").inner_text()
    table.scroll_into_view_if_needed()
    shot(page, "01-table-1")


def test_sampler_follows_the_slider_and_the_priming_text(page, lab):
    open_and_run_all(page, lab, "03_synthesis.ipynb")
    sample = page.locator(".widget-html-content", has_text="temperature")
    sample.wait_for()
    finished(page)
    sample.scroll_into_view_if_needed()
    before = sample.inner_text()
    assert "temperature 1.00" in before and 'prime "\\n"' in before
    shot(page, "03-sampler-before")

    # drag the temperature slider's handle to the left with the mouse
    handle = page.locator(".widget-hslider", has_text="temperature").locator(".noUi-handle")
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 60, box["y"] + box["height"] / 2, steps=6)
    page.mouse.up()
    page.wait_for_function(
        "t => !document.querySelector('.widget-html-content').innerText.includes(t)", arg="temperature 1.00"
    )
    cooler = sample.inner_text()
    temperature = float(cooler.split("temperature ")[1].split(",")[0])
    assert 0.3 <= temperature <= 0.9 and cooler != before  # 60 pixels move it by a fraction, not to the end

    # type a priming text into the prime box, key by key
    prime = page.locator(".widget-text", has_text="prime").locator("input")
    prime.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("The ")
    page.wait_for_function(
        "() => document.querySelector('.widget-html-content').innerText.includes('prime \"The \"')"
    )
    primed = sample.inner_text()
    assert primed != cooler and f"temperature {temperature:.2f}" in primed
    shot(page, "03-sampler-after")


def test_the_live_model_writes_and_colours_in_the_lab(page, lab):
    """03's live component (the one the report and `make page` carry) runs in the Lab's output too."""
    if "03_synthesis" not in page.url:
        open_and_run_all(page, lab, "03_synthesis.ipynb")
        finished(page)
    live = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .charrnn-sampler[data-state=done]").first
    live.wait_for()
    live.scroll_into_view_if_needed()
    sample = live.locator(".charrnn-sample")
    before = sample.inner_text()
    assert before
    root = live.element_handle()
    live.locator("input[aria-label=prime]").fill("The ")
    page.wait_for_function(
        "([root, t]) => root.querySelector('.charrnn-sample').innerText !== t && root.dataset.state === 'done'",
        arg=[root, before],
    )
    shot(page, "03-live-sampler")
    explorer = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .charrnn-activations span")
    assert explorer.count() > 0
    assert explorer.nth(3).evaluate("e => e.style.background")  # coloured by the unit's activation
    explorer.nth(3).hover()
    hover = page.locator(".charrnn-hover").first.inner_text()
    assert hover.startswith("after ") and "next: " in hover
    explorer.nth(3).scroll_into_view_if_needed()
    shot(page, "03-live-explorer")
