from __future__ import annotations

import pytest

from generator.errors import InvalidInput
from generator.fleet.loader import LoadLimits, _load_marked, _load_quick, load_yaml_bytes


def problems_of(raw: bytes, limits: LoadLimits | None = None) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        load_yaml_bytes(raw, "f.yaml", limits)
    return [p.as_text() for p in info.value.problems]


def test_marks_are_one_based_for_values_and_keys() -> None:
    doc = load_yaml_bytes(b"a: 1\nb:\n  - x: yes\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": True}]}
    assert doc.locate(("b", 0, "x")) == (3, 8)
    assert doc.marks[("b", 0, "x")] == (3, 8)  # read on the first locate
    assert doc.key_marks[("b", 0, "x")] == (3, 5)
    assert doc.locate(("b", 0, "x"), key=True) == (3, 5)
    assert doc.locate(("b", 0, "x", "missing")) == (3, 8)


def test_timestamps_stay_strings() -> None:
    assert load_yaml_bytes(b"d: 2024-01-01\n", "f.yaml").data == {"d": "2024-01-01"}


def test_duplicate_keys_are_collected_not_fatal() -> None:
    doc = load_yaml_bytes(b"a: 1\nb: 2\na: 3\nc:\n  d: 1\n  d: 2\n", "f.yaml")
    assert [p.as_text() for p in doc.problems] == [
        "f.yaml:3:1: error: $.a: duplicate key 'a' (first defined at line 1, column 1); "
        "remove one",
        "f.yaml:6:3: error: $.c.d: duplicate key 'd' (first defined at line 5, column 3); "
        "remove one"]
    assert doc.data == {"a": 1, "b": 2, "c": {"d": 1}}


def test_merge_keys_and_aliases_are_copied() -> None:
    doc = load_yaml_bytes(b"base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["c"] == {"x": 1, "y": 3}
    doc.data["c"]["x"] = 9
    assert doc.data["base"]["x"] == 1


@pytest.mark.parametrize(("raw", "expected"), [
    (b"", "f.yaml:1:1: error: file is empty"),
    (b"# only a comment\n", "f.yaml:1:1: error: file is empty"),
    (b"- a\n", "f.yaml:1:1: error: expected a mapping at the top of the document, found a list"),
    (b"just text\n", "found a scalar"),
    (b"a:\n\tb: 1\n", "f.yaml:2:1: error: invalid YAML: tab character"),
    (b"a: ok\nb: \xff\n", "f.yaml:2:4: error: file is not valid UTF-8 (byte 0xff)"),
    (b"a: 1\n---\nb: 2\n", "more than one YAML document"),
    (b"a: !vault secret/x\n", "f.yaml:1:4: error: unsupported YAML tag '!vault'"),
    (b"a: [1, 2\n", "f.yaml:2:1: error: invalid YAML"),
])
def test_bad_documents_become_located_problems(raw: bytes, expected: str) -> None:
    problems = problems_of(raw)
    assert len(problems) == 1
    assert expected in problems[0]


def test_alias_bomb_is_bounded() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    raw = ("\n".join(lines) + "\n").encode()
    assert "alias bomb" in problems_of(raw)[0]


def test_depth_and_size_limits_are_configurable() -> None:
    deep = b"a: " + b"[" * 30 + b"]" * 30 + b"\n"
    assert "nesting deeper than 10 levels" in problems_of(deep, LoadLimits(max_depth=10))[0]
    too_big = problems_of(b"a: 123456789\n", LoadLimits(max_bytes=10))
    assert "more than the limit of 10" in too_big[0]


def test_limits_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K10FLEET_MAX_DEPTH", "7")
    assert LoadLimits.from_env().max_depth == 7


def test_colliding_keys_one_and_true_are_reported_not_crashing() -> None:
    doc = load_yaml_bytes(b"a:\n  1: x\n  true: y\n", "f.yaml")
    assert [p.line for p in doc.problems] == [3]
    assert "duplicate key True (first defined at line 2, column 3)" in doc.problems[0].message


@pytest.mark.parametrize(("raw", "expected"), [
    (b"a: !!int abc\n", "f.yaml:1:4: error: cannot read 'abc' as int"),
    (b"a: !!float x\n", "f.yaml:1:4: error: cannot read 'x' as float"),
    (b"a: 1\nb: \x00\n", "f.yaml:2:4: error: invalid YAML: character U+0000 is not allowed"),
])
def test_values_that_cannot_be_built_are_located(raw: bytes, expected: str) -> None:
    assert problems_of(raw)[0].startswith(expected)


def test_alias_of_a_long_string_is_charged_by_size() -> None:
    big = "x" * 100_000
    raw = (f"a: &a {big}\nb: [" + ", ".join(["*a"] * 200) + "]\n").encode()
    assert "alias bomb" in problems_of(raw)[0]
    small = (b"a: &a xx\nb: [" + b", ".join([b"*a"] * 200) + b"]\n")
    assert load_yaml_bytes(small, "f.yaml").data["b"] == ["xx"] * 200


def test_base_60_numbers_stay_strings_like_helm_reads_them() -> None:
    assert load_yaml_bytes(b"t: 10:30\nn: 10\n", "f.yaml").data == {"t": "10:30", "n": 10}


QUICK_TEXT = (b"base: &b {x: 1, y: yes}\nc:\n  <<: *b\n  y: 3\nt: 10:30\nd: 2024-01-01\n"
              b"n: ~\nf: 1.5\ne: 1e3\nq: 'on'\nl: [*b, on, 0x1F, \"1e3\", ! 12]\nm: {1: a, n: b}\n")


def test_the_quick_pass_means_what_the_marked_pass_means() -> None:
    """Text ryaml may not read loads without marks, and gets them only when asked."""
    quick = load_yaml_bytes(QUICK_TEXT, "f.yaml")
    marked = _load_marked(QUICK_TEXT, "f.yaml", LoadLimits())
    assert quick.remark is not None and not quick.marks  # the quick pass was taken
    assert repr(quick.data) == repr(marked.data)
    assert quick.data["l"][1:] == [True, 31, "1e3", 12] and quick.data["e"] == "1e3"
    assert quick.locate(("c", "y")) == marked.locate(("c", "y")) == (4, 6)
    assert quick.locate(("m", "1"), key=True) == marked.locate(("m", "1"), key=True)


@pytest.mark.parametrize("raw", [
    b"a: 1\nb: yes\na: 2\n",  # a duplicate key: a problem, located
    b"a: yes\nb: " + b"[" * 12 + b"]" * 12 + b"\n",  # deeper than the limit
    b"a: yes\nb: *nowhere\n",
    b"a: yes\nb: !!int x\n",
])
def test_what_the_marked_pass_reports_is_never_read_quickly(raw: bytes) -> None:
    limits = LoadLimits(max_depth=10)
    assert _load_quick(raw, "f.yaml", limits) is None
    try:
        marked = _load_marked(raw, "f.yaml", limits)
    except InvalidInput as e:
        assert problems_of(raw, limits) == [p.as_text() for p in e.problems]
    else:
        assert marked.problems and load_yaml_bytes(raw, "f.yaml", limits).problems == \
            marked.problems
