"""The fast YAML path must mean exactly what the YAML 1.1 reference loader means (PyYAML plus
Go YAML's y/n booleans, as kubectl reads them)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import yaml

from generator import fastyaml, yaml11
from generator.yamllimits import TooLarge
from tests.unit.test_yamlout import HOSTILE

TOKENS = [
    "yes", "No", "ON", "off", "y", "N", "true", "False", "null", "~", "1", "-2", "0", "3.25",
    "1e3", "1.0e3", "0777", "0o17", "0x1F", "1_000", "10:30", "190:20:30", "2024-01-01",
    "2024-01-01T10:00:00Z", "+1", ".5", "-.inf", ".NaN", "99999999999999999999", "00",
    "7.5.2", "1.2.3.4", "6.5", "01.2.3", "plain", "two words", "edge-1",
    "https://h.example.com/k10", "a:b", "=", "<<", "env=prod", "a==b", "= x", "x =",
    "'quoted yes'", '"double 1e3"', '"esc\\x85aped"', "!!str 5", "&a x", "*a", "|\n  block yes",
    ">-\n  folded 10:30", "[yes, 1e3, 3]", "{a: on, b: 2}", "é😀", "a\u2028b", "@at", "`tick",
    "+.0", "_1", "+.2_", ".inF", "-.Inf", ".nAN", "1e+3", "+.5", "._5", "0x_1", "+0777", "-0",
    "1.50", "\t4", "'1'", '"true"', '"on"', "'2024-01-01'", ":16", "a:1", "0b11", "+12",
]


def both(text: str) -> tuple[Any, Any]:
    try:
        reference: Any = yaml.load(text, Loader=yaml11.KubeLoader)
    except yaml.YAMLError as e:
        reference = ("error", type(e).__name__)
    try:
        fast: Any = fastyaml.load(text)
    except yaml.YAMLError as e:
        fast = ("error", type(e).__name__)
    return reference, fast


@pytest.mark.parametrize("token", TOKENS)
def test_token_in_every_position(token: str) -> None:
    for template in ("k: {t}\n", "- {t}\n", "{t}: v\n", "m:\n  k: {t}\n  j: 1\n",
                     "l:\n- x\n- {t}\n", "k: {t} # note yes 1e3\n"):
        text = template.format(t=token)
        reference, fast = both(text)
        assert repr(fast) == repr(reference), (text, reference, fast)


def test_random_documents_agree() -> None:
    rng = random.Random(2026)
    for _ in range(3000):
        keys = rng.sample(TOKENS, 3)
        lines = [f"{rng.choice(['k', 'key', 'a-b', 'x.y'])}{i}: {rng.choice(TOKENS)}"
                 for i, _ in enumerate(keys)]
        text = "\n".join(lines) + "\n"
        reference, fast = both(text)
        assert repr(fast) == repr(reference), (text, reference, fast)


RISKY_ALPHABET = "_0123456789.+-eExXoObB:aAnNyYsS~=<! '\"\t\r#"
TEMPLATES = ("k: {t}\n", "- {t}\n", "{t}: v\n", "[{t}, 1]\n", "{{a: {t}}}\n", "k: '{t}'\n",
             'k: "1"\nj: {t}\n')


def test_random_number_like_tokens_agree() -> None:
    """Short tokens over the characters where YAML 1.1, YAML 1.2 and the fast parser's own
    number reading part ways (a wider run of 500,000 documents found no disagreement)."""
    rng = random.Random(7)
    taken = 0
    for _ in range(1500):
        token = "".join(rng.choice(RISKY_ALPHABET) for _ in range(rng.randint(1, 6)))
        for template in TEMPLATES:
            text = template.format(t=token)
            taken += fastyaml.fast_path_safe(text)
            reference, fast = both(text)
            assert repr(fast) == repr(reference), (text, reference, fast)
    assert taken > 1500  # the fast path was really exercised


@pytest.mark.parametrize("text", ["# c\rkey: yes\n", "# c\x85key: yes\n", "# c\u2028k: 1\n",
                                  "# a\n# b\rk: v\n", "# a\n#\n---\nk: on\n",
                                  "a: it's\rb: yes\rc: it's\n", 'a: "x\rb: on\r"\n'])
def test_a_line_break_inside_a_header_comment_is_content(text: str) -> None:
    reference, fast = both(text)
    assert repr(fast) == repr(reference) and reference not in (None, ("error", "ScannerError"))


def test_quoted_look_alikes_keep_the_fast_path() -> None:
    text = 'metadata:\n  annotations:\n    wave: "1"\n    enabled: "true"\n    on: "yes"\n'
    assert fastyaml.fast_path_safe(text.replace("    on:", "    x:"))
    assert not fastyaml.fast_path_safe(text)  # a plain `on` key is a boolean to YAML 1.1
    assert fastyaml.load(text)["metadata"]["annotations"][True] == "yes"


def test_hostile_strings_from_our_emitter_agree() -> None:
    from generator.render.yamlout import dump

    for start in range(0, len(HOSTILE), 5):
        chunk = HOSTILE[start:start + 5]
        text = dump({"data": {f"k{i}": s for i, s in enumerate(chunk)}, "list": list(chunk)})
        reference, fast = both(text)
        assert repr(fast) == repr(reference)


def test_generated_files_take_the_fast_path() -> None:
    from generator.render.yamlout import dump

    text = "# Generated: K10 7.5.2 on cluster a\n" + dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mc-join-config"},
         "data": {"cluster-name": "edge-1", "allow": "true", "n": 3}})
    assert fastyaml.fast_path_safe(text)
    assert not fastyaml.fast_path_safe("a: yes\n")


def test_y_and_n_are_booleans_like_kubectl_reads_them() -> None:
    assert fastyaml.load("a: n\nb: Y\nc: 'n'\n") == {"a": False, "b": True, "c": "n"}


def test_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for index, name in enumerate("bcdefg"):
        previous = "abcdefg"[index]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 10) + "]")
    with pytest.raises(TooLarge):
        fastyaml.load("\n".join(lines) + "\n")



def test_fleet_fast_path_equals_the_marked_loader() -> None:
    from generator.fleet.loader import LoadLimits, _load_marked, load_yaml_bytes
    from tests.conftest import REPO

    raw = (REPO / "fleet.yaml").read_bytes()
    fast = load_yaml_bytes(raw, "f.yaml")
    marked = _load_marked(raw, "f.yaml", LoadLimits())
    assert fast.remark is not None  # the fast path was taken
    assert repr(fast.data) == repr(marked.data)
    risky = load_yaml_bytes(raw + b"extra: 1e3\n", "f.yaml")
    assert risky.data["extra"] == "1e3"  # PyYAML's meaning: the quick pass, not ryaml


def test_scalars_that_do_not_convert_stay_text_as_in_go_yaml() -> None:
    data = fastyaml.load("a: 0b_\nb: 2024-13-45\nc: 0x_\nd: 1" + "9" * 5000 + "\ne: 0b11\n")
    assert data["a"] == "0b_" and data["b"] == "2024-13-45" and data["c"] == "0x_"
    assert data["d"] == "1" + "9" * 5000 and data["e"] == 3


@pytest.mark.parametrize("text", [
    ' {a"b: 1e3, "\\x41": null}\n',  # a quote in a plain scalar paired with a real one
    'a b: ["a\n\n  b", 1e3, "e\\"s"]\n',  # a string on several lines: its end and the next
    ' ["a\\\n b", 1e3, "\\N"]\n',  # an escaped line break
    ' {k-1: "a\nb", 1e3: "\\u00e9"}\n',
    'k: ["a\n  ", 1e3, ",", "\n  z"]\n',  # each line's quotes pair up, and still hide 1e3
    "a: [x \"b, 1e3, c\" d]\n",
    'k: ["a\n  ", *x, "b"]\n',  # an alias hidden the same way
])
def test_quotes_that_cannot_be_set_aside_line_by_line_are_declined(text: str) -> None:
    """Found by a fuzz run: tokens between two quotes that are not one string were set
    aside as if they were, and the fast parser read a YAML 1.1 string as a number."""
    reference, fast = both(text)
    assert repr(fast) == repr(reference)
    assert not fastyaml.fast_path_safe(text)


@pytest.mark.parametrize("text", ["true: 1\n1: 2\n", "1: a\n1.0: b\n", "0: a\nfalse: b\n",
                                  "m:\n  - 1: x\n"])
def test_a_number_as_key_is_declined(text: str) -> None:
    """Python merges 1, 1.0 and True as keys; PyYAML calls that a duplicate key, and the
    fast parsers would silently keep one: such documents go to PyYAML."""
    reference, fast = both(text)
    assert repr(fast) == repr(reference)
    assert not fastyaml.fast_path_safe(text)


DASHES = ("-", "- ", "-\t")


def _structure(rng: random.Random, depth: int, indent: int) -> str:
    """Random block and flow YAML, valid or not, over the syntax the parsers part ways on."""
    atoms = ["a", "b c", "x:y", "k-1", "", "'q'", '"d"', '"e\\"s"', "'it''s'", '"\\t"',
             '"\\/"', '"\\x41"', "1", "-2", "3.5", "7.5.2", "true", "null", "~", "é", "-",
             "?", "|", "|-", ">", "[", "]", "{", "}", ",", "[a]", "{a: b}", "{a: }", ":",
             "::", "a:", "- a", "? a", ":a", "a :b", "a#b", "a #b", "\t", "\r", "x\x01y",
             "k" * 1030, "a: b: c", "'a\n  b'", '"a\n\n  b"', "a\n  b", "#c"]
    pad = " " * indent
    choice = rng.random()
    if depth > 2 or choice < 0.3:
        return " " + rng.choice(atoms)
    if choice < 0.6:
        return "".join(f"\n{pad}{rng.choice(['k', 'a b', '1', '-', '?', *atoms])}:"
                       + _structure(rng, depth + 1, indent + rng.choice([0, 1, 2, 4]))
                       for _ in range(rng.randint(1, 3)))
    if choice < 0.85:
        return "".join(f"\n{pad}{rng.choice(DASHES)}"
                       + _structure(rng, depth + 1, indent + rng.choice([0, 2]))
                       for _ in range(rng.randint(1, 3)))
    inner = ", ".join(rng.choice(atoms) for _ in range(rng.randint(0, 3)))
    return f" [{inner}]" if rng.random() < 0.5 else f" {{{inner}}}"


def test_random_structures_agree_on_both_fast_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fast parser is held to PyYAML on documents it takes (a run of 1,000,000 such
    documents found no disagreement); both are really exercised."""
    taken: dict[str, int] = {"yaml_rs": 0, "ryaml": 0}
    real_subset, real_ryaml = fastyaml._subset_loads, fastyaml._fast_parser

    class Counting:
        @staticmethod
        def loads(text: str) -> Any:
            taken["ryaml"] += 1
            return real_ryaml.loads(text)

    def subset(text: str, **options: Any) -> Any:
        taken["yaml_rs"] += 1
        return real_subset(text, **options)

    monkeypatch.setattr(fastyaml, "_fast_parser", Counting)
    monkeypatch.setattr(fastyaml, "_subset_loads", subset)
    rng = random.Random(11)
    for _ in range(6000):
        text = _structure(rng, 0, 0).lstrip("\n") + rng.choice(["\n", "", " \n", "\n# e\n"])
        text = ("# head\n" + text) if rng.random() < 0.2 else text
        reference, fast = both(text)
        assert repr(fast) == repr(reference), text
    assert taken["yaml_rs"] > 800 and taken["ryaml"] > 800


@pytest.mark.parametrize("text", ["a:\tb\n", "a: b\r\nc: d\r\n", "a: x\x01y\n", "a: x\x00\n",
                                  'a: "\\/"\n', "a: [b]\n", "a: {b: c}\n", "a: |\n  b\n",
                                  "a: >\n  b\n", "? a\n: b\n", ": a\n", "- : a\n", "a: é\n"])
def test_outside_plain_syntax_saphyr_is_not_used(text: str) -> None:
    """Tabs, carriage returns, control characters, backslashes, flow collections, block
    scalars, complex and empty keys, non-ASCII text: syntax where saphyr and libyaml differ
    (saphyr accepts a NUL, a control character, an empty key) stays with ryaml or PyYAML."""
    assert not fastyaml._plain_syntax("\n" + text)
    reference, fast = both(text)
    assert repr(fast) == repr(reference)


def test_a_rendered_application_takes_the_subset_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import REPO

    calls: list[str] = []
    real = fastyaml._subset_loads
    monkeypatch.setattr(fastyaml, "_subset_loads",
                        lambda text, **options: (calls.append(text), real(text, **options))[1])
    for path in sorted((REPO / "output" / "argocd").glob("*.yaml")):
        text = path.read_text()
        data = fastyaml.load(text)
        assert repr(data) == repr(yaml.load(text, Loader=yaml11.KubeLoader))
    assert len(calls) == len(list((REPO / "output" / "argocd").glob("*.yaml"))) > 1


def test_quotes_paired_line_by_line() -> None:
    from generator.yamllimits import quotes_paired, set_aside

    assert quotes_paired('k: "a #b" # it\'s\n- \'x\'\n{"a": "b", c: [\'d\']}\n')
    assert set_aside('[ "a",1e3]') == "[  ,1e3]"  # the bracket and comma stay
    assert not quotes_paired("k: it's\n")  # an apostrophe in a plain scalar
    assert not quotes_paired('k: "a\n  b"\n')  # a string on two lines
    assert not quotes_paired('k: [x "b, 1, c" d]\n')  # a quote inside a plain scalar


SUPERSET_ALPHABET = "0123456789.+-_yYeEsSnNoOfF=: \n\t\x0b\x1c,[]{}ax#'\""


def _superset_search() -> Any:
    return fastyaml._compiled_superset()


def test_the_re2_scan_finds_every_risky_token_the_exact_scan_finds() -> None:
    """Wherever ``_RISKY_TOKEN`` matches, the RE2 superset does too (so that its silence
    proves a text clean): 200,000 random texts over the characters that matter, and every
    token of the corpus in every position."""
    search = _superset_search()
    rng = random.Random(5)
    hits = 0
    for _ in range(200_000):
        text = "\n" + "".join(rng.choice(SUPERSET_ALPHABET) for _ in range(rng.randint(1, 14)))
        if fastyaml._RISKY_TOKEN.search(text):
            hits += 1
            assert search(text.encode()) is not None, repr(text)
    for token in TOKENS:
        for template in ("k: {t}\n", "- {t}\n", "{t}: v\n", "[{t}, 1]\n", "{{a: {t}}}\n"):
            text = "\n" + template.format(t=token)
            if text.isascii() and fastyaml._RISKY_TOKEN.search(text):
                assert search(text.encode()) is not None, repr(text)
    assert hits > 50_000


def test_the_re2_scan_clears_the_numbers_of_a_rendered_manifest() -> None:
    search = _superset_search()
    assert search(b"\nspec:\n  retry:\n    factor: 2\n    limit: 10\n  port: 8080\n") is None
    for risky in (b"\nk: 1e3\n", b"\nk: 012\n", b"\nk: yes\n", b"\n1: a\n", b"\nk: .5\n"):
        assert search(risky) is not None


def test_the_re2_scan_starts_after_a_small_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """RE2 is imported only once a process has looked at 200 documents."""
    scan = fastyaml._SupersetScan()
    body = "\nkind: ConfigMap\ndata:\n  a: b\n"
    assert [scan.clears(body) for _ in range(199)] == [False] * 199
    assert scan.clears(body) and not scan.clears("\nk: yes\n")
    assert not scan.clears("\nk: é\n")  # not ASCII: the exact scan decides
