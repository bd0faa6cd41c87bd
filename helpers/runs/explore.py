"""Looks inside a model, for the notebooks that teach it (01, 03, 04).

Each function computes from parameters or a checkpoint and returns something small to display:
an HTML table, a figure, a few synthesized texts side by side, a passage coloured by hidden units.

    forward_steps(params, x, y, chars)           01: one forward pass, a row per time step
    gradient_entries(params, x, y, rng)          01: a few analytic and numerical gradient entries
    parameter_table(params)                      01: the shapes of U, W, V, b, c
    temperature_samples(checkpoint, ...)         03: one prime continued at several temperatures
    next_char_figure(checkpoint, prime, ...)     03: the next-character distribution after a prime
    hidden_units(checkpoint, data_path, ...)     03: the units that track quotes, line length, words
    checkpoint_facts(checkpoint)                 04: where a model came from, beside the run's last one
    slice_loss(checkpoint, data_path, n_chars)   04: loss per character on a slice of the text

``data_path`` "" (03's and 04's default) means the text the checkpoint was trained on, as its meta
records it; a checkpoint is all it takes to look inside its model.
"""

from __future__ import annotations

import html

import numpy as np
from IPython.display import HTML
from matplotlib.figure import Figure

from ..common.paths import resolve
from ..common.units import bits
from ..data.text import Corpus, encode, known_part, load_corpus, training_text, unknown_note
from ..model import cells, gradcheck, sample
from ..model.params import NAMES, ParamSet
from ..report.figures import show
from ..report.html import ACTIVATION_LEGEND, activation_passage, table, text_block
from ..report.sections import after
from ..train import checkpoint as ckpt
from ..train import evaluate
from .steps import synthesize, usable_prime

ROLES = {
    "U": "input → hidden",
    "W": "hidden → hidden",
    "V": "hidden → output",
    "b": "hidden bias",
    "c": "output bias",
}


def shown(ch: str) -> str:
    """A character as a table shows it: a line break as ↵, a space as ␣, a tab as ⇥."""
    return {"\n": "↵", " ": "␣", "\t": "⇥"}.get(ch, ch)


def parameter_table(params: ParamSet) -> HTML:
    """The parameters' shapes and roles, and how many numbers they hold in all."""
    rows = [
        [f"<b>{name}</b>", ROLES[name], " × ".join(map(str, params[name].shape)), f"{params[name].size:,}"]
        for name in NAMES
    ]
    return HTML(
        table(
            ["parameter", "maps", "shape", "entries"],
            rows,
            f"m = {params.m} hidden units, K = {params.K} characters: {params.flat.size:,} numbers to learn.",
        )
    )


def forward_steps(params: ParamSet, x, y, chars: list[str], cell: str = "rnn") -> HTML:
    """One forward pass from h_0 = 0, a row per step: x_t, the target y_t, p_t[y_t], −log p_t[y_t],
    the most likely next character, and the sum of the losses."""
    x, y = np.asarray(x), np.asarray(y)
    state = cells.initial_state(cell, params)
    loss, cache = cells.forward(cell, params, x[None, :], y[None, :], state)
    P = cache["P"][:, 0, :]  # (T, K)
    rows = [
        [
            f"{t + 1}",
            html.escape(shown(chars[x[t]])),
            html.escape(shown(chars[y[t]])),
            f"{P[t, y[t]]:.5f}",
            f"{-np.log(P[t, y[t]]):.4f}",
            html.escape(shown(chars[int(P[t].argmax())])),
        ]
        for t in range(len(x))
    ]
    rows.append(["", "", "", "sum", f"<b>{loss:.4f}</b>", ""])
    return HTML(
        table(
            [
                "t",
                "x<sub>t</sub>",
                "y<sub>t</sub>",
                "p<sub>t</sub>[y<sub>t</sub>]",
                "−log p<sub>t</sub>[y<sub>t</sub>]",
                "argmax p<sub>t</sub>",
            ],
            rows,
            raw_head=True,
        )
    )


def gradient_entries(
    params: ParamSet,
    x,
    y,
    rng: np.random.Generator,
    per_parameter: int = 2,
    h: float = 1e-4,
    cell: str = "rnn",
) -> HTML:
    """A few entries of each parameter's gradient, analytic (BPTT) beside numerical (centered
    differences), with their elementwise relative error; the entries are drawn with ``rng`` (those of
    U from the columns of characters in ``x``: the others have a zero gradient)."""
    p = params.copy()
    state = np.zeros(p.m * cells.STATE_SIZES[cell])
    analytic = gradcheck.analytic_grads(p, x, y, state, cell)
    loss = gradcheck.loss_function(p, x, y, state, cell)
    rows = []
    for name in NAMES:
        view = p[name].reshape(-1)
        pool = np.flatnonzero(np.isin(np.arange(view.size) % p.K, x)) if name == "U" else np.arange(view.size)
        for i in sorted(rng.choice(pool, size=min(per_parameter, pool.size), replace=False)):
            g_a, g_n = analytic[name].reshape(-1)[i], gradcheck.centered_difference(loss, view, i, h)
            rel = abs(g_a - g_n) / max(gradcheck.EPS, abs(g_a) + abs(g_n))
            index = np.unravel_index(i, p[name].shape)
            rows.append(
                [f"<b>{name}</b>[{', '.join(map(str, index))}]", f"{g_a:+.8e}", f"{g_n:+.8e}", f"{rel:.1e}"]
            )
    return HTML(table(["entry", "analytic", "numerical", "relative error"], rows))


def temperature_samples(
    checkpoint: str, temperatures, length: int = 200, seed: int = 0, prime: str = "\n", top_p: float = 1.0
) -> HTML:
    """The same prime continued at each temperature, side by side (one seed, so one set of draws)."""
    columns = []
    for t in temperatures:
        r = synthesize(checkpoint, length, seed, prime, t, top_p)
        columns.append(
            f'<div style="flex: 1; min-width: 14em"><p style="font-weight: bold; margin: 0.2em 0">'
            f"temperature {t:g}</p>{text_block(r['text'])}</div>"
        )
    return HTML(f'<div style="display: flex; gap: 0.8em; align-items: flex-start">{"".join(columns)}</div>')


def next_char_probabilities(
    checkpoint: str, prime: str, temperature: float = 1.0
) -> tuple[list[str], np.ndarray]:
    """The vocabulary and p(next character) after reading ``prime``, at ``temperature``."""
    ck = ckpt.load(checkpoint)
    cell = cells.of(ck.params)
    x = encode(usable_prime(prime, ck.chars)[0], ck.chars)
    state = sample.warm_up(ck.params, cells.initial_state(cell, ck.params)[0], x, cell)
    o = (ck.params.V @ cells.get(cell).top(ck.params, state) + ck.params.c) / temperature
    p = np.exp(o - o.max())
    return ck.chars, p / p.sum()


def default_probe(text: str, start: int = 0, length: int = 30) -> str:
    """About ``length`` characters of ``text`` from ``start``, ending with a whole word: a probe made of
    the model's own kind of text."""
    piece = text[start : start + length + 1]
    cut = piece.rstrip().rfind(" ")
    return (piece[:cut] if cut > 0 else piece[:length]).strip() or piece[:length]


def next_char_figure(
    checkpoint: str,
    prime: str = "",
    temperatures=(0.5, 1.0, 1.5),
    top_k: int = 15,
    data_path: str = "",
    start: int = 0,
):
    """Bar chart: the ``top_k`` most likely next characters after ``prime`` (at temperature 1), with
    their probabilities at each temperature. An empty ``prime`` is :func:`default_probe` of the
    model's text (``data_path``, by default the text it was trained on) from ``start``."""
    ck = ckpt.load(checkpoint)
    if not prime:
        try:
            prime = default_probe(model_text(ck, data_path)[0].text, int(start))
        except FileNotFoundError:
            pass  # usable_prime gives the default prime
    prime, note = usable_prime(prime, ck.chars, "probe")
    chars, base = next_char_probabilities(checkpoint, prime)
    order = np.argsort(-base, kind="stable")[:top_k]
    fig = Figure(figsize=(7.5, 2.8), dpi=130)
    ax = fig.subplots()
    width = 0.8 / len(temperatures)
    for i, t in enumerate(temperatures):
        p = next_char_probabilities(checkpoint, prime, t)[1]
        ax.bar(
            np.arange(len(order)) + (i - (len(temperatures) - 1) / 2) * width,
            p[order],
            width,
            label=f"temperature {t:g}",
        )
    ax.set_xticks(np.arange(len(order)), [repr(chars[j])[1:-1] if chars[j] != " " else "␣" for j in order])
    ax.set_ylabel("p(next character)")
    tail = prime[-30:]
    ax.set_title(f"after …{tail!r}", fontsize=9, loc="left")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(axis="y", alpha=0.25)
    fig.tight_layout()
    if note:
        print(f"note: {note}")
    return show(fig)


FEATURES = {
    "inside quotes": lambda text: np.cumsum([ch in '"“”' for ch in text]) % 2 == 1,
    "characters since the line break": lambda text: np.array(_since_newline(text)),
    "inside a word": lambda text: np.array([ch.isalpha() for ch in text]),
}
"""What a hidden unit may track: a value per character of a text."""


def _since_newline(text: str) -> list[int]:
    out, n = [], 0
    for ch in text:
        n = 0 if ch == "\n" else n + 1
        out.append(n)
    return out


def hidden_states(checkpoint: str, text: str) -> np.ndarray:
    """The hidden state h_t (of the top layer) after each character of ``text`` (T, m), from h_0 = 0."""
    ck = ckpt.load(checkpoint)
    cell = cells.of(ck.params)
    x = encode(text, ck.chars)
    state = cells.initial_state(cell, ck.params)
    _, cache = cells.forward(cell, ck.params, x[None, :-1], x[None, 1:], state)
    return cache["layers"][-1]["H"][1:, 0, :]


def model_text(ck: ckpt.Checkpoint, data_path: str = "") -> tuple[Corpus, str]:
    """The text to look at a model on, without the characters it does not know, and a note on those.

    ``data_path`` "" is the text the checkpoint was trained on (FileNotFoundError, saying so and how to
    pass ``data_path``, when it is gone); any other value is read as 02_train reads it.
    """
    corpus = load_corpus(data_path) if data_path else training_text(ck.meta.get("corpus", {}))
    kept, missing = known_part(corpus.text, ck.chars)
    return Corpus(kept, corpus.name, corpus.source), unknown_note(missing, ck.chars, f"text {corpus.name!r}")


def _gone(err: FileNotFoundError) -> HTML:
    """The one line a look inside the model shows when the text it needs is not there."""
    return HTML(f'<p class="note">Skipped: {html.escape(str(err))}</p>')


TRACKS = 0.2
"""Below this |correlation| over the window, a unit is not said to track a feature."""


def tracking_units(H: np.ndarray, read: str) -> list[dict]:
    """For each of :data:`FEATURES` that varies over ``read``, the unit of H (T, m) whose activation
    correlates best with it: ``{"feature", "unit", "r"}``."""
    found = []
    for name, feature in FEATURES.items():
        f = feature(read).astype(float)
        if f.std() == 0:
            continue
        Hc, fc = H - H.mean(axis=0), f - f.mean()
        corr = (Hc * fc[:, None]).sum(axis=0) / np.maximum(
            np.sqrt((Hc**2).sum(axis=0) * (fc**2).sum()), 1e-12
        )
        unit = int(np.argmax(np.abs(corr)))
        found.append({"feature": name, "unit": unit, "r": float(corr[unit])})
    return found


def hidden_units(
    checkpoint: str, data_path: str = "", start: int = 0, length: int = 400, window: int = 20_000
) -> HTML:
    """A passage of the text coloured by the hidden units that best track each of :data:`FEATURES`.

    The units are chosen by the correlation of h_t with each feature over ``window`` characters from
    ``start`` (:func:`tracking_units`); for each unit with |correlation| >= :data:`TRACKS`, the first
    ``length`` characters are shown on a light red background where the unit is near +1, light blue
    near −1 (white at 0). A feature no unit tracks that well is named with its best unit, and no passage.
    """
    ck = ckpt.load(checkpoint)
    try:
        corpus, note = model_text(ck, data_path)
    except FileNotFoundError as err:
        return _gone(err)
    text = corpus.text
    start = max(0, min(int(start), len(text) - 2))
    stretch = text[start : start + window + 1]
    H = hidden_states(checkpoint, stretch)  # after each of stretch[:-1]
    read = stretch[:-1]
    blocks, coloured = (
        [
            f'<p class="note">On {html.escape(corpus.name)}, from character {start:,}'
            + (f"; {html.escape(note)}" if note else "")
            + ".</p>"
        ],
        False,
    )
    for u in tracking_units(H, read):
        found = f"(correlation {u['r']:+.2f} over {len(read):,} characters)"
        if abs(u["r"]) < TRACKS:
            blocks.append(
                f'<p style="margin: 0.6em 0 0.2em 0">No unit tracks <i>{html.escape(u["feature"])}</i> well: '
                f"the closest, unit {u['unit']}, has |correlation| below {TRACKS:g} {found}.</p>"
            )
            continue
        blocks.append(
            f'<p style="margin: 0.6em 0 0.2em 0"><b>unit {u["unit"]}</b> tracks '
            f"<i>{html.escape(u['feature'])}</i> {found}:</p>"
            + activation_passage(read[:length], H[:length, u["unit"]])
        )
        coloured = True
    return HTML("".join(blocks) + (ACTIVATION_LEGEND if coloured else ""))


def checkpoint_facts(checkpoint: str) -> HTML:
    """Where a model came from: its step and smooth loss, how the best one was chosen, and the run's
    last model (``last.npz`` beside it) for comparison."""
    ck = ckpt.load(checkpoint)
    meta = ck.meta
    rows = [[html.escape(str(resolve(checkpoint).name)), after(ck.step), f"{ck.smooth_loss:.4f}"]]
    last_path = resolve(checkpoint).with_name("last.npz")
    if last_path.is_file() and last_path != resolve(checkpoint):
        last = ckpt.load(last_path)
        rows.append([last_path.name, after(last.step), f"{last.smooth_loss:.4f}"])
    chosen = "validation loss" if meta.get("config", {}).get("val_fraction", 0) > 0 else "smooth loss"
    return HTML(
        table(
            ["checkpoint", "parameters", "smooth loss"],
            rows,
            f"Run {meta.get('run_id', '?')}, seed {meta.get('seed', '?')}; the best model is the one with "
            f"the lowest {chosen}.",
        )
    )


def slice_loss(checkpoint: str, data_path: str = "", n_chars: int = 10_000) -> HTML:
    """The model's loss per character on a slice of the text, beside its smooth loss per character.

    The slice is the run's held-out validation part when it had one, else the last ``n_chars``
    characters of the text, which training read too (the sentence says which).
    """
    ck = ckpt.load(checkpoint)
    cfg = ck.meta.get("config", {})
    try:
        corpus, note = model_text(ck, data_path)
    except FileNotFoundError as err:
        return _gone(err)
    data = encode(corpus.text, ck.chars)
    n_val = int(round(cfg.get("val_fraction", 0) * len(data)))
    held_out = n_val >= 2 and not data_path
    part = data[-n_val:] if held_out else data[-max(2, min(int(n_chars), len(data))) :]
    loss = evaluate.loss_per_char(cells.of(ck.params), ck.params, part)
    T = cfg.get("seq_length", 25)
    trained = "trained on too: this run held nothing out" if not data_path else f"from {corpus.name}"
    where = (
        f"the held-out last {len(part):,} characters (never trained on)"
        if held_out
        else f"the last {len(part):,} characters of the text ({trained})"
    )
    rows = [
        [html.escape(f"loss on {where}"), f"{loss:.3f}", f"{bits(loss):.3f}"],
        [
            f"smooth loss / seq_length = {ck.smooth_loss:.2f} / {T} (training chunks, a running average)",
            f"{ck.smooth_loss / T:.3f}",
            f"{bits(ck.smooth_loss / T):.3f}",
        ],
    ]
    return HTML(
        table(["per character", "nats", "bits"], rows, html.escape(note.capitalize()) if note else "")
    )
