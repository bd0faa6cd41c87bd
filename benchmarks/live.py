"""How big is the live page, and does it stay responsive while the model writes?

    python -m benchmarks.live [--length 1000] [--runs 3]

For the assignment's RNN (m = 100) and the best recipe's size (GRU, m = 256; and two layers), with
K = 80 and random weights (the time does not depend on what the weights learned): the page's size,
the time the sampler takes to write ``--length`` characters in the system's Chromium, and the
longest time the page's main thread was blocked meanwhile (a long task, > 50 ms, in the browser's
own Long Tasks API; 0 when there was none). The sampler writes in slices of about 12 ms, so the
page answers the mouse and the keyboard while it writes. Needs Chromium (CHROME=/path) and playwright.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from helpers.model import cells
from helpers.report import live as live_html
from helpers.report.html import layers as html_layers
from helpers.runs import live
from helpers.train import checkpoint as ckpt

MODELS = (("rnn", 100, 1), ("gru", 256, 1), ("gru", 256, 2), ("lstm", 256, 1))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMED = """async ([n]) => {
  const longest = {ms: 0};
  new PerformanceObserver((l) => l.getEntries().forEach((e) => { longest.ms = Math.max(longest.ms, e.duration); }))
    .observe({type: "longtask", buffered: false});
  const length = document.querySelector("input[aria-label=length]"), root = document.querySelector(".charrnn-sampler");
  const t0 = performance.now();
  length.value = String(n); length.dispatchEvent(new Event("input"));
  while (root.dataset.state !== "done") await new Promise((r) => setTimeout(r, 5));
  return [performance.now() - t0, longest.ms, document.querySelector(".charrnn-sample").textContent.length];
}"""


def page_for(folder: Path, cell: str, m: int, layers: int) -> Path:
    chars = [chr(c) for c in range(32, 112)]  # K = 80, as the book
    params = cells.init_params(cell, m, len(chars), 0.1, np.random.default_rng(0), layers=layers)
    path = folder / f"{cell}-{m}-{layers}.npz"
    ckpt.save(path, ckpt.Checkpoint(params=params, chars=chars, step=1, smooth_loss=1.0))
    page = path.with_suffix(".html")
    page.write_text(
        live_html.page(live.payload(str(path), passage="A passage to colour. " * 10)), encoding="utf-8"
    )
    return page


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    chromium = os.environ.get("CHROME") or shutil.which("chromium") or shutil.which("chromium-browser")
    from playwright.sync_api import sync_playwright

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; Chromium {chromium}")
    print(f"{'model':<22} {'page KiB':>9} {'ms to write ' + str(args.length):>18} {'longest block ms':>17}")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        for cell, m, layers in MODELS:
            page_file = page_for(Path(tmp), cell, m, layers)
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_selector(".charrnn-sampler[data-state=done]")
            times, blocks = [], []
            for _ in range(args.runs):
                ms, block, n = page.evaluate(TIMED, [args.length])
                assert n == args.length
                times.append(ms)
                blocks.append(block)
            name = f"{cell}, m = {m}, {html_layers(layers)}"
            print(
                f"{name:<22} {page_file.stat().st_size / 1024:>9,.0f} "
                f"{statistics.median(times):>18,.0f} {max(blocks):>17,.0f}"
            )
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
