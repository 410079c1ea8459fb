"""Tables as bytes that are identical for identical inputs: fixed CSV float format and line endings, Parquet
without the index and with fixed writer options (compression, version, statistics, no dictionary guesses)."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def csv_bytes(frame: pd.DataFrame, index: bool = False) -> bytes:
    return frame.to_csv(index=index, float_format="%.9g", lineterminator="\n").encode("utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        compression_level=3,
        version="2.6",
        use_dictionary=False,
        write_statistics=True,
        data_page_version="1.0",
    )
    return buffer.getvalue()
