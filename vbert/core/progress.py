"""Progress for Keras training: a bar over the examples done with the running loss, or, where bars cannot be
drawn (several processes writing to one terminal or log), a log line at each tenth of the epoch."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

LOGGED_STEPS = 10  # log lines per epoch when there is no bar


def progress_line(desc: str, done: int, total: int, seconds: float, loss: float | None) -> str:
    """'finetune epoch 1: 40% (400/1000 examples), 3.2 examples/s, loss 0.412, ~3 min left'."""
    rate = done / seconds if seconds > 0 else 0.0
    left = f", ~{(total - done) / rate / 60:.0f} min left" if rate > 0 and done < total else ""
    shown_loss = f", loss {loss:.3f}" if loss is not None else ""
    return f"{desc}: {100 * done // total}% ({done}/{total} examples), {rate:.1f} examples/s{shown_loss}{left}"


def examples_progress(desc: str, batch_sizes: list[int], enabled: bool):
    """A Keras callback: a progress bar over the epoch's examples with the running loss when `enabled` (one
    process only: bars of parallel processes would overwrite each other), else a log line at each tenth."""
    import keras
    from tqdm import tqdm

    total = sum(batch_sizes)

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total, unit="ex", desc=desc, disable=not enabled, dynamic_ncols=True)
            self.done, self.next_line, self.started = 0, total / LOGGED_STEPS, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(batch_sizes[batch])
            if logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}")
            self.done += batch_sizes[batch]
            if not enabled and self.done >= self.next_line and self.done < total:
                loss = float(logs["loss"]) if logs and "loss" in logs else None
                log.info(progress_line(desc, self.done, total, time.perf_counter() - self.started, loss))
                self.next_line += total / LOGGED_STEPS

        def on_train_end(self, logs=None):
            self.bar.close()

    return Progress()
