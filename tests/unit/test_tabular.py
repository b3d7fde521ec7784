"""Readers and writers of classify: every format, resume positions, bad bytes."""

import json
from itertools import islice

import pytest

from dispute_classifier.core import tabular
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.tabular import Column

COLS = [Column("id", "str"), Column("score", "float"), Column("n", "int")]


def test_csv_reader_rows_offsets_and_resume(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(
        b"\xef\xbb\xbfid,text\n"  # a BOM, as Excel writes it
        b"a,hello\n"
        b'b,"two\nlines"\n'
        b"c,bad \xff byte\n"
        b"d\n"
        b"e,last\n"
    )
    reader = tabular.open_reader(path, "text", "id")
    first = list(islice(iter(reader), 2))
    pos = reader.position()
    reader.close()
    assert [(r.row, r.id, r.text) for r in first] == [(2, "a", "hello"), (3, "b", "two\nlines")]
    # Resuming at the recorded position gives exactly the rest, with the same row numbers.
    rest = list(tabular.open_reader(path, "text", "id", pos))
    assert [(r.row, r.id) for r in rest] == [(4, "c"), (5, "d"), (6, "e")]
    assert tabular.bad_bytes(rest[0].text) == "byte 0xff at character 5"
    assert tabular.printable(rest[0].text) == "bad \ufffd byte"
    assert rest[1].text is None  # a short row: the text is missing, not empty
    assert tabular.count_rows(path, "text", "id") == 5


def test_reader_errors_name_the_column(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("message,ticket\nhi,1\n", encoding="utf-8")
    with pytest.raises(UserError, match="no column 'text'; columns found: message, ticket. Set --text-column"):
        tabular.open_reader(path, "text", None)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(UserError, match="empty file"):
        tabular.open_reader(tmp_path / "empty.csv", "text", None)
    with pytest.raises(UserError, match="unknown file type '.txt'"):
        tabular.open_reader(tmp_path / "in.txt", "text", None)


def test_jsonl_reader_reports_malformed_lines_and_resumes(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"id": 1, "text": "ok"}\n'
        b"\n"
        b"{not json\n"
        b'["a list"]\n'
        b'{"id": 5, "text": 7}\n'
        b'{"id": 6, "text": ["x"]}\n'
        b'{"id": 7, "text": "caf\xe9"}\n'
        b'{"id": 8}\n'
    )
    reader = tabular.open_reader(path, "text", "id")
    rows = list(islice(iter(reader), 1))
    pos = reader.position()
    rows += list(tabular.open_reader(path, "text", "id", pos))
    got = [(r.row, r.id, r.text, r.problem[0] if r.problem else None) for r in rows]
    assert got[0] == (1, "1", "ok", None)
    assert [g[0] for g in got] == [1, 3, 4, 5, 6, 7, 8]  # line numbers; the blank line is skipped
    assert got[1][3] == got[2][3] == got[4][3] == "malformed"
    assert got[3][:3] == (5, "5", "7")  # numbers are written out as text
    assert got[5][3] == "not_utf8"
    assert got[6][2] is None
    bad_first = tmp_path / "b.jsonl"
    bad_first.write_text('{"message": "hi"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 1 has no field 'text'"):
        list(tabular.open_reader(bad_first, "text", None))


def test_parquet_reader_resumes_inside_a_row_group(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "in.parquet"
    table = pa.table({"text": [f"t{i}" if i != 4 else None for i in range(10)], "id": list(range(10)), "raw": [b"ok", b"\xff"] * 5})
    pq.write_table(table, path, row_group_size=3)
    reader = tabular.open_reader(path, "text", "id")
    first = list(islice(iter(reader), 5))
    rest = list(tabular.open_reader(path, "text", "id", reader.position()))
    assert [r.row for r in first + rest] == list(range(1, 11))
    assert [r.id for r in rest] == ["5", "6", "7", "8", "9"]
    assert first[4].text is None
    binary = list(tabular.open_reader(path, "raw", None))
    assert tabular.bad_bytes(binary[1].text) == "byte 0xff at character 1"
    assert tabular.count_rows(path, "text", None) == 10


@pytest.mark.parametrize("ending", [".csv", ".jsonl", ".parquet"])
def test_writer_drops_uncommitted_rows_on_resume(tmp_path, ending):
    if ending == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"out{ending}"
    w = tabular.open_writer(path, COLS, "output")
    w.write([{"id": "a", "score": 0.5, "n": 1}])
    pos = w.sync()
    w.write([{"id": "lost", "score": None, "n": 2}])  # written but never committed
    w.sync()
    w = tabular.open_writer(path, COLS, "output", pos)
    w.write([{"id": "b", "score": None, "n": 3}])
    w.sync()
    w.seal()
    tabular.publish(path)
    assert not tabular.partial_path(path).exists()
    if ending == ".csv":
        assert path.read_text(encoding="utf-8") == "id,score,n\na,0.5,1\nb,,3\n"
    elif ending == ".jsonl":
        assert [json.loads(line) for line in path.read_text().splitlines()] == [
            {"id": "a", "score": 0.5, "n": 1},
            {"id": "b", "score": None, "n": 3},
        ]
    else:
        import pyarrow.parquet as pq

        assert pq.read_table(path).to_pylist() == [{"id": "a", "score": 0.5, "n": 1}, {"id": "b", "score": None, "n": 3}]
        tabular.discard_partial(path)
        assert not any(p.name.endswith(".parts") for p in tmp_path.iterdir())


@pytest.mark.parametrize("ending", [".csv", ".parquet"])
def test_empty_output_is_still_a_valid_file(tmp_path, ending):
    if ending == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"out{ending}"
    w = tabular.open_writer(path, COLS, "output")
    w.seal()
    tabular.publish(path)
    if ending == ".csv":
        assert path.read_text() == "id,score,n\n"
    else:
        import pyarrow.parquet as pq

        assert pq.read_table(path).num_rows == 0 and pq.read_table(path).column_names == ["id", "score", "n"]
