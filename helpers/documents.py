"""Learning from a collection of short documents (tweets): the assignment's bonus exercise.

The same RNN, AdaGrad, clipping to [-5, 5] and smooth loss as the book run (:mod:`helpers.train`),
with three changes:

* **An end-of-text character** ``END_CHAR`` (U+0003, ASCII ETX) joins the vocabulary. A document
  d is trained as the sequence ``END d END``: the first END, read from a zero hidden state,
  means "a document starts"; the last one is the target that teaches the network to stop. A
  collection that already contains the character is refused.
* **Chunks never cross a document boundary.** A document is cut into chunks of ``seq_length``
  characters (its last chunk shorter); the hidden state is carried from chunk to chunk within
  the document and reset to zero where the next document starts. Why not run across the
  boundary through END with a reset? BPTT starts each chunk from one h_0, so a reset inside a
  chunk would need a second forward/backward path; without the reset one tweet's state would
  leak into the next, unrelated one. This way every document is learned exactly as it is
  generated (h_0 = 0, x_0 = END). The price: the last chunk of a document is shorter, so the
  smooth loss (a sum over the chunk, as in the book run) is not comparable with the book's.
* **Each epoch visits every document once**, in an order drawn with ``rng.permutation`` from
  the run's random generator (seeded, so a run is reproducible).

Synthesis starts like training (h_0 = 0, x_0 = END) and stops at END or after ``max_length``
characters (140 for tweets). The collection is read by :mod:`helpers.collection`.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from IPython.display import HTML

from . import checkpoint as ckpt
from . import synth
from .collection import STDLIB_SOURCE, load_collection
from .config import TrainConfig, coerce
from .data import build_vocab, encode
from .params import ParamSet
from .paths import resolve
from .report import text_block
from .train import Trainer, TrainState, new_run_id
from .workflow import log_csv

END_CHAR = "\x03"
"""The end-of-text character (ASCII ETX), stored in the vocabulary and in checkpoints' ``meta["end_char"]``."""


def check_end_char(documents: list[str], end_char: str = END_CHAR) -> None:
    """Raise ValueError naming the first document that contains ``end_char``."""
    for i, doc in enumerate(documents):
        if end_char in doc:
            raise ValueError(f"document {i + 1} of {len(documents)} contains the end-of-text character "
                             f"U+{ord(end_char):04X}, which marks the end of every document for the model: "
                             f"{doc[:50]!r}. Remove that character from the collection.")


def encode_documents(documents: list[str], chars: list[str], end_char: str = END_CHAR,
                     pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``END d_0 END d_1 ... END d_n-1 END`` (plus ``pad`` unused END characters).

    Returns
    -------
    data : int array
    starts : int array (n+1,)
        ``data[starts[i]]`` is the END before document i and ``data[starts[i+1]]`` the END after it.
    """
    text = end_char + end_char.join(documents) + end_char * (1 + pad)
    return encode(text, chars), np.cumsum([0] + [len(d) + 1 for d in documents])


@dataclass
class DocumentState(TrainState):
    """A TrainState that also knows the epoch's document order and the current document."""

    order: np.ndarray | None = None  # document indices in this epoch's (shuffled) order
    doc: int = 0  # index into ``order`` of the document being trained on


class DocumentTrainer(Trainer):
    """The book's Trainer on documents: chunks stay inside one document, h resets at each start.

    Parameters
    ----------
    cfg : TrainConfig
        ``sample_length`` is the longest synthesized document.
    documents : list of str
    chars : list of str
        The vocabulary, ``end_char`` included.
    state : DocumentState
    end_char : str
    n_samples : int
        Documents synthesized at each sampling step.
    """

    def __init__(self, cfg: TrainConfig, documents: list[str], chars: list[str], state: DocumentState,
                 end_char: str = END_CHAR, n_samples: int = 5):
        if not documents:
            raise ValueError("the collection holds no documents; pass at least one non-empty document.")
        unsupported = {k: v for k, v in (("cell", cfg.cell), ("batch_size", cfg.batch_size),
                                         ("val_fraction", cfg.val_fraction)) if v != TrainConfig().as_dict()[k]}
        if unsupported:
            raise ValueError(f"training on documents supports the vanilla RNN, one stream and no validation split "
                             f"so far; drop {', '.join(f'{k}={v!r}' for k, v in unsupported.items())}.")
        check_end_char(documents, end_char)
        # the padding keeps Trainer.update's look-ahead data[position] in range after a last chunk
        data, self.starts = encode_documents(documents, chars, end_char, pad=cfg.seq_length)
        self.end, self.n_samples = chars.index(end_char), n_samples
        super().__init__(cfg, data, chars, state)
        if state.order is None:
            state.order, state.doc = state.rng.permutation(len(documents)), 0
            self._start_document()

    def _start_document(self) -> None:
        s = self.state
        s.position = int(self.starts[s.order[s.doc]])
        s.hprev = np.zeros_like(s.hprev)

    def next_chunk(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the next update, never past the current document's closing END."""
        s = self.state
        if s.position >= self.starts[s.order[s.doc] + 1]:  # the document is done
            s.doc += 1
            if s.doc == len(s.order):  # every document seen: a new epoch in a new order
                s.order, s.doc, s.epoch = s.rng.permutation(len(s.order)), 0, s.epoch + 1
                s.epoch_starts.append(s.step)
            self._start_document()
        stop = min(s.position + self.cfg.seq_length, int(self.starts[s.order[s.doc] + 1]))
        return self.data[s.position:stop], self.data[s.position + 1:stop + 1]

    def record_sample(self, x0=None) -> None:
        """Synthesize ``n_samples`` documents from h_0 = 0, x_0 = END (``x0`` is ignored)."""
        s = self.state
        docs, ended = sample_documents(s.params, self.chars, self.end, self.n_samples, self.cfg.sample_length, s.rng)
        s.samples.append({"step": s.step, "smooth_loss": s.smooth_loss, "documents": docs, "ended": ended})

    def checkpoint(self, which: str, meta: dict) -> ckpt.Checkpoint:
        """The Trainer's checkpoint, with the end character and the position in the epoch's order."""
        extra = {"end_char": self.chars[self.end], "n_documents": len(self.state.order)}
        if which == "last":
            extra["document"] = self.state.doc
        return super().checkpoint(which, {**meta, **extra})


def sample_document(params: ParamSet, end: int, max_length: int, rng: np.random.Generator,
                    temperature: float = 1.0, top_p: float = 1.0, chunk: int = 32) -> tuple[np.ndarray, bool]:
    """Indices of one document, from h_0 = 0 and x_0 = ``end``, and whether it reached ``end``.

    Draws like :func:`helpers.synth.sample_indices` with ``n = max_length``, ``chunk`` characters
    at a time, and cuts at the first ``end`` (which is not returned).
    """
    h, x, parts, n = np.zeros(params.m, params.flat.dtype), int(end), [], 0
    while n < max_length:
        idx, h = synth.sample_indices(params, h, x, min(chunk, max_length - n), rng, temperature, top_p)
        hits = np.flatnonzero(idx == end)
        parts.append(idx[:hits[0]] if hits.size else idx)
        if hits.size:
            return np.concatenate(parts), True
        n, x = n + len(idx), int(idx[-1])
    return np.concatenate(parts) if parts else np.empty(0, np.int64), False


def sample_documents(params: ParamSet, chars: list[str], end: int, n: int, max_length: int,
                     rng: np.random.Generator, temperature: float = 1.0,
                     top_p: float = 1.0) -> tuple[list[str], list[bool]]:
    """``n`` documents (texts) and, for each, whether it ended with the end character."""
    docs = [sample_document(params, end, max_length, rng, temperature, top_p) for _ in range(n)]
    return ["".join(chars[i] for i in idx) for idx, _ in docs], [ended for _, ended in docs]


def train(data_path: str = "", out_dir: str = "output/documents", text_field: str = "text", seed: int = 0,
          n_samples: int = 5, max_length: int = 140, **params) -> dict:
    """Train on a collection of documents and write the results into ``out_dir``.

    Files: ``documents_run.json`` (configuration, collection, timing, smooth losses),
    ``documents_samples.json`` (``{"step", "smooth_loss", "documents", "ended"}`` every
    ``sample_every`` updates), ``train_log.csv``, ``last.npz`` and ``best.npz``. ``params`` are
    :class:`~helpers.config.TrainConfig` fields; samples are drawn up to the last update unless
    ``sample_until`` says otherwise. Returns the contents of ``documents_run.json``.
    """
    seed, n_samples, max_length = (coerce(k, v, "int") for k, v in
                                   (("seed", seed), ("n_samples", n_samples), ("max_length", max_length)))
    if n_samples < 1 or max_length < 1:
        raise ValueError(f"n_samples and max_length must be >= 1, got {n_samples!r} and {max_length!r}")
    cfg = TrainConfig.from_kwargs(**{"sample_until": params.get("n_updates", TrainConfig.n_updates), **params,
                                     "sample_length": max_length})
    collection = load_collection(data_path, text_field)
    chars = build_vocab("".join(collection.documents) + END_CHAR)
    state = DocumentState.fresh(cfg, len(chars), np.random.default_rng(seed))
    trainer = DocumentTrainer(cfg, collection.documents, chars, state, END_CHAR, n_samples)
    out = resolve(out_dir)
    meta = {"run_id": new_run_id(), "seed": seed, "end_char": END_CHAR, "corpus": {**collection.info(), "K": len(chars)},
            "config": {**cfg.as_dict(), "text_field": text_field, "n_samples": n_samples, "max_length": max_length}}
    if collection.source == STDLIB_SOURCE:
        print("data_path is empty, so the documents are sentences of the documentation that ships with Python; "
              "pass data_path to train on your own collection.")
    info = meta["corpus"]
    print(f"training on {info['name']}: {info['n_documents']:,} documents, {info['n_chars']:,} characters, "
          f"K = {len(chars)} with the end character; writing to {out}")
    seconds = trainer.run_saving(cfg.n_updates, lambda: write_results(trainer, out, meta))
    return write_results(trainer, out, meta, seconds)


def write_results(trainer: DocumentTrainer, out, meta: dict, seconds: float | None = None) -> dict:
    """Write the checkpoints, train_log.csv, documents_samples.json and documents_run.json; return the last."""
    s = trainer.state
    ckpt.save(out / "last.npz", trainer.checkpoint("last", meta))
    ckpt.save(out / "best.npz", trainer.checkpoint("best", meta))
    ckpt.write_text(out / "train_log.csv", log_csv(s.log))
    ckpt.write_json(out / "documents_samples.json", s.samples)
    summary = {**meta, "steps_done": s.step, "epochs": s.epoch, "epoch_starts": s.epoch_starts,
               "final_smooth_loss": s.smooth_loss, "best_smooth_loss": s.best_smooth_loss, "best_step": s.best_step,
               "seconds": seconds, "updates_per_second": s.step / seconds if seconds else None}
    ckpt.write_json(out / "documents_run.json", summary)
    return summary


@dataclass
class Synthesized:
    """Documents synthesized from a checkpoint; displays itself in a notebook."""

    documents: list
    ended: list
    checkpoint: str
    step: int
    smooth_loss: float
    max_length: int

    def _repr_html_(self) -> str:
        head = (f"<p>{len(self.documents)} documents from <code>{html.escape(self.checkpoint)}</code> (update "
                f"{self.step:,}, smooth loss {self.smooth_loss:.2f}); {sum(self.ended)} ended with the end "
                f"character, the others were cut at {self.max_length} characters.</p>")
        return head + _document_blocks(self.documents)


def generate(checkpoint: str, n: int = 5, max_length: int = 140, seed: int = 0, temperature: float = 1.0,
             top_p: float = 1.0) -> Synthesized:
    """``n`` documents from a checkpoint written by :func:`train` (it names its end character)."""
    n, max_length, seed = coerce("n", n, "int"), coerce("max_length", max_length, "int"), coerce("seed", seed, "int")
    ck = ckpt.load(checkpoint)
    end_char = ck.meta.get("end_char")
    if end_char not in ck.chars:
        raise ValueError(f"checkpoint {str(resolve(checkpoint))!r} was not trained on documents (its meta names no "
                         "end character); use a checkpoint of notebooks/07_documents.ipynb, or "
                         "notebooks/03_synthesis.ipynb for a book checkpoint.")
    docs, ended = sample_documents(ck.params, ck.chars, ck.chars.index(end_char), n, max_length,
                                   np.random.default_rng(seed), coerce("temperature", temperature, "float"),
                                   coerce("top_p", top_p, "float"))
    return Synthesized(docs, ended, str(resolve(checkpoint)), ck.step, ck.smooth_loss, max_length)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _document_blocks(documents: list[str]) -> str:
    return "".join(text_block(d) for d in documents)


def _stages(samples: list, k: int) -> list:
    """At most ``k`` samples, evenly spread from the first to the last."""
    picks = sorted({round(i) for i in np.linspace(0, len(samples) - 1, min(k, len(samples)))})
    return [samples[i] for i in picks]


def _intro(run: dict) -> str:
    """What was trained on, how, and how synthesis stops."""
    c, cfg = run["corpus"], run["config"]
    note = (" No collection was given, so these are the sentences of at most 140 characters in the documentation "
            "that ships with Python." if c["source"] == STDLIB_SOURCE else "")
    seconds = f" in {run['seconds']:,.0f} s" if run.get("seconds") else ""
    return (f"<p>The same network was trained on short documents: <b>{html.escape(c['name'])}</b>, "
            f"{c['n_documents']:,} documents with {c['n_chars']:,} characters (mean length {c['mean_length']:.0f}, "
            f"longest {c['max_length']:,}), K = {c['K']} with the end-of-text character "
            f"U+{ord(run['end_char']):04X}.{note} Each document is read as END document END in chunks of at most "
            f"{cfg['seq_length']} characters that never cross into another document; the hidden state starts at "
            f"zero at each document's start, and the documents are shuffled every epoch. With m = {cfg['m']}, "
            f"eta = {cfg['eta']:g} and sig = {cfg['sig']:g}, {run['steps_done']:,} updates took "
            f"{_plural(len(run['epoch_starts']), 'epoch')}{seconds}; the smooth loss fell to "
            f"{run['final_smooth_loss']:.2f} (lowest {run['best_smooth_loss']:.2f} after {run['best_step']:,} "
            "updates). It sums over chunks that are shorter at each document's end, so it is not comparable with "
            "the book's.</p><p>Synthesis starts from a zero hidden state with the end character as x<sub>0</sub> "
            f"and stops when the network writes the end character or after {cfg['max_length']} characters.</p>")


def _stage_table(samples: list, mean_length: float) -> str:
    """Every sampling step: smooth loss, documents that ended, their mean length."""
    rows = "".join(f"<tr><td>{s['step']:,}</td><td>{s['smooth_loss']:.2f}</td><td>{sum(s['ended'])} of "
                   f"{len(s['documents'])}</td><td>{np.mean([len(d) for d in s['documents']]):.0f}</td></tr>"
                   for s in samples)
    return ('<table class="results"><thead><tr><th>update</th><th>smooth loss</th><th>ended</th>'
            f'<th>mean length</th></tr></thead><tbody>{rows}</tbody></table><p class="caption">Table D. Documents '
            "synthesized during training: how many ended with the end character, and their mean length (the "
            f"collection's is {mean_length:.0f}).</p>")


def section(folder, stages: int = 4) -> HTML:
    """The report section: the collection, the training and documents from ``stages`` points of it.

    Reads ``documents_run.json`` and ``documents_samples.json`` in ``folder`` only.
    """
    folder = resolve(folder)
    run, samples = (ckpt.read_json(folder / f"documents_{n}.json") for n in ("run", "samples"))
    blocks = "".join(f'<div class="sample"><p class="sample-head">Update {s["step"]:,}, smooth loss '
                     f'{s["smooth_loss"]:.2f}</p>{_document_blocks(s["documents"])}</div>'
                     for s in _stages(samples, stages))
    return HTML(_intro(run) + _stage_table(samples, run["corpus"]["mean_length"]) + blocks)


__all__ = ["END_CHAR", "DocumentState", "DocumentTrainer", "Synthesized", "check_end_char", "encode_documents",
           "generate", "load_collection", "sample_document", "sample_documents", "section", "train"]
