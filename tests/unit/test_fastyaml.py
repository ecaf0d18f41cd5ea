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
