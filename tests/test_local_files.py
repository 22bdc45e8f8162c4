"""release/local_files.py: the one reader every operator file goes through (regular, bounded, UTF-8, shallow)."""

from __future__ import annotations

import os
import re

import pytest

from release.local_files import (
    MAX_NESTING,
    InputFileError,
    append_text,
    check_yaml_shape,
    json_files,
    load_json,
    nesting_depth,
    read_text,
)


def test_reads_a_regular_utf8_file_within_the_bound(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo", encoding="utf-8")
    assert read_text(path, 6, "fix") == "héllo"
    with pytest.raises(InputFileError, match="larger than 0 KiB"):
        read_text(path, 5, "fix")


def test_missing_file_passes_through_as_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "none", 10, "fix")


@pytest.mark.parametrize("make, kind", [(os.mkfifo, "a FIFO"), (os.mkdir, "a directory")])
def test_refuses_what_is_not_a_regular_file(tmp_path, make, kind):
    path = tmp_path / "x"
    make(path)
    with pytest.raises(InputFileError, match=f"is {kind}, not a regular file") as caught:
        read_text(path, 10, "fix")
    assert str(path) in str(caught.value)


def test_refuses_a_device_without_reading_it():
    with pytest.raises(InputFileError, match="is a device"):
        read_text(__import__("pathlib").Path("/dev/zero"), 10, "fix")


def test_invalid_utf8_names_the_offset(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"ok\xff")
    with pytest.raises(InputFileError, match="not UTF-8 text \\(invalid byte at offset 2\\)"):
        read_text(path, 10, "fix")


def test_append_refuses_a_fifo_and_appends_to_a_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputFileError, match="FIFO"):
        append_text(tmp_path / "fifo", "x\n", "fix")
    append_text(tmp_path / "log", "a\n", "fix")
    append_text(tmp_path / "log", "b\n", "fix")
    assert (tmp_path / "log").read_text() == "a\nb\n"


def test_json_files_lists_sorted_and_stops_past_the_cap(tmp_path):
    for name in ("b.json", "a.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    assert [path.name for path in json_files(tmp_path)] == ["a.json", "b.json"]
    with pytest.raises(InputFileError, match="holds more than 1 \\*.json files"):
        json_files(tmp_path, limit=1)


def test_nesting_depth_counts_without_recursion():
    deep: list = []
    for _ in range(10000):
        deep = [deep]
    assert nesting_depth({"a": [1, {"b": []}]}) == 4
    assert nesting_depth(deep) > MAX_NESTING


def test_json_deeper_than_the_bound_is_refused_even_past_the_recursion_limit():
    with pytest.raises(InputFileError, match=f"nests deeper than {MAX_NESTING} levels"):
        load_json("[" * MAX_NESTING + "[]" + "]" * MAX_NESTING, "x.json", "fix")
    with pytest.raises(InputFileError, match="nests deeper"):
        load_json("[" * 100000 + "]" * 100000, "x.json", "fix")
    assert load_json("[" * MAX_NESTING + "]" * MAX_NESTING, "x.json", "fix") is not None


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: &x 1\nb: *x\n", "YAML alias (*x) at line 2"),
        ("a: &x\n  k: 1\nb:\n  <<: *x\n", "YAML alias (*x)"),
        ("a: &a [*a]\n", "YAML alias (*a)"),
        ("a: " + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + "\n", "nests deeper"),
        ("a: [\n", "is not valid YAML"),
    ],
)
def test_yaml_shape_refuses_aliases_and_deep_nesting(text, message):
    with pytest.raises(InputFileError, match=re.escape(message)):
        check_yaml_shape(text, "stack.yaml", "fix")


def test_yaml_shape_accepts_an_ordinary_stack_file():
    check_yaml_shape("config:\n  p:release:\n    a: [1, 2]\n    b: {c: d}\n", "stack.yaml", "fix")


def test_input_files_is_the_file_or_the_capped_json_listing_of_a_directory(tmp_path):
    from release.local_files import input_files, json_items

    single = tmp_path / "one.json"
    single.write_text("{}")
    assert input_files(single, "fill it", "name one") == [single]
    with pytest.raises(InputFileError, match="does not exist; name one"):
        input_files(tmp_path / "absent", "fill it", "name one")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="holds no \\*.json files; fill it"):
        input_files(empty, "fill it", "name one")
    (empty / "b.json").write_text("{}")
    (empty / "a.json").write_text("{}")
    assert [p.name for p in input_files(empty, "fill it", "name one")] == ["a.json", "b.json"]
    with pytest.raises(InputFileError, match="holds more than 1 \\*.json files"):
        input_files(empty, "fill it", "name one", limit=1)
    assert json_items({"a": 1}, single) == [({"a": 1}, str(single))]
    assert json_items([1, 2], single) == [(1, f"{single}[0]"), (2, f"{single}[1]")]
