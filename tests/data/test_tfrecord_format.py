"""Our TFRecord writer, read back by TensorFlow itself."""

from __future__ import annotations

import pytest
import tensorflow as tf

from vbert.core.errors import InputError
from vbert.data.tfrecord_format import (
    TFRecordWriter,
    VarintTable,
    example,
    float_feature,
    int64_feature,
    read_records,
    varint,
)


def test_varint_known_values():
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x01"
    assert varint(127) == b"\x7f"
    assert varint(128) == b"\x80\x01"
    assert varint(300) == b"\xac\x02"  # the protobuf documentation's example
    assert varint(30521) == b"\xb9\xee\x01"


def test_example_parses_in_tensorflow():
    table = VarintTable(40000)
    record = example({"ids": int64_feature(table.packed([0, 5, 300, 30521])), "w": float_feature([1.0, 0.5, 0.0])})
    parsed = tf.train.Example.FromString(record)
    assert list(parsed.features.feature["ids"].int64_list.value) == [0, 5, 300, 30521]
    assert list(parsed.features.feature["w"].float_list.value) == [1.0, 0.5, 0.0]


def test_tfrecord_file_reads_in_tensorflow_and_back(tmp_path):
    path = tmp_path / "x.tfrecord"
    records = [b"", b"a", b"hello" * 1000]
    with open(path, "wb") as handle:
        writer = TFRecordWriter(handle)
        for record in records:
            writer.write(record)
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records
    assert list(read_records(path)) == records


def test_corrupt_record_is_reported(tmp_path):
    path = tmp_path / "x.tfrecord"
    with open(path, "wb") as handle:
        TFRecordWriter(handle).write(b"payload")
    data = bytearray(path.read_bytes())
    data[14] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="record 0 is truncated or corrupt"):
        list(read_records(path))
