import gzip

import polars as pl
import pytest

from lmrec.data.readers import ColumnMapping, read_interactions, read_items
from lmrec.errors import DataValidationError


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "csv.gz", "jsonl.gz"])
def test_every_format_reads_the_same_events(tmp_path, fmt):
    df = pl.DataFrame({"user_id": ["a", "b", "a"], "item_id": [1, 2, 3], "timestamp": [10, 20, 30]})
    path = tmp_path / f"events.{fmt}"
    base = fmt.removesuffix(".gz")
    if base == "csv":
        df.write_csv(path if fmt == base else tmp_path / "x.csv")
    elif base == "tsv":
        df.write_csv(path, separator="\t")
    elif base == "parquet":
        df.write_parquet(path)
    else:
        df.write_ndjson(path if fmt == base else tmp_path / "x.jsonl")
    if fmt.endswith(".gz"):
        src = tmp_path / ("x.csv" if base == "csv" else "x.jsonl")
        path.write_bytes(gzip.compress(src.read_bytes()))
    out = read_interactions(path)
    assert out["user"].to_list() == ["a", "b", "a"]
    assert out["item"].to_list() == [1, 2, 3]
    assert out["timestamp"].to_list() == [10, 20, 30]
    assert out["_row"].to_list() == [1, 2, 3]


def test_column_mapping_and_iso_timestamps(tmp_path):
    path = write(tmp_path / "e.csv", "who,what,when,stars\nx,7,2020-01-01T00:00:00,4\ny,8,2020-01-02,5\n")
    out = read_interactions(path, ColumnMapping(user="who", item="what", timestamp="when", rating="stars"))
    assert out["timestamp"].to_list() == [1577836800, 1577923200]
    assert out["rating"].to_list() == [4.0, 5.0]


def test_missing_column_names_file_column_and_what_exists(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,item_id,time\n1,2,3\n")
    with pytest.raises(DataValidationError) as err:
        read_interactions(path, ColumnMapping(timestamp="ts"))
    msg = str(err.value)
    assert "e.csv" in msg and "'ts'" in msg and "time" in msg


def test_undetectable_column_says_how_to_map_it(tmp_path):
    path = write(tmp_path / "e.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(DataValidationError, match="--user-col"):
        read_interactions(path)


def test_non_numeric_timestamp_names_row_and_column(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,item_id,timestamp\n1,2,100\n1,3,yesterday\n")
    with pytest.raises(DataValidationError) as err:
        read_interactions(path)
    assert err.value.row == 2 and err.value.column == "timestamp"
    assert "yesterday" in str(err.value) and "row 2" in str(err.value)


def test_missing_id_names_row(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,item_id,timestamp\n1,2,100\n,3,101\n")
    with pytest.raises(DataValidationError) as err:
        read_interactions(path)
    assert err.value.row == 2 and err.value.column == "user_id"


def test_bad_rating_names_row(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,item_id,timestamp,rating\n1,2,100,4\n1,3,101,five\n")
    with pytest.raises(DataValidationError) as err:
        read_interactions(path)
    assert err.value.row == 2 and err.value.column == "rating"


@pytest.mark.parametrize("text,match", [("", "empty"), ("user_id,item_id,timestamp\n", "no data rows")])
def test_empty_files(tmp_path, text, match):
    with pytest.raises(DataValidationError, match=match):
        read_interactions(write(tmp_path / "e.csv", text))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataValidationError, match="not found"):
        read_interactions(tmp_path / "nope.csv")
    with pytest.raises(DataValidationError, match="unsupported file type"):
        read_interactions(write(tmp_path / "e.xlsx", "x"))


def test_integer_looking_ids_become_integers_but_others_stay_text(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,item_id,timestamp\n007,B00X,1\n8,B00Y,2\n")
    out = read_interactions(path)
    # "007" is not the canonical text of 7, so ids stay strings: no two ids may collide.
    assert out["user"].dtype == pl.String and out["user"].to_list() == ["007", "8"]
    assert out["item"].to_list() == ["B00X", "B00Y"]


def test_items_duplicate_id_is_an_error_with_rows(tmp_path):
    path = write(tmp_path / "items.csv", "item_id,title\n1,a\n2,b\n1,c\n")
    with pytest.raises(DataValidationError) as err:
        read_items(path)
    assert "rows [1, 3]" in str(err.value)
