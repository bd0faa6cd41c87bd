"""The run step of notebooks/07_documents.ipynb: train on a collection of short documents and
write the results; synthesize documents from its checkpoints.

The training itself is :class:`helpers.train.document_trainer.DocumentTrainer` (its docstring explains
the end character, the chunks and the shuffling); the report section is
:mod:`helpers.report.documents_section`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from ..common import files, lock
from ..common.paths import resolve
from ..data.collection import END_CHAR, STDLIB_SOURCE, load_collection
from ..data.text import build_vocab
from ..model import sample
from ..report.documents_section import section  # noqa: F401  (the notebook's section call)
from ..report.html import text_block
from ..train import checkpoint as ckpt
from ..train.config import TrainConfig, coerce
from ..train.document_trainer import DocumentState, DocumentTrainer
from ..train.trainer import new_run_id


def train(
    data_path: str = "",
    out_dir: str = "output/documents",
    text_field: str = "text",
    seed: int = 0,
    n_samples: int = 5,
    max_length: int = 140,
    **params,
) -> dict:
    """Train on a collection of documents and write the results into ``out_dir``.

    Files: ``documents_run.json`` (configuration, collection, timing, smooth losses),
    ``documents_samples.json`` (``{"step", "smooth_loss", "documents", "ended"}`` every
    ``sample_every`` updates), ``train_log.csv``, ``last.npz`` and ``best.npz``. ``params`` are
    :class:`~helpers.train.config.TrainConfig` fields; samples are drawn up to the last update unless
    ``sample_until`` says otherwise. Returns the contents of ``documents_run.json``.
    """
    seed, n_samples, max_length = (
        coerce(k, v, "int") for k, v in (("seed", seed), ("n_samples", n_samples), ("max_length", max_length))
    )
    if n_samples < 1 or max_length < 1:
        raise ValueError(f"n_samples and max_length must be >= 1, got {n_samples!r} and {max_length!r}")
    cfg = TrainConfig.from_kwargs(
        **{
            "sample_until": params.get("n_updates", TrainConfig.n_updates),
            **params,
            "sample_length": max_length,
        }
    )
    collection = load_collection(data_path, text_field)
    chars = build_vocab("".join(collection.documents) + END_CHAR)
    state = DocumentState.fresh(cfg, len(chars), np.random.default_rng(seed))
    trainer = DocumentTrainer(cfg, collection.documents, chars, state, END_CHAR, n_samples)
    out = resolve(out_dir)
    meta = {
        "run_id": new_run_id(),
        "seed": seed,
        "end_char": END_CHAR,
        "corpus": {**collection.info(), "K": len(chars)},
        "config": {
            **cfg.as_dict(),
            "text_field": text_field,
            "n_samples": n_samples,
            "max_length": max_length,
        },
    }
    if collection.source == STDLIB_SOURCE:
        print(
            "data_path is empty, so the documents are sentences of the documentation that ships with Python; "
            "pass data_path to train on your own collection."
        )
    info = meta["corpus"]
    print(
        f"training on {info['name']}: {info['n_documents']:,} documents, {info['n_chars']:,} characters, "
        f"K = {len(chars)} with the end character; writing to {out}"
    )
    with lock.hold(out):  # one training per folder; refused here when another one runs
        seconds = trainer.run_saving(cfg.n_updates, lambda: write_results(trainer, out, meta))
        return write_results(trainer, out, meta, seconds)


def write_results(trainer: DocumentTrainer, out, meta: dict, seconds: float | None = None) -> dict:
    """Write the checkpoints, train_log.csv, documents_samples.json and documents_run.json; return the last."""
    s = trainer.state
    summary = {
        **meta,
        "steps_done": s.step,
        "epochs": s.epoch,
        "epoch_starts": s.epoch_starts,
        "final_smooth_loss": s.smooth_loss,
        "best_smooth_loss": s.best_smooth_loss,
        "best_step": s.best_step,
        "seconds": seconds,
        "updates_per_second": s.step / seconds if seconds else None,
    }
    with files.atomic_group() as group:  # all written, then renamed in this order (a full disk changes none)
        ckpt.save(out / "last.npz", trainer.checkpoint("last", meta), group)
        ckpt.save(out / "best.npz", trainer.checkpoint("best", meta), group)
        group.write_text(out / "train_log.csv", files.log_csv(s.log))
        group.write_json(out / "documents_samples.json", s.samples)
        group.write_json(out / "documents_run.json", summary)
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
        head = (
            f"<p>{len(self.documents)} documents from <code>{html.escape(self.checkpoint)}</code> (update "
            f"{self.step:,}, smooth loss {self.smooth_loss:.2f}); {sum(self.ended)} ended with the end "
            f"character, the others were cut at {self.max_length} characters.</p>"
        )
        return head + "".join(text_block(d) for d in self.documents)


def generate(
    checkpoint: str,
    n: int = 5,
    max_length: int = 140,
    seed: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> Synthesized:
    """``n`` documents from a checkpoint written by :func:`train` (it names its end character)."""
    n, max_length, seed = (
        coerce("n", n, "int"),
        coerce("max_length", max_length, "int"),
        coerce("seed", seed, "int"),
    )
    ck = ckpt.load(checkpoint)
    end_char = ck.meta.get("end_char")
    if end_char not in ck.chars:
        raise ValueError(
            f"checkpoint {str(resolve(checkpoint))!r} was not trained on documents (its meta names no "
            "end character); use a checkpoint of notebooks/07_documents.ipynb, or "
            "notebooks/03_synthesis.ipynb for a book checkpoint."
        )
    docs, ended = sample.sample_documents(
        ck.params,
        ck.chars,
        ck.chars.index(end_char),
        n,
        max_length,
        np.random.default_rng(seed),
        coerce("temperature", temperature, "float"),
        coerce("top_p", top_p, "float"),
    )
    return Synthesized(docs, ended, str(resolve(checkpoint)), ck.step, ck.smooth_loss, max_length)
