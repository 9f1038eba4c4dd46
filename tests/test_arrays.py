"""synth.arrays: Arrow arrays built and read without pandas, so `synth verify`'s processes never import it
(pyarrow's own conversions do, a sixth of a second per process)."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from synth.arrays import int64_array, int_values, string_array


def test_the_arrays_hold_what_they_were_built_from():
    assert int64_array([3, 1, 2]).to_pylist() == [3, 1, 2]
    assert int64_array(np.arange(5)[::2]).to_pylist() == [0, 2, 4]
    texts = ["", "abc", "ሰላም ለዓለም", "ก" * 50, "a\x00b"]
    assert string_array(texts).to_pylist() == texts
    array = pa.array([5, 6, 7, 8], type=pa.int32()).slice(1, 2)
    assert int_values(array).tolist() == [6, 7]
    with pytest.raises(UnicodeEncodeError):
        string_array(["a lone \ud800"])


def test_lid_windows_and_verify_chunks_do_not_import_pandas():
    code = """
import sys
from synth.arrays import int64_array, string_array
from synth.verify.lid.router import load_lid
model = load_lid()
model.scan(["  leading and trailing  ", "a b c", "ก" * 300 + " x", "ሰላም፡ለዓለም", ""])
import pyarrow as pa
table = pa.Table.from_arrays([string_array(["a", "b", "c"])], names=["x"]).take(int64_array([2, 0]))
assert table.column("x").to_pylist() == ["c", "a"]
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
