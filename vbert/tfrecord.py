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

from vbert.errors import InputError

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


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload


class VarintTable:
    """Varints of 0..size-1 computed once, so a list of ids encodes with one `bytes.join`."""

    def __init__(self, size: int):
        self.table = [varint(i) for i in range(size)]

    def packed(self, values: Sequence[int]) -> bytes:
        return b"".join([self.table[v] for v in values])


def int64_feature(packed_values: bytes) -> bytes:
    """Feature{int64_list: Int64List{value: packed}} from already-encoded varints."""
    return _field(3, _field(1, packed_values))


def float_feature(values: Sequence[float]) -> bytes:
    return _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)))


def example(features: dict[str, bytes]) -> bytes:
    """Serialise an Example from encoded Feature messages, keyed by name (written in the given order)."""
    entries = b"".join(_field(1, _field(1, name.encode()) + _field(2, feature)) for name, feature in features.items())
    return _field(1, entries)


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
