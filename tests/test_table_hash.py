"""The canonical column-wise table hash: values decide it, the Arrow layout does not."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from taoflow.ledger.table_hash import table_sha256


def table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(["a", "bb", "", "dddd"]),
            "raw": pa.array([b"\x00", b"", b"xy", b"z"]),
            "amount": pa.array([1, 2**40, 0, 7], pa.int64()),
            "weight": pa.array([1, 65535, 0, 2], pa.uint16()),
            "score": pa.array([0.5, 1.0, -0.0, 2.25]),
            "ok": pa.array([True, False, True, True]),
            "digest": pa.array([b"0123456789abcdef"] * 4, pa.binary(16)),
        }
    )


def test_chunking_slicing_and_compression_do_not_change_the_hash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = table()
    expected = table_sha256(base)
    chunked = pa.concat_tables([base.slice(0, 1), base.slice(1, 2), base.slice(3)])
    assert chunked.column("id").num_chunks == 3 and table_sha256(chunked) == expected
    wider = pa.concat_tables([table(), table()]).slice(4)  # non-zero offsets into the buffers
    assert table_sha256(wider) == expected
    path = tmp_path / "t.arrow"
    options = ipc.IpcWriteOptions(compression="zstd")
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, base.schema, options=options) as w:
        w.write_table(base)
    assert table_sha256(ipc.open_file(pa.memory_map(str(path))).read_all()) == expected


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.set_column(0, "id", pa.array(["a", "bb", "", "ddde"])),
        lambda t: t.set_column(0, "id", pa.array(["ab", "b", "", "dddd"])),  # same bytes, moved
        lambda t: t.set_column(2, "amount", pa.array([1, 2**40, 0, 8], pa.int64())),
        lambda t: t.rename_columns(["ID", *t.column_names[1:]]),
        lambda t: t.slice(0, 3),
        lambda t: t.set_column(5, "ok", pa.array([True, False, True, False])),
        lambda t: t.set_column(6, "digest", pa.array([b"0123456789abcdeF"] * 4, pa.binary(16))),
    ],
)
def test_any_change_of_a_value_a_boundary_a_name_or_a_type_changes_the_hash(change) -> None:  # type: ignore[no-untyped-def]
    assert table_sha256(change(table())) != table_sha256(table())


def test_the_same_values_in_another_type_hash_differently() -> None:
    values = [1, 2, 0, 7]
    assert table_sha256(pa.table({"a": pa.array(values, pa.int64())})) != table_sha256(
        pa.table({"a": pa.array(values, pa.int32())})
    )


def test_nulls_are_refused() -> None:
    with pytest.raises(ValueError, match="may not hold nulls"):
        table_sha256(pa.table({"a": pa.array([1, None])}))
