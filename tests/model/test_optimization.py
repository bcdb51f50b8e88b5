"""Google's optimization.py: the warm-up and decay schedule."""

from __future__ import annotations

import pytest

from vbert.model.optimization import WarmupLinearDecay


def test_warmup_then_linear_decay():
    schedule = WarmupLinearDecay(1e-3, num_train_steps=100, num_warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 120)]
    assert values == pytest.approx([0.0, 5e-4, 9e-4, 4.5e-4, 0.0, 0.0])


def test_gradient_accumulation_equals_the_whole_batch():
    """Two batches of 4 accumulated make the same update as one batch of 8 (the loss is a mean), and the schedule
    counts updates, not batches."""
    import keras
    import numpy as np

    from vbert.model.optimization import make_optimizer

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")

    def trained(batch: int, accumulate: int):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=make_optimizer(0.1, 3, 1, gradient_accumulation_steps=accumulate), loss="mse")
        model.fit(x, y, batch_size=batch, epochs=3, shuffle=False, verbose=0)  # 3 updates either way
        return [w.numpy() for w in model.weights], model.optimizer

    whole, _ = trained(8, 1)
    accumulated, optimizer = trained(4, 2)
    for a, b in zip(whole, accumulated, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(optimizer.iterations) == 3
    assert float(optimizer.learning_rate) == pytest.approx(float(WarmupLinearDecay(0.1, 3, 1)(3)), abs=1e-9)
