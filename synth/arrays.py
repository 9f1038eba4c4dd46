"""Arrow arrays to and from numpy and Python without pandas: pyarrow's `pa.array`, `pa.scalar` and
`Array.to_numpy` import pandas to look for its types (a sixth of a second in each process that does), and
`synth verify`'s parent and workers otherwise never need it."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa


def int64_array(values) -> pa.Array:
    """An Arrow int64 array of `values` (a list or numpy array of ints), built from its buffer."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), values.size, [None, pa.py_buffer(values)])


def string_array(texts: Sequence[str]) -> pa.LargeStringArray:
    """An Arrow array of `texts` built from their UTF-8 bytes; raises UnicodeEncodeError for a lone
    surrogate, which UTF-8 cannot hold."""
    encoded = [t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return pa.LargeStringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def int_values(array: pa.Array) -> np.ndarray:
    """The values of an Arrow integer array without nulls, as a numpy view of its buffer."""
    dtype = np.dtype(f"int{array.type.bit_width}")
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
