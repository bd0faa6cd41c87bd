"""Learning from a collection of short documents (tweets): the assignment's bonus exercise.

The same RNN, AdaGrad, clipping to [-5, 5] and smooth loss as the book run (:mod:`helpers.train.trainer`),
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
characters (140 for tweets). The collection is read by :mod:`helpers.data.collection`; the run step
that trains and writes the results is :mod:`helpers.runs.documents`, the report section
:mod:`helpers.report.documents_section`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.collection import END_CHAR, check_end_char, encode_documents
from ..model import sample
from .checkpoint import Checkpoint
from .config import TrainConfig
from .trainer import Trainer, TrainState


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

    def __init__(
        self,
        cfg: TrainConfig,
        documents: list[str],
        chars: list[str],
        state: DocumentState,
        end_char: str = END_CHAR,
        n_samples: int = 5,
    ):
        if not documents:
            raise ValueError("the collection holds no documents; pass at least one non-empty document.")
        unsupported = {
            k: v
            for k, v in (
                ("cell", cfg.cell),
                ("batch_size", cfg.batch_size),
                ("val_fraction", cfg.val_fraction),
            )
            if v != TrainConfig().as_dict()[k]
        }
        if unsupported:
            raise ValueError(
                f"training on documents supports the vanilla RNN, one stream and no validation split "
                f"so far; drop {', '.join(f'{k}={v!r}' for k, v in unsupported.items())}."
            )
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
        """x and y (1, T) of the next update, never past the current document's closing END."""
        s = self.state
        if s.position >= self.starts[s.order[s.doc] + 1]:  # the document is done
            s.doc += 1
            if s.doc == len(s.order):  # every document seen: a new epoch in a new order
                s.order, s.doc, s.epoch = s.rng.permutation(len(s.order)), 0, s.epoch + 1
                s.epoch_starts.append(s.step)
            self._start_document()
        stop = min(s.position + self.cfg.seq_length, int(self.starts[s.order[s.doc] + 1]))
        return self.data[None, s.position : stop], self.data[None, s.position + 1 : stop + 1]

    def record_sample(self, x0=None) -> None:
        """Synthesize ``n_samples`` documents from h_0 = 0, x_0 = END (``x0`` is ignored)."""
        s = self.state
        docs, ended = sample.sample_documents(
            s.params, self.chars, self.end, self.n_samples, self.cfg.sample_length, s.rng
        )
        s.samples.append({"step": s.step, "smooth_loss": s.smooth_loss, "documents": docs, "ended": ended})

    def checkpoint(self, which: str, meta: dict) -> Checkpoint:
        """The Trainer's checkpoint, with the end character and the position in the epoch's order."""
        extra = {"end_char": self.chars[self.end], "n_documents": len(self.state.order)}
        if which == "last":
            extra["document"] = self.state.doc
        return super().checkpoint(which, {**meta, **extra})
