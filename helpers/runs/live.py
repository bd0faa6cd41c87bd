"""The model live in a browser: what the sampler and the neuron explorer need, from a checkpoint.

    python -m helpers.runs.live CHECKPOINT PAGE.html [--length 400] [--seed 0]

writes one self-contained HTML page (the model, a sampler and a neuron explorer, no network) to mail
or host anywhere. 03 shows the same component (:func:`show`), and 04 writes ``live_model.json``
for the report (:func:`write`); the HTML is :mod:`helpers.report.live`'s.
"""

from __future__ import annotations

import argparse
import base64
import sys

import numpy as np
from IPython.display import HTML

from ..common import files
from ..common.paths import resolve
from ..data.text import known_part
from ..model import cells
from ..report import live as live_html
from ..report.html import layers
from ..train import checkpoint as ckpt
from .explore import TRACKS, hidden_states, model_text, tracking_units
from .steps import synthesize

FORMAT = 1
"""The layout of the model's JSON (``live_model.json``)."""


def layout(params) -> list:
    """``[name, shape, offset]`` of each parameter in the flat buffer, in its order."""
    out, start = [], 0
    for name in params.names:
        shape = list(params.shapes[name])
        out.append([name, shape, start])
        start += int(np.prod(shape))
    return out


def units(
    checkpoint: str, ck, passage: str, data_path: str = "", start: int = 10_000, window: int = 20_000
) -> list:
    """The units that best track quotes, line position and words (:func:`explore.tracking_units`), on
    the text the model was trained on (or ``data_path``), else on the passage itself."""
    try:
        text = model_text(ck, data_path)[0].text
    except FileNotFoundError:
        text = passage
    start = max(0, min(start, len(text) - window - 1))
    stretch = text[start : start + window + 1]
    return tracking_units(hidden_states(checkpoint, stretch), stretch[:-1]) if len(stretch) > 2 else []


def payload(
    checkpoint: str, passage: str = "", length: int = 400, seed: int = 0, data_path: str = ""
) -> dict:
    """Everything the live component needs: the model (float32 weights in base64, the vocabulary),
    a passage to explore (``passage``, or ``length`` characters it writes with ``seed``), the units
    that track features, and their activations on the passage for the printed version."""
    ck = ckpt.load(checkpoint)
    passage = known_part(passage, ck.chars)[0] or synthesize(checkpoint, length, seed)["text"]
    found = sorted(units(checkpoint, ck, passage, data_path), key=lambda u: -abs(u["r"]))
    H = (
        hidden_states(checkpoint, passage + passage[-1:]) if passage else np.zeros((0, ck.params.m))
    )  # after each character
    strong = [u for u in found if abs(u["r"]) >= TRACKS][:2] or found[:1]
    return {
        "format": FORMAT,
        "cell": cells.of(ck.params),
        "layers": ck.params.layers,
        "m": ck.params.m,
        "K": ck.params.K,
        "chars": ck.chars,
        "layout": layout(ck.params),
        "weights": base64.b64encode(ck.params.flat.astype("<f4").tobytes()).decode("ascii"),
        "passage": passage,
        "units": found,
        "prime": "",
        "printed": [{**u, "values": [round(float(v), 3) for v in H[:, u["unit"]]]} for u in strong],
        "run_id": ck.meta.get("run_id"),
        "step": ck.step,
        "smooth_loss": ck.smooth_loss,
        "corpus": ck.meta.get("corpus", {}).get("name", "?"),
    }


def show(checkpoint: str, passage: str = "", length: int = 400, seed: int = 0, parts: str = "both") -> HTML:
    """The live component in a notebook (03): it runs when the notebook's outputs are trusted (run in
    this session); otherwise the printed version shows."""
    return HTML(live_html.component(payload(checkpoint, passage, length, seed), parts))


def write(checkpoint: str, out_path: str, passage: str = "") -> None:
    """Write the model's JSON for the report (04: the best model and its passage), and say how large it is."""
    data = payload(checkpoint, passage)
    files.write_json(resolve(out_path), data)
    tracked = ", ".join(f"unit {u['unit']} ({u['feature']}, r = {u['r']:+.2f})" for u in data["units"])
    print(
        f"{resolve(out_path)}: {resolve(out_path).stat().st_size / 1024:,.0f} KiB; {tracked or 'no units compared'}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.runs.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a .npz written by 02_train (best.npz or last.npz)")
    parser.add_argument("page", help="the HTML file to write")
    parser.add_argument(
        "--length", type=int, default=400, help="characters of the passage to explore (default 400)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of that passage (default 0)")
    args = parser.parse_args(argv)
    try:
        data = payload(args.checkpoint, length=args.length, seed=args.seed)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = resolve(args.page)
    with files.atomic_path(out) as tmp:
        tmp.write_text(live_html.page(data), encoding="utf-8")
    print(
        f"{out}: {out.stat().st_size / 1024:,.0f} KiB, a {data['cell']} of {layers(data['layers'])}, m = {data['m']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
