"""Training progress where no bar can be drawn: a log line at each tenth of the epoch."""

import logging

from vbert.core.progress import examples_progress, progress_line


def test_a_progress_line_says_how_far_how_fast_and_how_long_is_left():
    line = progress_line("finetune epoch 1", 400, 1000, 100.0, 0.41234)
    assert line == "finetune epoch 1: 40% (400/1000 examples), 4.0 examples/s, loss 0.412, ~2 min left"
    assert progress_line("x", 1000, 1000, 10.0, None) == "x: 100% (1000/1000 examples), 100.0 examples/s"


def test_without_a_bar_each_tenth_of_the_epoch_is_logged_once(caplog):
    progress = examples_progress("distill epoch 2", [32] * 19 + [8], enabled=False)  # 616 examples
    with caplog.at_level(logging.INFO, logger="vbert.core.progress"):
        progress.on_train_begin()
        for batch in range(20):
            progress.on_train_batch_end(batch, {"loss": 0.5})
        progress.on_train_end()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 9  # at 10%, 20%, ... 90%; the epoch's own line says the rest
    assert lines[0].startswith("distill epoch 2: 10% (64/616 examples)") and "loss 0.500" in lines[0]
    assert lines[-1].startswith("distill epoch 2: 93% (576/616 examples)")


def test_with_a_bar_nothing_is_logged(caplog):
    progress = examples_progress("finetune epoch 1", [4, 4], enabled=True)
    with caplog.at_level(logging.INFO, logger="vbert.core.progress"):
        progress.on_train_begin()
        progress.on_train_batch_end(0, {"loss": 1.0})
        progress.on_train_batch_end(1, {"loss": 1.0})
        progress.on_train_end()
    assert caplog.records == []
