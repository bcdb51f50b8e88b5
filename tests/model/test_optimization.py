"""Google's optimization.py: the warm-up and decay schedule."""

from __future__ import annotations

import pytest

from vbert.model.optimization import WarmupLinearDecay


def test_warmup_then_linear_decay():
    schedule = WarmupLinearDecay(1e-3, num_train_steps=100, num_warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 120)]
    assert values == pytest.approx([0.0, 5e-4, 9e-4, 4.5e-4, 0.0, 0.0])
