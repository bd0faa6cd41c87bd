"""One function per notebook step: each reads its inputs from paths and writes its result files.

Notebooks call these with their papermill parameters; they pass paths (checkpoints, result
files) to one another, never in-memory state.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..common import files, lock
from ..common.paths import resolve
from ..common.progress import Progress
from ..common.units import per_char
from ..data.text import (
    build_vocab,
    default_prime,
    encode,
    known_part,
    load_corpus,
    ngram_entropy,
    unknown_note,
)
from ..model import cells, gradcheck, sample
from ..train import checkpoint as ckpt
from ..train import evaluate, optim
from ..train.config import TrainConfig, coerce
from ..train.trainer import SMOOTHING, Trainer, TrainState, new_run_id


def corpus_info(corpus, chars) -> dict:
    """What result files record about the text they came from."""
    return {"name": corpus.name, "source": corpus.source, "n_chars": len(corpus.text), "K": len(chars)}


def gradient_test(
    data_path: str,
    out_dir: str,
    seq_lengths=(10, 25, 40),
    h: float = 1e-4,
    m: int = 100,
    sig: float = 0.01,
    seed: int = 0,
    cell: str = "rnn",
    n_layers: int = 1,
) -> dict:
    """Check analytic against numerical gradients for each sequence length; write ``gradcheck.json``.

    Each check runs on the first ``seq_length`` characters of the text (targets shifted by one),
    with a zero state, float64, no clipping, and one initialisation drawn from ``seed``. ``cell``
    is "rnn" (the assignment's), "lstm" or "gru"; ``n_layers`` stacks that many layers.
    """
    cells.get(cell)  # an unknown cell is refused before any work
    if isinstance(seq_lengths, str):  # papermill -p passes text: '[10, 25, 40]'
        try:
            seq_lengths = json.loads(seq_lengths)
        except json.JSONDecodeError:
            raise ValueError(
                f"seq_lengths must be a list of whole numbers such as [10, 25, 40]; got {seq_lengths!r}"
            ) from None
    if isinstance(seq_lengths, (str, int)) or not len(seq_lengths):
        raise ValueError(
            f"seq_lengths must be a non-empty list of whole numbers, e.g. [10, 25, 40]; got {seq_lengths!r}"
        )
    seq_lengths = [coerce("seq_lengths", T, "int") for T in seq_lengths]
    h, m, sig = coerce("h", h, "float"), coerce("m", m, "int"), coerce("sig", sig, "float")
    n_layers = coerce("n_layers", n_layers, "int")
    for name, value in (
        ("seq_lengths", min(seq_lengths)),
        ("h", h),
        ("m", m),
        ("sig", sig),
        ("n_layers", n_layers),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    corpus = load_corpus(data_path)
    if len(corpus.text) < max(seq_lengths) + 1:
        raise ValueError(
            f"the text has {len(corpus.text)} characters, fewer than the longest seq_length + 1 = "
            f"{max(seq_lengths) + 1}; use a longer text or shorter seq_lengths."
        )
    chars = build_vocab(corpus.text)
    data = encode(corpus.text[: max(seq_lengths) + 1], chars)
    params = cells.init_params(cell, m, len(chars), sig, np.random.default_rng(seed), layers=n_layers)
    errors, max_errors = {}, {}
    bar = Progress(params.flat.size * len(seq_lengths), "gradient entries")
    for i, T in enumerate(seq_lengths):
        base = i * params.flat.size
        result = gradcheck.check(
            params,
            data[:T],
            data[1 : T + 1],
            h=h,
            cell=cell,
            progress=lambda done, base=base, T=T: bar.update(base + done, f"seq_length {T}"),
        )
        errors[str(T)] = {name: r["norm"] for name, r in result.items()}
        max_errors[str(T)] = {name: r["max"] for name, r in result.items()}
        bar.write(f"seq_length {T}: " + "  ".join(f"{n} {e:.2e}" for n, e in errors[str(T)].items()))
    bar.update(bar.total, "done")
    bar.close()
    result = {
        "h": h,
        "m": m,
        "sig": sig,
        "seed": seed,
        "cell": cell,
        "n_layers": n_layers,
        "dtype": "float64",
        "norm": "L2 (Frobenius)",
        "errors": errors,
        "max_errors": max_errors,
        "corpus": corpus_info(corpus, chars),
    }
    files.write_json(resolve(out_dir) / "gradcheck.json", result)
    return result


def train_config(namespace: dict) -> dict:
    """The training settings among ``namespace``'s names: ``{name: value}`` for each field of
    :class:`~helpers.train.config.TrainConfig` it holds.

    02_train passes its parameters on with ``steps.train(..., **steps.train_config(globals()))``, so a
    setting added to TrainConfig and to the parameters cell reaches the trainer without more code.
    """
    return {name: namespace[name] for name in TrainConfig.__dataclass_fields__ if name in namespace}


def train(data_path: str, out_dir: str, seed: int = 0, init_from: str = "", **params) -> dict:
    """Train (from scratch, or on from the checkpoint ``init_from``) and write the results into ``out_dir``.

    Files: ``train_log.csv`` (step, loss, smooth_loss), ``samples.json``, ``best.npz``,
    ``last.npz`` (rewritten every ``checkpoint_every`` updates) and ``run.json`` (configuration,
    corpus, timing, epoch starts). ``params`` are :class:`~helpers.train.config.TrainConfig` fields;
    ``n_updates`` counts all updates, those before ``init_from`` included. A resumed run goes on
    exactly as the uninterrupted run would have (same parameters, samples and losses).
    Returns the contents of ``run.json``.
    """
    cfg = TrainConfig.from_kwargs(**params)
    seed = coerce("seed", seed, "int")
    corpus = load_corpus(data_path)
    with lock.hold(out_dir):  # one training per folder; refused here when another one runs
        trainer, meta = start(cfg, corpus, seed, init_from)
        if note := replacing(resolve(out_dir), meta["run_id"]):
            print(note)
        return run_to_end(trainer, resolve(out_dir), meta)


def replacing(out, run_id: str) -> str:
    """The line that says which run a training into ``out`` replaces ("" for a new folder or the same run)."""
    try:
        run = files.read_json(out / "run.json")
    except (OSError, ValueError):
        return ""
    if run.get("run_id") == run_id:
        return ""
    report = " and the report made from it (report.html)" if (out / "report.html").is_file() else ""
    return (
        f"note: {out} holds run {run.get('run_id')} ({run.get('steps_done', 0):,} updates on "
        f"{run.get('corpus', {}).get('name', '?')}){report}; this training replaces its checkpoints and results. "
        "To keep them, train into another out_dir (e.g. output/lab)."
    )


def start(cfg: TrainConfig, corpus, seed: int, init_from: str = "") -> tuple[Trainer, dict]:
    """The trainer of a new run, or of the run ``init_from`` (a last.npz) resumes, and its files' meta."""
    chars = build_vocab(corpus.text)
    if init_from:
        last = ckpt.load(init_from)
        state = TrainState.resume(last, cfg, chars)
        was = last.meta.get("corpus", {})
        if was.get("n_chars", len(corpus.text)) != len(corpus.text):
            raise ValueError(
                f"the checkpoint was trained on {was.get('name')!r} ({was['n_chars']:,} characters) but "
                f"data_path gives {corpus.name!r} ({len(corpus.text):,}); resume on the same text."
            )
        run_id = last.meta.get("run_id") or new_run_id()
        seed = last.meta.get("seed", seed)  # the run's own seed (its random state comes from the checkpoint)
        print(f"resuming from {resolve(init_from)} at update {state.step:,}")
    else:
        state, run_id = TrainState.fresh(cfg, len(chars), np.random.default_rng(seed)), new_run_id()
    trainer = Trainer(cfg, encode(corpus.text, chars), chars, state)
    return trainer, {
        "run_id": run_id,
        "seed": seed,
        "config": cfg.as_dict(),
        "corpus": corpus_info(corpus, chars),
    }


def run_to_end(trainer: Trainer, out, meta: dict) -> dict:
    """Train to ``n_updates``, writing the results into ``out`` at every checkpoint and at the end.

    A full disk or a read-only folder stops training with an OSError that names the file, the
    update reached and the update that ``last.npz`` (left as it was) holds.
    """
    state, cfg, first_step = trainer.state, trainer.cfg, trainer.state.step
    corpus, per_epoch = meta["corpus"], (trainer.L - 1) // cfg.seq_length
    print(
        f"training on {corpus['name']}: {corpus['n_chars']:,} characters, K = {corpus['K']}; one epoch is "
        f"{per_epoch:,} updates, so {cfg.n_updates:,} updates are {cfg.n_updates / per_epoch:.1f} epochs"
        + (f" (or fewer: it stops after time_budget = {cfg.time_budget:g} s)" if cfg.time_budget else "")
        + f"; writing to {out}"
    )
    try:
        seconds = trainer.run_saving(cfg.n_updates, lambda: write_run_files(trainer, out, meta))
        if trainer.out_of_time():
            print(f"the time budget of {cfg.time_budget:g} s is spent after {state.step:,} updates")
            if len(trainer.val_data) and (not state.val_log or state.val_log[-1][0] != state.step):
                trainer.validate()  # a budgeted run's last model counts: its rate came down to 0 for it
        final_val = None
        if len(trainer.val_data) and (not state.val_log or state.val_log[-1][0] != state.step):
            # the final model's figure, off the eval_every grid: reported, but kept out of val_log and the
            # best-model choice, so that a run stopped here and resumed equals an uninterrupted one
            final_val = evaluate.loss_per_char(cfg.cell, state.params, trainer.val_data)
        run = write_run_files(
            trainer,
            out,
            meta,
            seconds,
            state.step - first_step,
            final_val,
            final_sample(trainer, meta["seed"]),
        )
    except OSError as err:
        if err.errno not in files.WRITE_ERRNOS:
            raise
        raise type(err)(
            err.errno,
            f"{err.strerror or err}\ntraining stopped at update {state.step:,}; "
            f"{_kept(out / 'last.npz', meta['run_id'])}.",
        ) from err
    for what in ("best_val", "test"):
        if run[f"{what}_loss_per_char"] is not None:
            print(
                f"{what.replace('_', ' ')}: {run[f'{what}_loss_per_char']:.4f} nats/char, "
                f"{run[f'{what}_bits_per_char']:.4f} bits/char, perplexity {run[f'{what}_perplexity']:.3f}"
            )
    return run


def _kept(path, run_id: str) -> str:
    """What the checkpoint at ``path`` holds, for the message of a run that could not write."""
    try:
        there = ckpt.load(path)
    except (FileNotFoundError, ValueError):
        return "no checkpoint of this run was written"
    if there.meta.get("run_id") != run_id:
        return f"{path} is an earlier run's"
    return f"{path} holds update {there.step:,}: resume from it (init_from) once the files can be written"


def final_sample(trainer: Trainer, seed: int) -> dict | None:
    """A sample of the final model when the run ended between two scheduled samples, else None.

    A run shorter than ``sample_every`` would otherwise show only the untrained model's text. The
    sample is drawn like the scheduled ones (``sample_length`` characters from stream 0's state and
    the next input character), but from its own generator seeded by (seed, step), and it is kept out
    of the training state: a run stopped here and resumed goes on exactly as an uninterrupted one.
    """
    s, cfg = trainer.state, trainer.cfg
    upcoming = (s.step // cfg.sample_every + 1) * cfg.sample_every
    if s.step == 0 or s.step % cfg.sample_every == 0 or upcoming > cfg.sample_until:
        return None
    x0 = int(trainer.train_data[min(s.position, len(trainer.train_data) - 1)])
    idx, _ = trainer.engine.sampler(
        s.params, s.hprev[0], x0, cfg.sample_length, np.random.default_rng([seed, s.step]), cell=cfg.cell
    )
    return {
        "step": s.step,
        "smooth_loss": s.smooth_loss,
        "text": "".join(trainer.chars[i] for i in idx),
        "final": True,
    }


def write_run_files(
    trainer: Trainer,
    out,
    meta: dict,
    seconds: float | None = None,
    updates: int = 0,
    final_val: float | None = None,
    final: dict | None = None,
) -> dict:
    """Write checkpoints, logs, samples, ``run.json`` and ``metrics.json``; returns run.json's contents.

    The files are written as one group (:func:`helpers.common.files.atomic_group`): a full disk
    or a read-only folder leaves all of them as they were. ``last.npz`` is renamed into place
    first: it holds the best model too, so it alone resumes the run whatever happens before
    ``best.npz`` is. ``final_val`` is the final model's validation loss when it was not evaluated
    on the grid; ``final`` a sample of the final model that samples.json lists after the scheduled
    ones (see :func:`final_sample`). ``seconds`` is this session's training time (``updates``
    updates); run.json's and metrics.json's ``seconds`` count every session of the run. At the end
    of a session (``seconds`` given) the best model is evaluated once on the test part, if any.
    """
    s, cfg = trainer.state, trainer.cfg
    best, best_val = trainer.checkpoint("best", meta), (s.best_val_loss if s.val_log else None)
    if final_val is not None and not s.val_log:
        # no evaluation on the eval_every grid yet: the final model is the best one. Only best.npz and
        # the summaries say so; the state in last.npz stays as an uninterrupted run would have it
        best = ckpt.Checkpoint(
            params=s.params,
            chars=trainer.chars,
            step=s.step,
            smooth_loss=s.smooth_loss,
            meta={**meta, "kind": "best"},
        )
        best_val = final_val
    test = trainer.test(best.params) if seconds is not None else None  # once, never used for choosing
    best.meta.update(per_char(best_val, "best_val"), **(per_char(test, "test") if test is not None else {}))
    last_val = final_val if final_val is not None else (s.val_log[-1][3] if s.val_log else None)
    total_seconds = trainer.seconds
    losses = {**per_char(last_val, "val"), **per_char(best_val, "best_val"), **per_char(test, "test")}
    metrics = {
        **losses,
        "reference": reference_points(trainer),
        "train_smooth_loss_per_char": s.smooth_loss / cfg.seq_length,
        "chars_seen": trainer.chars_seen,
        "seconds": total_seconds,
        "val_chars": len(trainer.val_data),
        "test_chars": len(trainer.test_data),
        "history": [
            {"step": st, "chars_seen": ch, "seconds": sec, "val_loss_per_char": v}
            for st, ch, sec, v in s.val_log
        ],
    }
    constants = {
        "clip": cfg.clip,
        "clip_norm": cfg.clip_norm,
        "weight_decay": cfg.weight_decay,
        "smoothing": SMOOTHING,
        "optimizer": cfg.optimizer,
        "optimizer_settings": optim.SETTINGS[cfg.optimizer],
    }
    summary = {
        **meta,
        "steps_done": s.step,
        "epochs": s.epoch,
        "epoch_starts": s.epoch_starts,
        "final_smooth_loss": s.smooth_loss,
        "best_smooth_loss": best.smooth_loss,
        "best_step": best.step,
        **losses,
        "best_chosen_by": "validation loss" if best_val is not None else "smooth loss",
        "chars_seen": trainer.chars_seen,
        "seconds": total_seconds,
        "session_seconds": seconds,
        "session_updates": updates,
        "updates_per_second": updates / seconds if seconds else None,
        "engine": trainer.engine.name,
        "constants": constants,
    }
    with files.atomic_group() as group:  # all written, then renamed in this order: last.npz first
        ckpt.save(out / "last.npz", trainer.checkpoint("last", meta), group)
        ckpt.save(out / "best.npz", best, group)
        group.write_text(out / "train_log.csv", files.log_csv(s.log))
        group.write_json(out / "samples.json", s.samples + ([final] if final else []))
        group.write_json(out / "metrics.json", {**metrics, "run_id": meta["run_id"]})
        group.write_json(out / "run.json", summary)
    return summary


def reference_points(trainer: Trainer) -> dict:
    """Losses per character (nats) to place a model on: a uniform guess, ln K, and the unigram and
    bigram entropy of the training part of the text (:func:`helpers.data.text.ngram_entropy`)."""
    K, data = len(trainer.chars), trainer.train_data
    return {
        "uniform": math.log(K),
        "unigram": ngram_entropy(data, K, 1),
        "bigram": ngram_entropy(data, K, 2),
        "train_chars": len(data),
    }


def result_path(checkpoint: str, out_dir: str, name: str) -> str:
    """Where 03 and 04 write result ``name``: into ``out_dir``, or beside the checkpoint when it is empty."""
    return str((resolve(out_dir) if out_dir else resolve(checkpoint).parent) / name)


def usable_prime(prime: str, chars: list[str], what: str = "prime") -> tuple[str, str]:
    """The priming text as the model can read it, and a note on what was changed ("" when nothing).

    Empty means the default (:func:`~helpers.data.text.default_prime`: a line break when the text had
    one); characters outside the vocabulary are left out, and a prime with none left is the default.
    """
    if not isinstance(prime, str):
        raise ValueError(f"{what} must be a text, got {type(prime).__name__}: {prime!r}")
    kept, missing = known_part(prime, chars)
    note = unknown_note(missing, chars, what)
    if not kept:
        kept = default_prime(chars)
        note += f"; {kept!r} instead" if note else ""
    return kept, note


def synthesize(
    checkpoint: str,
    length: int = 1000,
    seed: int = 0,
    prime: str = "",
    temperature: float = 1.0,
    top_p: float = 1.0,
    out_path: str | None = None,
    engine: str = "numpy",
    beam_width: int = 0,
) -> dict:
    """Synthesize ``length`` characters from a checkpoint, with the vocabulary it carries.

    The hidden state starts at zero and is run over ``prime`` but its last character, which is
    x_0 (empty: :func:`usable_prime`'s default; characters the model does not know are left out, and
    ``note`` says which). ``beam_width`` 0 or 1 samples (``engine="numba"`` draws with the compiled
    sampler, the same draws; numpy when numba is missing); 2 or more runs beam search for the most
    probable continuation instead (seed, temperature and top_p then play no part). Writes the result
    as JSON to ``out_path`` when given. Returns ``{"checkpoint", "step", "smooth_loss", "seed", "prime",
    "temperature", "top_p", "beam_width", "text", "log_prob", "run_id", "note"}``, ``log_prob`` being
    the text's log-probability under the model (nats).
    """
    length, seed = coerce("length", length, "int"), coerce("seed", seed, "int")
    temperature, top_p = coerce("temperature", temperature, "float"), coerce("top_p", top_p, "float")
    beam_width = coerce("beam_width", beam_width, "int")
    if beam_width < 0:
        raise ValueError(
            f"beam_width must be >= 0 (0 or 1: sample; 2 or more: beam search), got {beam_width}"
        )
    ck = ckpt.load(checkpoint)
    prime, note = usable_prime(prime, ck.chars)
    x = encode(prime, ck.chars)
    cell = cells.of(ck.params)
    h0 = sample.warm_up(ck.params, cells.initial_state(cell, ck.params)[0], x[:-1], cell)
    sampler = sample.sample_indices
    if engine == "numba":
        from ..model import fast  # numba: imported only when asked for

        sampler = fast.sample_indices if fast.AVAILABLE else sampler
    elif engine != "numpy":
        raise ValueError(f"engine must be numpy or numba, got {engine!r}")
    if beam_width >= 2:
        idx, log_prob = sample.beam_search(ck.params, h0, int(x[-1]), length, beam_width, cell)
    else:
        idx, _ = sampler(
            ck.params,
            h0,
            int(x[-1]),
            length,
            np.random.default_rng(seed),
            temperature=temperature,
            top_p=top_p,
            cell=cell,
        )
        log_prob = sample.log_prob(ck.params, h0, int(x[-1]), idx, cell)
    result = {
        "checkpoint": str(resolve(checkpoint)),
        "step": ck.step,
        "smooth_loss": ck.smooth_loss,
        "seed": seed,
        "prime": prime,
        "temperature": temperature,
        "top_p": top_p,
        "beam_width": beam_width,
        "text": "".join(ck.chars[i] for i in idx),
        "log_prob": log_prob,
        "run_id": ck.meta.get("run_id"),
        "note": note,
    }
    if out_path:
        files.write_json(resolve(out_path), result)
    return result
