"""An interactive sampler for JupyterLab (ipywidgets), with a static fallback for batch runs.

    from helpers.runs import interactive
    interactive.sampler("output/run/best.npz")

Pick a checkpoint, temperature, top-p, length, priming text, seed and beam width (2 or more: beam
search instead of sampling); the text is synthesized
again whenever a control moves. Under papermill, nbconvert or ``make report`` the same call
shows one static sample with the given settings instead of a widget.

The priming text box shows a line break as ``\n`` (and a tab as ``\t``, a backslash as ``\\``); an
empty box means the default prime (a line break when the model knows one). Characters the model
never saw are left out of the prime, and the header says which.
"""

from __future__ import annotations

import html
import re

from IPython.display import HTML, display

from ..common.paths import ROOT, resolve
from ..common.progress import is_interactive
from ..report.html import text_block
from ..report.sections import after
from ..train.checkpoint import load
from . import steps

ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}
"""What a backslash sequence in the priming text box stands for."""


def find_checkpoints(folder: str = "output") -> list[str]:
    """Checkpoints (``*.npz``) under ``folder``, as paths relative to the repository root."""
    base = resolve(folder)
    found = sorted(base.rglob("*.npz")) if base.is_dir() else []
    return [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in found]


def show_prime(prime: str) -> str:
    """The priming text as the text box shows it: line breaks, tabs and backslashes escaped."""
    return prime.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def read_prime(text: str) -> str:
    """The priming text typed in the box: ``\\n``, ``\\t``, ``\\\\`` read back; empty means the default."""
    return re.sub(r"\\([nt\\])", lambda m: ESCAPES[m.group(1)], text)


def sample_html(result: dict) -> str:
    """A synthesized text as HTML (monospace, line breaks kept) under what produced it: the model
    (when it was saved, its smooth loss) and the sampling settings (temperature, top-p, prime, seed)."""
    return (
        f'<div style="font-size:12px;color:#555">{html.escape(after(result["step"]))}, smooth loss '
        f"{result['smooth_loss']:.2f} · temperature {result['temperature']:.2f}, top-p {result['top_p']:.2f}, "
        f'prime "{html.escape(show_prime(result["prime"]))}", seed {result["seed"]} · '
        f"{len(result['text']):,} characters</div>" + _note(result) + text_block(result["text"])
    )


def _note(result: dict) -> str:
    return (
        f'<div style="font-size:12px;color:#8a4b00">{html.escape(result["note"])}</div>'
        if result.get("note")
        else ""
    )


class Sampler:
    """The widget: controls plus an HTML area refreshed on every change.

    Attributes ``checkpoint``, ``temperature``, ``top_p``, ``length``, ``prime``, ``seed``, ``beam_width``
    are the controls; ``output`` holds the text (``output.value``); ``widget`` is what to display.
    """

    def __init__(
        self,
        checkpoint: str,
        length: int = 300,
        temperature: float = 1.0,
        top_p: float = 1.0,
        prime: str = "",
        seed: int = 0,
        beam_width: int = 0,
    ):
        import ipywidgets as w

        options = find_checkpoints()
        if checkpoint not in options:
            options = [checkpoint, *options]
        style = {"description_width": "90px"}
        self.checkpoint = w.Dropdown(
            options=options,
            value=checkpoint,
            description="checkpoint",
            style=style,
            layout=w.Layout(width="520px"),
        )
        # linear, in steps of 0.05, on a track of about 300 pixels: an arrow key moves it by 0.05, a drag by
        # about 0.05 per 8 pixels; a value is applied when the slider is released (each is a new synthesis)
        self.temperature = w.FloatSlider(
            value=temperature,
            min=0.05,
            max=max(2.0, temperature),
            step=0.05,
            description="temperature",
            style=style,
            readout_format=".2f",
            continuous_update=False,
            layout=w.Layout(width="440px"),
        )
        self.top_p = w.FloatSlider(
            value=top_p,
            min=0.01,
            max=1.0,
            step=0.01,
            description="top-p",
            style=style,
            continuous_update=False,
            layout=w.Layout(width="360px"),
        )
        self.length = w.IntSlider(
            value=length,
            min=0,
            max=2000,
            step=10,
            description="length",
            style=style,
            continuous_update=False,
            layout=w.Layout(width="360px"),
        )
        prime = prime or steps.usable_prime("", load(checkpoint).chars)[0]  # the default, visible in the box
        self.prime = w.Text(
            value=show_prime(prime),
            description="prime",
            style=style,
            placeholder="empty: a line break (\\n) if the model knows one",
            layout=w.Layout(width="440px"),
        )
        self.seed = w.IntText(value=seed, description="seed", style=style, layout=w.Layout(width="200px"))
        self.beam_width = w.IntSlider(value=beam_width, min=0, max=16, description="beam width", style=style)
        self.output = w.HTML()
        controls = (
            self.checkpoint,
            self.temperature,
            self.top_p,
            self.length,
            self.prime,
            self.seed,
            self.beam_width,
        )
        for control in controls:
            control.observe(self.refresh, names="value")
        self.widget = w.VBox(
            [
                w.HBox([self.checkpoint, self.seed]),
                w.HBox([self.temperature, self.top_p]),
                w.HBox([self.prime, self.length]),
                self.beam_width,
                self.output,
            ]
        )
        self.refresh()

    def refresh(self, _change=None) -> None:
        """Synthesize with the current settings; a bad setting shows its message instead of text."""
        try:
            result = steps.synthesize(
                self.checkpoint.value,
                self.length.value,
                self.seed.value,
                read_prime(self.prime.value),
                self.temperature.value,
                self.top_p.value,
                beam_width=self.beam_width.value,
            )
            self.output.value = sample_html(result)
        except (ValueError, FileNotFoundError) as err:
            self.output.value = f'<div style="color:#b00020">{html.escape(str(err))}</div>'

    def _ipython_display_(self):
        display(self.widget)


def sampler(
    checkpoint: str = "output/run/last.npz",
    length: int = 300,
    temperature: float = 1.0,
    top_p: float = 1.0,
    prime: str = "",
    seed: int = 0,
    beam_width: int = 0,
):
    """The interactive sampler in a live notebook; one static sample (HTML) in a batch run."""
    if is_interactive():
        return Sampler(checkpoint, length, temperature, top_p, prime, seed, beam_width)
    result = steps.synthesize(checkpoint, length, seed, prime, temperature, top_p, beam_width=beam_width)
    return HTML("<p>Static sample (the interactive sampler needs a live notebook):</p>" + sample_html(result))
