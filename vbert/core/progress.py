"""Progress bars for Keras training: examples done and the running loss."""

from __future__ import annotations


def examples_progress(desc: str, batch_sizes: list[int], enabled: bool):
    """A Keras callback: a progress bar over the epoch's examples, with the running loss (one process only: bars
    of parallel processes would overwrite each other; those log each epoch's line)."""
    import keras
    from tqdm import tqdm

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=sum(batch_sizes), unit="ex", desc=desc, disable=not enabled, dynamic_ncols=True)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(batch_sizes[batch])
            if logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.3f}")

        def on_train_end(self, logs=None):
            self.bar.close()

    return Progress()
