"""The kubectl module, the table formatter and the status parser, without clusters."""

from __future__ import annotations

import base64
import io
import json
import sys
import time

import pytest

from generator import kubectl, status
from generator.errors import InvalidInput
from generator.tables import clean, table


def test_clean_escapes_controls_and_cuts() -> None:
    assert clean("ok\x1b[31m\nrow\u202e\u2028") == "ok\\x1b[31m\\x0arow\\u202e\\u2028"
    assert clean("é ü 中文") == "é ü 中文"  # printable text stays as it is
    assert clean("x" * 500, 20) == "x" * 17 + "..."
    assert clean("\x00" * 100, 20) == "\\x00" * 4 + "\\..."  # escapes count towards the cut


def test_table_pads_all_but_the_last_column() -> None:
    assert table(("A", "BB", "C"), [("long", "x", "tail"), ("s", "yyy", "")]) == \
        "A     BB   C\nlong  x    tail\ns     yyy"


def test_parse_output_refuses_aliases_but_reads_json_and_yaml() -> None:
    assert kubectl.parse_output('{"kind": "Secret"}') == {"kind": "Secret"}
    assert kubectl.parse_output("kind: Secret\nmetadata: {name: a}\n") == {
        "kind": "Secret", "metadata": {"name": "a"}}
    with pytest.raises(ValueError, match="not kubectl"):
        kubectl.parse_output("a: &x [1]\nb: *x\n")
    with pytest.raises(ValueError):
        kubectl.parse_output("[" * 100_000)


def test_read_bounded_stops_one_byte_past_the_limit() -> None:
    assert kubectl.read_bounded(io.BytesIO(b"abc"), 3) == b"abc"
    assert kubectl.read_bounded(io.BytesIO(b"abcd"), 3) is None


def test_run_bounded_caps_output_and_time() -> None:
    code, out, err = kubectl.run_bounded([sys.executable, "-c", "print('hi')"], what="t",
                                         timeout=10)
    assert (code, out, err) == (0, b"hi\n", b"")
    flood = [sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"]
    with pytest.raises(kubectl.KubectlFailure, match="more than 100000 bytes"):
        kubectl.run_bounded(flood, what="t", timeout=10, limit=100_000)
    started = time.monotonic()
    with pytest.raises(kubectl.KubectlFailure, match="no answer within 1 s"):
        kubectl.run_bounded([sys.executable, "-c", "import time; time.sleep(60)"], what="t",
                            timeout=1)
    assert time.monotonic() - started < 10


def test_failure_reason_is_the_last_line_made_safe() -> None:
    assert kubectl.failure_reason(b"warn\nerror: \x1b[31mboom\n\n", 1) == "error: \\x1b[31mboom"
    assert kubectl.failure_reason(b"", 7) == "kubectl exited with status 7"


def secret(data: dict[str, str] | None, name: str = "mc-join-status") -> str:
    doc: dict[str, object] = {"kind": "Secret", "metadata": {"name": name}}
    if data is not None:
        doc["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return json.dumps(doc)


def test_parse_join_status_reads_status_and_msg_only() -> None:
    joined = status.parse_join_status("e", secret({"status": "Joined", "other": "x"}), "f")
    assert (joined.status, joined.message, joined.joined) == ("Joined", "", True)
    assert status.parse_join_status("e", secret({"status": "joined"}), "f").joined
    failed = status.parse_join_status("e", secret({"status": "Failed", "msg": "bad"}), "f")
    assert (failed.status, failed.message, failed.joined) == ("Failed", "bad", False)
    assert status.parse_join_status("e", secret(None), "f").status == "pending"
    raw = json.dumps({"kind": "Secret", "metadata": {"name": "mc-join-status"},
                      "data": {"status": "%%%", "msg": ["x"]}})
    odd = status.parse_join_status("e", raw, "f")
    assert (odd.status, odd.message) == ("(undecodable)", "(not text)")
    with pytest.raises(InvalidInput):
        status.parse_join_status("e", secret({"status": "Joined"}, name="mc-join"), "f")


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1m30s", 90), ("0.5s", 0.5)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert status.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0s", "-5s", "10d", "1h 2m", "30000h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        status.parse_duration(text)
