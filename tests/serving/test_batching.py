"""Dynamic batching, exactly: padding to a bucket, merging concurrent requests, splitting the results back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from vbert.serving.batching import Batcher, BatchingParameters, QueueFull, pad_rows, padded_length


def request(ids: list[list[int]]) -> dict[str, np.ndarray]:
    array = np.array(ids, np.int32)
    return {"input_ids": array, "input_mask": (array > 0).astype(np.int32), "segment_ids": np.zeros_like(array)}


def test_padded_length_rounds_up_to_the_bucket_and_never_past_the_limit():
    assert padded_length([5, 17], bucket=16, limit=128) == 32
    assert padded_length([16], bucket=16, limit=128) == 16
    assert padded_length([40], bucket=16, limit=48) == 48
    assert padded_length([3], bucket=16, limit=512) == 16  # not 512


def test_pad_rows_stacks_and_zero_pads():
    batch = pad_rows([request([[101, 7, 102]]), request([[101, 102], [101, 5]])], 4)
    assert batch["input_ids"].tolist() == [[101, 7, 102, 0], [101, 102, 0, 0], [101, 5, 0, 0]]
    assert batch["input_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]]


@pytest.mark.parametrize(
    ("split_by_bucket", "inferences"),
    [(False, [(4, 32)]), (True, [(3, 16), (1, 32)])],
    ids=["padded-to-the-longest", "one-inference-per-bucket"],
)
def test_concurrent_requests_are_merged_and_get_their_own_rows_back(split_by_bucket, inferences):
    calls = []

    def predict(batch):  # row sums identify the rows; a real model is tested in test_serving.py
        calls.append(batch["input_ids"].shape)
        sums = batch["input_ids"].sum(axis=1, keepdims=True).astype(np.float32)
        return {"probabilities": sums, "logits": -sums}

    async def scenario():
        batcher = Batcher(
            predict,
            BatchingParameters(max_batch_size=4, batch_timeout_micros=200_000, split_by_bucket=split_by_bucket),
            64,
        )
        batcher.start()
        results = await asyncio.gather(
            batcher.submit(request([[1, 2]])),
            batcher.submit(request([[10, 20, 30], [40, 0, 0]])),
            batcher.submit(request([[5] * 17])),
        )
        await batcher.stop()
        return results

    first, second, third = asyncio.run(scenario())
    # 1 + 2 + 1 rows: lengths 2, 3 and 17 pad to 16, 16 and 32 (multiples of 16)
    assert calls == inferences
    assert first["probabilities"].tolist() == [[3.0]]
    assert second["probabilities"].tolist() == [[60.0], [40.0]]
    assert third["logits"].tolist() == [[-85.0]]


def test_a_full_queue_refuses_at_once():
    async def scenario():
        batcher = Batcher(lambda b: b, BatchingParameters(max_batch_size=2, max_enqueued_batches=1), 64)
        try:
            await batcher.submit(request([[1], [2], [3]]))
        except QueueFull as error:
            return str(error)

    assert asyncio.run(scenario()) == "0 rows queued, the limit is 2"
