"""The Lab after `make report`, in a real browser: a first look with 02, then 03, 04 and 05 with Run
All, File > Save and Export Notebook As > Report, and a git checkout that stays clean.

A copy of the repository (its tracked files as they are now) becomes a git checkout of its own, with
the filter `make venv` sets up, and a `make report`-like run in output/run. JupyterLab runs from
this environment with PYTHONPATH on the copy, so the copy's `helpers` and paths are the ones used,
and Playwright drives the system's Chromium. Skipped without Chromium. About two minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from helpers.common.paths import ROOT

from test_browser import BROWSER_ARGS, CHROMIUM, TIMEOUT, finished, free_port, shot
from test_journeys import plain

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="no Chromium on the PATH (set CHROME=/path/to/chromium)")
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
TINY_REPORT = [
    "-p",
    "data_path",
    "pydoc_data",
    "-p",
    "m",
    "16",
    "-p",
    "n_updates",
    "300",
    "-p",
    "seq_lengths",
    "[3]",
    "-p",
    "sample_every",
    "100",
    "-p",
    "sample_length",
    "40",
    "-p",
    "length",
    "120",
]


def run(*command, cwd, env=None):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git checkout of the tracked files as they are, with the notebook filter, and a tiny
    `make report` run in output/run."""
    repo = tmp_path_factory.mktemp("repo")
    for name in run("git", "ls-files", "-z", cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    run("git", "init", "-q", cwd=repo)
    run(
        "git",
        "config",
        "filter.notebook.clean",
        f"{sys.executable} -m helpers.jobs.notebooks clean %f",
        cwd=repo,
    )
    run(*GIT, "add", ".", cwd=repo)
    run(*GIT, "commit", "-qm", "the project", cwd=repo)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    run(sys.executable, "-m", "helpers.jobs.pipeline", "--no-pdf", *TINY_REPORT, cwd=repo, env=env)
    assert (repo / "output" / "run" / "report.html").is_file() and not run(
        "git", "status", "--porcelain", cwd=repo
    )
    return repo


@pytest.fixture(scope="module")
def lab(repo, tmp_path_factory):
    """(url, token) of JupyterLab on the copy, as `make lab` starts it."""
    home = tmp_path_factory.mktemp("home")
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    port, token = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
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
        f"--ServerApp.root_dir={repo}",
        f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    with open(home / "lab.log", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=repo)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    assert server.poll() is None, (home / "lab.log").read_text()
                    time.sleep(0.5)
            yield url, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


@pytest.fixture(scope="module")
def page(lab, tmp_path_factory):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        yield page
        browser.close()


def open_notebook(page, lab, name: str) -> None:
    url, token = lab
    page.goto(f"{url}/lab/tree/notebooks/{name}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook")
    page.wait_for_selector(".jp-StatusBar-Item:has-text('Idle')")
    time.sleep(1)


def menu(page, top: str, *items: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=top).first.click()
    for item in items:
        page.locator(".lm-Menu-item:visible", has_text=item).first.click()


def run_all_and_save(page) -> str:
    """Run All, wait for the last cell, save; the notebook's text as shown."""
    menu(page, "Run", "Run All Cells")
    time.sleep(1)
    finished(page)
    page.wait_for_selector(".jp-StatusBar-Item:has-text('Idle')")
    menu(page, "File", "Save Notebook")
    page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.lm-mod-current.jp-mod-dirty')")
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").text_content()


def test_a_first_look_then_the_report_from_the_lab_keeps_git_clean(repo, lab, page):
    old_run = json.loads((repo / "output" / "run" / "run.json").read_text())["run_id"]

    open_notebook(page, lab, "02_train")  # a first look, as the notebook suggests: fewer updates
    line = page.locator(".jp-CodeCell .cm-line", has_text="n_updates: int = 300000")
    line.click()
    page.keyboard.press("End")
    page.keyboard.press("Shift+Home")
    page.keyboard.type("n_updates: int = 20000")
    shown = run_all_and_save(page)
    assert f"holds run {old_run}" in shown and "replaces its checkpoints" in shown  # said before it trained
    new = json.loads((repo / "output" / "run" / "run.json").read_text())
    new_run = new["run_id"]
    assert new_run != old_run and new["steps_done"] == 20000

    shown = {}
    for name in ("03_synthesis", "04_best_model"):  # the new run's model, with nothing but their defaults
        open_notebook(page, lab, name)
        shown[name] = run_all_and_save(page)
        shot(page, f"lab-{name}")
    assert (
        "On Python documentation topics" in shown["03_synthesis"]
        and "after 20,000 updates" in shown["03_synthesis"]
    )
    assert "the last 10,000 characters of the text" in shown["04_best_model"]

    open_notebook(page, lab, "05_report")
    shown = run_all_and_save(page)
    assert new_run in shown and "Traceback" not in shown
    shot(page, "lab-05_report")
    downloads = []  # the export opens a window that downloads the report and closes
    page.on("download", lambda d: downloads.append(d))
    page.context.on("page", lambda popup: popup.on("download", lambda d: downloads.append(d)))
    menu(page, "File", "Save and Export Notebook As", "Report")
    for _ in range(120):
        if downloads:
            break
        page.wait_for_timeout(500)
    exported = Path(downloads[0].path()).read_text(encoding="utf-8")
    assert downloads[0].suggested_filename == "05_report.html"
    text = plain(re.sub(r"(?s)<style.*?</style>", "", exported))
    assert "Table 1" in text and new_run in text and "Traceback" not in text and "Error" not in text
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in exported  # no error output at all

    # git sees the one edit the user made (02's n_updates), not the outputs every notebook now holds on disk
    assert run("git", "status", "--porcelain", "--", "notebooks", cwd=repo) == " M notebooks/02_train.ipynb\n"
    changed = [line for line in run("git", "diff", "-U0", cwd=repo).splitlines() if line[:1] in "+-"]
    assert changed[2:] == [
        '-    "n_updates: int = 300000  # total number of updates (the book: 6.8 epochs; training prints it for your '
        'text)\\n",',
        '+    "n_updates: int = 20000\\n",',
    ], changed
    assert (
        "outputs" in (repo / "notebooks" / "05_report.ipynb").read_text()
    )  # the Lab's save kept them on disk
    run(
        sys.executable,
        "-m",
        "helpers.jobs.notebooks",
        "check",
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
