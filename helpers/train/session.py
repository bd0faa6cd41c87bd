"""A training session around :meth:`Trainer.update`: the progress display, the checkpoint
cadence, progress lines and Ctrl-C, none of which the update loop itself needs to know.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

from threadpoolctl import threadpool_limits

from ..common.progress import Progress


def run(
    trainer,
    n_updates: int,
    on_checkpoint=None,
    report_every: int | None = None,
    out=None,
    progress: bool = True,
) -> float:
    """Update ``trainer`` until ``n_updates`` updates are done in total; returns the seconds taken.

        ``on_checkpoint()`` is called every ``cfg.checkpoint_every`` updates (the caller writes the
        final results). A line goes to ``out`` every ``report_every`` updates (default
        ``sample_every``; default: printed beside the bar), and a progress bar with the smooth loss
        is shown when ``progress``. BLAS runs single-threaded (the numpy engine's matrices are too small
    to share); the numba engine gives a one-layer GRU's products BLAS threads of its own and runs a
    one-layer LSTM on a crew of numba threads (helpers.model.fast_gated).
    """
    start = time.perf_counter()
    bar = Progress(n_updates, "updates", initial=trainer.state.step) if progress else None
    try:
        with threadpool_limits(limits=1, user_api="blas"), interrupt_between_updates() as stop:
            out = out or (bar.write if bar is not None else print)
            _loop(trainer, n_updates, on_checkpoint, report_every or trainer.cfg.sample_every, out, bar, stop)
    finally:
        if bar is not None:
            bar.close(trainer.smooth_history)
    return time.perf_counter() - start


def _loop(trainer, n_updates, on_checkpoint, report_every, out, bar, stop) -> None:
    s, cfg, update = trainer.state, trainer.cfg, trainer.update
    last_report = (s.step, time.perf_counter())
    while s.step < n_updates and not trainer.out_of_time():
        update()
        if stop:
            raise KeyboardInterrupt(f"interrupted after update {s.step}")
        if s.step % cfg.checkpoint_every == 0 and on_checkpoint is not None:
            on_checkpoint()
        if bar is not None and s.step % 100 == 0:
            bar.update(s.step, f"smooth loss {s.smooth_loss:.2f}", trainer.smooth_history)
        if s.step % report_every == 0 or s.step == n_updates:
            now = time.perf_counter()
            rate = (s.step - last_report[0]) / max(now - last_report[1], 1e-9)
            out(
                f"update {s.step:>7,}/{n_updates:,}  epoch {s.epoch}  smooth loss {s.smooth_loss:8.3f}  "
                f"{rate:,.0f} updates/s"
            )
            last_report = (s.step, now)


def run_saving(trainer, n_updates: int, save) -> float:
    """:func:`run` with ``save()`` at every checkpoint and once more on Ctrl-C (then re-raised).

    A non-finite loss raises before anything is saved, so the files on disk stay the last good ones.
    """
    try:
        return run(trainer, n_updates, on_checkpoint=save)
    except KeyboardInterrupt:
        save()
        print(f"interrupted at update {trainer.state.step}; its results, last.npz included, are saved")
        raise


@contextlib.contextmanager
def interrupt_between_updates():
    """Turn Ctrl-C (SIGINT) into a KeyboardInterrupt between two updates, never inside one.

    Yields a list that becomes non-empty once Ctrl-C was pressed; the loop checks it after each
    update, so a checkpoint written on interrupt holds a consistent state. Outside the main thread
    (where signals cannot be caught) nothing changes.
    """
    stop: list = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
