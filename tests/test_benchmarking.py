"""The bench stage's measuring pieces, exactly where they can be: FLOPs by hand, statistics, CPU sampling."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vbert.benchmarking import CpuSampler, bert_classifier_flops, matmul_ceiling_gflops, summarise
from vbert.modeling import BertConfig


def test_flops_by_hand_for_a_tiny_config():
    config = BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8)
    # per layer, s=3: projections 4*2*3*4*4 = 384, attention 2*2*3*3*4 = 144, feed-forward 2*2*3*4*8 = 384 -> 912
    # two layers 1824, pooler 2*4*4 = 32, classifier 2*4*5 = 40
    assert bert_classifier_flops(config, seq_len=3, num_labels=5) == 1824 + 32 + 40


def test_bert_base_at_msl_128_is_22_35_gflop_per_sequence():
    # per layer 603,979,776 (projections) + 50,331,648 (attention) + 1,207,959,552 (feed-forward); x 12 layers
    base = BertConfig(
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    )
    assert bert_classifier_flops(base, 128, 2) == 12 * 1_862_270_976 + 2 * 768 * 768 + 2 * 768 * 2


def test_summary_trims_the_fastest_and_slowest():
    summary = summarise([0.5, 0.1, 0.3, 0.2, 0.4], batch_size=10)
    assert (summary.requests, summary.min, summary.max) == (5, 0.1, 0.5)
    assert summary.trimmed_mean == pytest.approx(0.3)
    assert summary.variance == pytest.approx(np.var([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert summary.per_sample == pytest.approx(0.03)
    assert summarise([0.2, 0.4], 1).trimmed_mean == pytest.approx(0.3)  # two requests: nothing trimmed


def test_cpu_sampler_sees_a_busy_loop():
    with CpuSampler(interval=0.05) as idle:
        time.sleep(0.5)
    with CpuSampler(interval=0.05) as busy:
        deadline = time.perf_counter() + 0.5
        while time.perf_counter() < deadline:
            pass
    assert len(busy.samples) >= 5 and busy.mean > idle.mean
    assert 0 <= busy.peak <= 100


def test_matmul_ceiling_is_a_positive_rate():
    assert matmul_ceiling_gflops(size=256, repeats=2) > 0.1
