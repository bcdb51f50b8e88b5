"""TFRecord files of `tf.train.Example` protos, written without importing TensorFlow.

The wire format is small and stable: each record is `uint64 length, uint32 masked_crc32c(length), data,
uint32 masked_crc32c(data)`; an Example is `Features{map<string, Feature>}` with packed int64/float lists.
Tests read our files back with TensorFlow's own parser.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import google_crc32c
import numpy as np

from vbert.core.errors import InputError

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_TAGS = {number: varint((number << 3) | 2) for number in range(1, 16)}
_LENGTHS = [varint(n) for n in range(1 << 14)]


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    size = len(payload)
    return _TAGS[number] + (_LENGTHS[size] if size < 16384 else varint(size)) + payload


class VarintTable:
    """Varints of 0..size-1 computed once, so a list of ids encodes with one `bytes.join`."""

    def __init__(self, size: int):
        self.table = [varint(i) for i in range(size)]

    def packed(self, values: Sequence[int]) -> bytes:
        return b"".join(map(self.table.__getitem__, values))


def _pack_varints(flat: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    """Packed varints of consecutive runs of `flat` (non-negative, below 2**28) with the given lengths."""
    flat = flat.astype(np.uint32, copy=False)
    if flat.size and int(flat.max()) >= 1 << 28:
        raise ValueError("varints of values below 2**28 only")
    more = [(flat >= 1 << shift).astype(np.uint8) for shift in (7, 14, 21)]  # a byte follows this one
    table = np.empty((flat.size, 4), dtype=np.uint8)
    for index, shift in enumerate((0, 7, 14, 21)):
        low = ((flat >> shift) & 0x7F).astype(np.uint8)
        table[:, index] = low | (more[index] << 7) if index < 3 else low
    sizes = 1 + more[0].astype(np.int64) + more[1] + more[2]
    packed = table[np.arange(4) < sizes[:, None]].tobytes()
    run_sizes = np.bincount(np.repeat(np.arange(len(lengths)), lengths), weights=sizes, minlength=len(lengths))
    offsets = np.concatenate([[0], np.cumsum(run_sizes, dtype=np.int64)]).tolist()
    return [packed[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]


def varint_rows(rows: Sequence[Sequence[int]]) -> list[bytes]:
    """The packed varints of each row of non-negative ints below 2**28, computed for all rows at once."""
    values: list[int] = []
    for row in rows:
        values.extend(row)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    return _pack_varints(np.array(values, dtype=np.int64), lengths)


def varint_matrix(matrix: np.ndarray) -> list[bytes]:
    """The packed varints of each row of a 2-D array."""
    rows, width = matrix.shape
    return _pack_varints(matrix.ravel(), np.full(rows, width, dtype=np.int64))


def int64_feature(packed_values: bytes) -> bytes:
    """Feature{int64_list: Int64List{value: packed}} from already-encoded varints."""
    return field(3, field(1, packed_values))


def float_feature(values: Sequence[float]) -> bytes:
    return field(2, field(1, struct.pack(f"<{len(values)}f", *values)))


def feature_entry(name: str, feature: bytes) -> bytes:
    """One entry of an Example's `map<string, Feature>`: key = name, value = an encoded Feature."""
    return field(1, field(1, name.encode()) + field(2, feature))


def example(features: dict[str, bytes]) -> bytes:
    """Serialise an Example from encoded Feature messages, keyed by name (written in the given order)."""
    return field(1, b"".join(feature_entry(name, feature) for name, feature in features.items()))


class TFRecordWriter:
    """Append records to a TFRecord file."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.records = 0

    def write(self, record: bytes) -> None:
        length = struct.pack("<Q", len(record))
        self.handle.write(
            length + struct.pack("<I", masked_crc32c(length)) + record + struct.pack("<I", masked_crc32c(record))
        )
        self.records += 1


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Yield the records of a TFRecord file, checking both checksums of each."""
    with open(path, "rb") as handle:
        index = 0
        while header := handle.read(12):
            if len(header) < 12:
                raise InputError(f"{path}: record {index} is truncated (partial header)")
            length_bytes, crc = header[:8], struct.unpack("<I", header[8:])[0]
            if masked_crc32c(length_bytes) != crc:
                raise InputError(f"{path}: record {index} has a corrupt length")
            (length,) = struct.unpack("<Q", length_bytes)
            data, footer = handle.read(length), handle.read(4)
            if len(data) < length or len(footer) < 4 or masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise InputError(f"{path}: record {index} is truncated or corrupt")
            yield data
            index += 1
