"""Streaming, resumable readers and writers for CSV, JSONL and Parquet files.

`classify` reads its input and writes its output through these, one chunk at a time, so
memory stays flat whatever the file size, and a killed run can continue exactly where its
last committed chunk ended:

- a reader reports a *position* after every chunk (the byte offset for CSV and JSONL, the
  number of rows for Parquet) and can be reopened at it;
- a writer appends to ``FILE.partial`` and reports a *position* too (the byte offset, or the
  number of Parquet part files); reopened at a position it first drops anything written
  after it, such as half a chunk from a killed run; ``finish`` renames it to ``FILE``.

Row numbers are the ones a person sees when opening the file: CSV counts the header as
row 1 (as a spreadsheet does), JSONL counts lines, Parquet counts rows from 1.

The same readers load a task's labelled files (`dispute_classifier.core.task`): a reader can
also return a label column, and ``setting`` names, in its errors, where a column is set
(``--text-column`` for ``classify``, ``columns.text`` in a task YAML).

pyarrow is imported only when a Parquet file is read or written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dispute_classifier.core.errors import UserError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
"""File name ending → format."""
PARQUET_ROW_GROUP = 65_536
"""Rows per row group of a finished Parquet file (the parts are merged up to this size)."""
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""Undecodable bytes, as ``errors="surrogateescape"`` decoding leaves them."""
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")
"""Surrogates no byte decoded to: a JSON escape such as ``"\\ud800"``, which no UTF-8 file can hold."""
_BOM = b"\xef\xbb\xbf"


def file_format(path: Path, what: str) -> str:
    """The format of ``path`` from its ending, or a UserError naming the ones supported."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"{what} {path}: unknown file type '{Path(path).suffix}'; use one of {', '.join(FORMATS)}")
    return fmt


def partial_path(path: Path) -> Path:
    """Where a file is written until it is complete."""
    return path.with_name(path.name + ".partial")


def printable(value: str | None, limit: int | None = None) -> str | None:
    """``value`` with undecodable bytes shown as U+FFFD, cut to ``limit`` characters."""
    if value is None:
        return None
    value = _LONE_SURROGATE.sub("\ufffd", value)
    if _NOT_UTF8.search(value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if limit is not None and len(value) > limit:
        value = value[:limit] + "…"
    return value


def _first(pattern: re.Pattern, value: str | None, describe) -> str | None:  # noqa: ANN001
    match = pattern.search(value) if value is not None else None
    return None if match is None else describe(match)


def bad_bytes(value: str | None) -> str | None:
    """A description of the first undecodable byte in ``value`` (None when it is clean UTF-8)."""
    return _first(_NOT_UTF8, value, lambda m: f"byte 0x{ord(m.group()) - 0xDC00:02x} at character {m.start() + 1}")


def lone_surrogate(value: str | None) -> str | None:
    """A description of the first lone surrogate in ``value`` that no undecodable byte left
    (None when there is none): such a text cannot be written to any UTF-8 file."""
    return _first(_LONE_SURROGATE, value, lambda m: f"lone surrogate U+{ord(m.group()):04X} at character {m.start() + 1}")


@dataclass
class RawRow:
    """One input row as read, before any check."""

    row: int
    """Row number as the file shows it (see the module docstring)."""
    id: str | None
    """Value of the id column (None when there is no id column or the value is missing)."""
    text: str | None
    """Value of the text column (None when missing); may hold undecodable bytes as surrogates."""
    problem: tuple[str, str] | None = None
    """(kind, reason) when the row could not be read at all (a malformed line)."""
    label: str | None = None
    """Value of the label column, when the reader was asked for one (task files)."""


# ---------------------------------------------------------------------------- readers


class _LineReader:
    """Binary lines of a file, decoded, with the byte offset of what has been consumed."""

    def __init__(self, path: Path, offset: int) -> None:
        self.f = open(path, "rb")
        self.f.seek(offset)
        self.offset = offset

    def lines(self) -> Iterator[str]:
        for raw in self.f:
            if self.offset == 0 and raw.startswith(_BOM):
                raw_text = raw[len(_BOM) :]
            else:
                raw_text = raw
            self.offset += len(raw)
            # A UTF-8 character never spans a newline, so decoding line by line is exact;
            # surrogateescape keeps bad bytes visible so one bad row cannot stop the file.
            yield raw_text.decode("utf-8", "surrogateescape")

    def close(self) -> None:
        self.f.close()


CLASSIFY_SETTING = "--{role}-column"
"""How `classify` names the setting of a column (``role`` is text, id or label) in errors."""


def _find_column(name: str | None, columns: list[str], path: Path, flag: str) -> int | None:
    if name is None:
        return None
    if name not in columns:
        raise UserError(f"{path}: no column '{name}'; columns found: {', '.join(columns) or '(none)'}. Set {flag}")
    return columns.index(name)


class CsvReader:
    """Rows of a CSV file with a header row; resumes at a byte offset."""

    def __init__(
        self,
        path: Path,
        text_column: str,
        id_column: str | None,
        position: dict[str, Any] | None = None,
        *,
        label_column: str | None = None,
        setting: str = CLASSIFY_SETTING,
    ) -> None:
        self.path = path
        # Huge fields (a stray quote can swallow the rest of a file) become one over-long
        # text that the length check reports, instead of an exception.
        csv.field_size_limit(2**31 - 1)
        head = _LineReader(path, 0)
        try:
            header = next(csv.reader(head.lines()), None)
        finally:
            head.close()
        if header is None:
            raise UserError(f"{path}: empty file; expected a header row naming the columns")
        header = [printable(h) or "" for h in header]
        self._text = _find_column(text_column, header, path, setting.format(role="text"))
        self._label = _find_column(label_column, header, path, setting.format(role="label"))
        self._id = _find_column(id_column, header, path, setting.format(role="id"))
        start = position or {"offset": head.offset, "rows": 0}
        self._lines = _LineReader(path, start["offset"])
        self.rows = start["rows"]
        self._reader = csv.reader(self._lines.lines())

    def __iter__(self) -> Iterator[RawRow]:
        while True:
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.rows += 1
                yield RawRow(self.rows + 1, None, None, ("malformed", f"not a valid CSV row ({exc})"))
                continue
            self.rows += 1
            # csv.reader pulls exactly the lines of one record, so the offset is now at its end.
            get = lambda i: fields[i] if i is not None and i < len(fields) else None  # noqa: E731
            yield RawRow(self.rows + 1, get(self._id), get(self._text), label=get(self._label))

    def position(self) -> dict[str, Any]:
        return {"offset": self._lines.offset, "rows": self.rows}

    def close(self) -> None:
        self._lines.close()


def _json_value(value: Any) -> str | None:
    """A JSON field as text: strings as they are, numbers written out, anything else None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


class JsonlReader:
    """Objects of a JSON Lines file, one per line; blank lines are skipped."""

    def __init__(
        self,
        path: Path,
        text_column: str,
        id_column: str | None,
        position: dict[str, Any] | None = None,
        *,
        label_column: str | None = None,
        setting: str = CLASSIFY_SETTING,
    ) -> None:
        self.path = path
        self.text_column = text_column
        self.id_column = id_column
        self.label_column = label_column
        self.setting = setting
        start = position or {"offset": 0, "rows": 0, "line": 0}
        self._lines = _LineReader(path, start["offset"])
        self.rows = start["rows"]
        self.line = start["line"]
        self._checked = position is not None

    def _check_columns(self, obj: dict[str, Any]) -> None:
        """The first object must have the columns; otherwise every row would be an error."""
        self._checked = True
        for name, role in ((self.text_column, "text"), (self.label_column, "label"), (self.id_column, "id")):
            if name is not None and name not in obj:
                raise UserError(
                    f"{self.path}: line {self.line} has no field '{name}'; fields found: {', '.join(obj) or '(none)'}."
                    f" Set {self.setting.format(role=role)}"
                )

    def __iter__(self) -> Iterator[RawRow]:
        for line in self._lines.lines():
            self.line += 1
            if not line.strip():
                continue
            self.rows += 1
            reason = bad_bytes(line)
            if reason:
                yield RawRow(self.line, None, line, ("not_utf8", f"line is not UTF-8 ({reason})"))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RawRow(self.line, None, line, ("malformed", f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            if not isinstance(obj, dict):
                yield RawRow(self.line, None, line, ("malformed", "not a JSON object"))
                continue
            if not self._checked:
                self._check_columns(obj)
            raw_text = obj.get(self.text_column)
            text = _json_value(raw_text)
            rid = _json_value(obj.get(self.id_column)) if self.id_column else None
            if text is None and raw_text is not None:
                yield RawRow(self.line, rid, None, ("malformed", f"field '{self.text_column}' is not text but {type(raw_text).__name__}"))
                continue
            raw_label = obj.get(self.label_column) if self.label_column else None
            label = _json_value(raw_label)
            if label is None and raw_label is not None:
                yield RawRow(self.line, rid, text, ("malformed", f"field '{self.label_column}' is not text but {type(raw_label).__name__}"))
                continue
            yield RawRow(self.line, rid, text, label=label)

    def position(self) -> dict[str, Any]:
        return {"offset": self._lines.offset, "rows": self.rows, "line": self.line}

    def close(self) -> None:
        self._lines.close()


class ParquetReader:
    """Rows of a Parquet file, read one record batch at a time; resumes at a row count."""

    def __init__(
        self,
        path: Path,
        text_column: str,
        id_column: str | None,
        position: dict[str, Any] | None = None,
        *,
        label_column: str | None = None,
        setting: str = CLASSIFY_SETTING,
    ) -> None:
        import pyarrow.parquet as pq

        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
        names = self._file.schema_arrow.names
        _find_column(text_column, names, path, setting.format(role="text"))
        _find_column(label_column, names, path, setting.format(role="label"))
        _find_column(id_column, names, path, setting.format(role="id"))
        # text, id and label column (None where not asked for), in the order `__iter__` unpacks them
        self._columns = [text_column, id_column, label_column]
        self.rows = (position or {}).get("rows", 0)

    @staticmethod
    def _values(column: Any) -> list[Any]:
        """Python values of an Arrow column; binary columns and invalid UTF-8 decode per value."""
        import pyarrow as pa

        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            try:
                return column.to_pylist()
            except (UnicodeDecodeError, pa.ArrowInvalid):
                column = column.cast(pa.large_binary(), safe=False)
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            return [None if v is None else v.decode("utf-8", "surrogateescape") for v in column.to_pylist()]
        return [_json_value(v) for v in column.to_pylist()]

    def __iter__(self) -> Iterator[RawRow]:
        meta = self._file.metadata
        skip, first_group = self.rows, 0
        while first_group < meta.num_row_groups and skip >= meta.row_group(first_group).num_rows:
            skip -= meta.row_group(first_group).num_rows
            first_group += 1
        groups = list(range(first_group, meta.num_row_groups))
        if not groups:
            return
        wanted = list(dict.fromkeys(c for c in self._columns if c is not None))
        for batch in self._file.iter_batches(batch_size=4096, row_groups=groups, columns=wanted):
            texts, ids, labels = (
                self._values(batch.column(wanted.index(c))) if c is not None else [None] * batch.num_rows for c in self._columns
            )
            for text, rid, label in list(zip(texts, ids, labels))[skip:]:
                self.rows += 1
                yield RawRow(self.rows, rid, text, label=label)
            skip = 0

    def position(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def close(self) -> None:
        self._file.close()


READERS = {"csv": CsvReader, "jsonl": JsonlReader, "parquet": ParquetReader}


def open_reader(
    path: Path,
    text_column: str,
    id_column: str | None,
    position: dict[str, Any] | None = None,
    *,
    label_column: str | None = None,
    setting: str = CLASSIFY_SETTING,
    what: str = "input",
):
    """A reader of ``path`` (format from its ending), at ``position`` when resuming.

    ``label_column`` also reads the gold label (a task's files); ``setting`` is how errors name
    the setting of a column (``{role}`` is text, id or label); ``what`` names the file in them.
    """
    fmt = file_format(path, what)
    if not Path(path).is_file():
        raise UserError(f"{what} {path}: file not found")
    return READERS[fmt](Path(path), text_column, id_column, position, label_column=label_column, setting=setting)


def count_rows(path: Path, text_column: str, id_column: str | None) -> int:
    """Rows in the input (a quick pass for CSV and JSONL, the footer for Parquet)."""
    if file_format(path, "input") == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    reader = open_reader(path, text_column, id_column)
    try:
        if isinstance(reader, JsonlReader):
            # Counting lines is enough here and much cheaper than parsing every object.
            return sum(1 for line in reader._lines.lines() if line.strip())
        return sum(1 for _ in reader)
    finally:
        reader.close()


# ---------------------------------------------------------------------------- writers


@dataclass
class Column:
    name: str
    kind: str
    """``str``, ``int`` or ``float`` (all nullable)."""


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class StreamWriter:
    """CSV or JSONL rows appended to ``FILE.partial``; the position is its byte length."""

    def __init__(self, path: Path, fmt: str, columns: list[Column], position: dict[str, Any] | None = None) -> None:
        self.path, self.fmt, self.columns = path, fmt, columns
        self.partial = partial_path(path)
        if position is None:
            self.f = open(self.partial, "wb")
        else:
            if not self.partial.is_file():
                raise UserError(f"{self.partial}: missing, so the run cannot resume; pass --restart to start over")
            self.f = open(self.partial, "r+b")
            # Drop whatever a killed run wrote after its last committed chunk.
            self.f.truncate(position["offset"])
            self.f.seek(position["offset"])

    def _encode(self, rows: list[dict[str, Any]], header: bool) -> bytes:
        if self.fmt == "jsonl":
            return "".join(json.dumps({c.name: r.get(c.name) for c in self.columns}, ensure_ascii=False) + "\n" for r in rows).encode(
                "utf-8"
            )
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        if header:
            w.writerow([c.name for c in self.columns])
        w.writerows([["" if r.get(c.name) is None else r[c.name] for c in self.columns] for r in rows])
        return buf.getvalue().encode("utf-8")

    def write(self, rows: list[dict[str, Any]]) -> None:
        if rows or (self.fmt == "csv" and self.f.tell() == 0):
            self.f.write(self._encode(rows, header=self.fmt == "csv" and self.f.tell() == 0))

    def sync(self) -> dict[str, Any]:
        """Flush to disk and return the position to record."""
        self.f.flush()
        os.fsync(self.f.fileno())
        return {"offset": self.f.tell()}

    def seal(self) -> None:
        """Complete ``FILE.partial`` (a CSV always gets its header, even with no rows)."""
        self.write([])
        self.sync()
        self.f.close()


class ParquetWriter:
    """Parquet rows written as one part file per chunk under ``FILE.partial.parts/``;
    sealing merges the parts into ``FILE.partial`` (a Parquet file cannot be appended to,
    and one killed while open has no footer)."""

    def __init__(self, path: Path, fmt: str, columns: list[Column], position: dict[str, Any] | None = None) -> None:
        import pyarrow as pa

        self.path, self.columns = path, columns
        self.partial = partial_path(path)
        self.parts_dir = self.partial.with_name(self.partial.name + ".parts")
        types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
        self.schema = pa.schema([(c.name, types[c.kind]) for c in columns])
        self.parts = 0 if position is None else position["parts"]
        if position is None and self.parts_dir.exists():
            shutil.rmtree(self.parts_dir)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.parts_dir.iterdir():  # parts of chunks that were never committed
            if not stale.name.endswith(".parquet") or int(stale.name.split("-")[1].split(".")[0]) > self.parts:
                stale.unlink()

    def _part(self, n: int) -> Path:
        return self.parts_dir / f"part-{n:06d}.parquet"

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return
        table = pa.Table.from_pylist([{c.name: r.get(c.name) for c in self.columns} for r in rows], schema=self.schema)
        self.parts += 1
        tmp = self._part(self.parts).with_suffix(".tmp")
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self._part(self.parts))

    def sync(self) -> dict[str, Any]:
        _fsync_dir(self.parts_dir)
        return {"parts": self.parts}

    def seal(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with pq.ParquetWriter(self.partial, self.schema) as out:
            pending: list[Any] = []
            rows = 0
            for n in range(1, self.parts + 1):
                table = pq.read_table(self._part(n), schema=self.schema)
                pending.append(table)
                rows += table.num_rows
                if rows >= PARQUET_ROW_GROUP:
                    out.write_table(pa.concat_tables(pending), row_group_size=PARQUET_ROW_GROUP)
                    pending, rows = [], 0
            if pending or self.parts == 0:
                out.write_table(pa.concat_tables(pending) if pending else self.schema.empty_table(), row_group_size=PARQUET_ROW_GROUP)
        with open(self.partial, "rb") as f:
            os.fsync(f.fileno())


def open_writer(path: Path, columns: list[Column], what: str, position: dict[str, Any] | None = None):
    """A writer of ``path`` (format from its ending), reopened at ``position`` when resuming."""
    fmt = file_format(path, what)
    cls = ParquetWriter if fmt == "parquet" else StreamWriter
    return cls(Path(path), fmt, columns, position)


def discard_partial(path: Path) -> None:
    """Remove every in-progress file of ``path`` (a fresh start or --restart)."""
    part = partial_path(path)
    part.unlink(missing_ok=True)
    shutil.rmtree(part.with_name(part.name + ".parts"), ignore_errors=True)


def publish(path: Path) -> None:
    """Rename a sealed ``FILE.partial`` to ``FILE`` (a no-op when that already happened)."""
    part = partial_path(path)
    if part.exists():
        os.replace(part, path)
        _fsync_dir(path.parent)
