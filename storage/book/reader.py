"""Rows out of a book file, streamed: CSV (UTF-8, UTF-8 with BOM or GBK, detected) or .xlsx."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

KINDS = ("staff", "customers", "family", "policies", "claims", "circles")
SUFFIXES = (".csv", ".xlsx")
_CHUNK = 1 << 16


class UnreadableFile(ValueError):
    """The file cannot be read as a book file (its name, its encoding, its header)."""


def kind_of(name: str) -> str | None:
    """`policies.csv` or `Policies.xlsx` -> "policies"; anything else -> None."""
    p = Path(name)
    stem, suffix = p.stem.lower(), p.suffix.lower()
    return stem if stem in KINDS and suffix in SUFFIXES else None


def detect_encoding(stream: IO[bytes]) -> str:
    """utf-8-sig with a BOM; utf-8 if the whole file decodes; else GB18030 (a superset of GBK)."""
    stream.seek(0)
    head = stream.read(3)
    if head == codecs.BOM_UTF8:
        stream.seek(0)
        return "utf-8-sig"
    stream.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := stream.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        stream.seek(0)
        return "gb18030"
    stream.seek(0)
    return "utf-8"


def _header(cells: list[Any]) -> list[str]:
    return [str(c or "").strip().lower() for c in cells]


def read_rows(path: Path, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: text}) per data row; the first yield is (1, header as a dict).

    Empty cells read as "". Lines are the file's own: a CSV's physical line, a sheet's row.
    """
    if path.suffix.lower() == ".xlsx":
        yield from _xlsx_rows(stream)
        return
    encoding = detect_encoding(stream)
    text = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")
    reader = csv.reader(text)
    try:
        header = _header(next(reader, []))
        yield 1, {h: h for h in header}
        start = reader.line_num + 1
        for row in reader:
            if any(c.strip() for c in row):
                yield start, {h: (row[i].strip() if i < len(row) else "")
                              for i, h in enumerate(header) if h}
            start = reader.line_num + 1
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableFile(f"cannot read as CSV ({encoding}): {exc}") from exc
    finally:
        text.detach()  # the caller closes the stream


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _xlsx_rows(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    from zipfile import BadZipFile  # noqa: PLC0415

    from openpyxl import load_workbook  # noqa: PLC0415 - only .xlsx files need it
    from openpyxl.utils.exceptions import InvalidFileException  # noqa: PLC0415

    try:
        book = load_workbook(stream, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, KeyError, OSError) as exc:
        raise UnreadableFile(f"not an .xlsx workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = _header(list(next(rows, ())))
        yield 1, {h: h for h in header}
        for n, row in enumerate(rows, 2):
            cells = [_cell(v) for v in row]
            if any(cells):
                yield n, {h: (cells[i] if i < len(cells) else "")
                          for i, h in enumerate(header) if h}
    finally:
        book.close()
