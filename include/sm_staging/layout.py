"""Field-count check of a CSV file, vectorised over raw bytes.

pandas silently pads a short row with NaN, so a row that lost a field would shift nothing but quietly
become missing values. This check counts separators per line (outside double quotes) with numpy in
fixed-size chunks: constant memory and no per-row Python, also for millions of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sm_staging.errors import StagingInputError

_CHUNK = 1 << 23
_NEWLINE, _COMMA, _QUOTE, _RETURN = 10, 44, 34, 13


@dataclass(frozen=True)
class CsvLayout:
    data_rows: int
    blank_lines: np.ndarray  # 1-based numbers of the blank lines pandas skips

    def line_of_row(self, row: int) -> int:
        """The 1-based file line of the 0-based data row (blank lines are not data rows)."""
        line = row + 1
        while True:
            skipped = int(np.searchsorted(self.blank_lines, line, side="right"))
            candidate = row + 1 + skipped
            if candidate == line:
                return line
            line = candidate


def check_field_counts(path: Path, expected_fields: int, source_name: str) -> CsvLayout:
    """Raise naming the first line whose field count differs from ``expected_fields``."""
    in_quotes = 0  # parity carried across chunks
    carry_commas = 0  # separators seen on the current, unfinished line
    carry_length = 0  # bytes (without CR) on the current, unfinished line
    previous_byte = -1
    lines_done = 0
    data_rows = 0
    blank: list[np.ndarray] = []
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            data = np.frombuffer(chunk, dtype=np.uint8)
            quotes = data == _QUOTE
            if quotes.any():
                # uint8 cumsum wraps at 256 but keeps the parity, which is all we need
                parity = (np.cumsum(quotes, dtype=np.uint8) + in_quotes) & 1
                outside = parity == 0
                in_quotes = int(parity[-1])
            else:
                outside = np.full(data.shape, not in_quotes)
            newlines = np.flatnonzero((data == _NEWLINE) & outside)
            commas = np.flatnonzero((data == _COMMA) & outside)
            if newlines.size:
                commas_before = np.searchsorted(commas, newlines)
                per_line = np.diff(commas_before, prepend=0)
                per_line[0] += carry_commas
                starts = np.concatenate(([-1], newlines[:-1]))
                lengths = newlines - starts - 1
                lengths[0] += carry_length
                before = np.where(newlines > 0, data[np.maximum(newlines - 1, 0)], previous_byte)
                lengths = lengths - (before == _RETURN)
                is_blank = lengths == 0
                bad = np.flatnonzero(~is_blank & (per_line + 1 != expected_fields))
                if bad.size:
                    first = int(bad[0])
                    raise StagingInputError(
                        f"inconsistent columns in {source_name}: line {lines_done + first + 1} has "
                        f"{int(per_line[first]) + 1} fields, expected {expected_fields}"
                    )
                blank.append(np.flatnonzero(is_blank) + lines_done + 1)
                data_rows += int(newlines.size - is_blank.sum())
                lines_done += int(newlines.size)
                carry_commas = int(commas.size - commas_before[-1])
                carry_length = int(data.size - newlines[-1] - 1)
            else:
                carry_commas += int(commas.size)
                carry_length += int(data.size)
            previous_byte = int(data[-1])
    if carry_length - (previous_byte == _RETURN) > 0:  # last line without a final newline
        if carry_commas + 1 != expected_fields:
            raise StagingInputError(
                f"inconsistent columns in {source_name}: line {lines_done + 1} has "
                f"{carry_commas + 1} fields, expected {expected_fields}"
            )
        data_rows += 1
    blank_lines = np.concatenate(blank) if blank else np.empty(0, dtype=np.int64)
    return CsvLayout(data_rows=data_rows, blank_lines=blank_lines)
