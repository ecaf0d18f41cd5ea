"""Large renders use a second process for half the secondaries and half the file writes:
the bytes must be the same as with one process, and a failing helper must change nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks.make_fleet import make_fleet
from generator import output
from generator.errors import EnvironmentFailure
from generator.output import FileSpec, write_tree
from generator.render import tree as render
from tests.conftest import run_cli, tree_bytes

SIZE = render.PARALLEL_FROM + 101  # an odd count: the halves differ in size


@pytest.fixture(scope="module")
def big_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import yaml

    path = tmp_path_factory.mktemp("big") / "fleet.yaml"
    data = make_fleet(SIZE)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def render_with(jobs: str, fleet: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict[
        str, bytes]:
    monkeypatch.setenv("K10FLEET_JOBS", jobs)
    result = run_cli("render", fleet, "-o", out)
    assert result.exit_code == 0, result.output
    return tree_bytes(out)


def log_pids(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, log: Path,
             what: str = "") -> None:
    """Each process that calls ``owner.name`` appends ``[<what> ]<pid>`` to ``log`` (a file,
    because a forked helper shares no memory)."""
    real = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        with log.open("a") as handle:
            handle.write(f"{what} {os.getpid()}\n" if what else f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)


def record_pids(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Each process that renders a part of the secondaries or writes a share of the files
    appends ``<what> <pid>`` to ``log``."""
    log_pids(monkeypatch, render, "_render_part", log, "render")
    log_pids(monkeypatch, output, "_write_files", log, "write")


def test_two_processes_write_the_same_bytes_as_one(big_fleet: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    one = render_with("1", big_fleet, tmp_path / "one", monkeypatch)
    log = tmp_path / "pids.log"
    record_pids(monkeypatch, log)
    two = render_with("2", big_fleet, tmp_path / "two", monkeypatch)
    helpers = [line.split() for line in log.read_text().splitlines()]
    parent = str(os.getpid())
    assert sorted(what for what, pid in helpers if pid != parent) == ["render", "write"]
    assert one == two
    modes = {p.relative_to(tmp_path / "two"): p.stat().st_mode
             for p in (tmp_path / "two").rglob("*")}
    assert modes == {p.relative_to(tmp_path / "one"): p.stat().st_mode
                     for p in (tmp_path / "one").rglob("*")}


def test_a_failing_render_helper_is_replaced_by_the_parent(
        big_fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = render_with("1", big_fleet, tmp_path / "one", monkeypatch)
    parent = os.getpid()
    real = render._render_secondaries

    def only_in_the_parent(*args: Any, **kwargs: Any) -> None:
        if os.getpid() != parent:
            raise RuntimeError("helper down")
        real(*args, **kwargs)

    monkeypatch.setattr(render, "_render_secondaries", only_in_the_parent)
    assert render_with("2", big_fleet, tmp_path / "two", monkeypatch) == expected


def test_a_failing_write_helper_leaves_the_previous_tree(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    before_files = {f"d{i // 4}/f{i % 4}.yaml": FileSpec(b"old\n")
                    for i in range(output.PARALLEL_WRITES + 10)}
    monkeypatch.setenv("K10FLEET_JOBS", "2")
    write_tree(str(out), before_files, {})
    before = tree_bytes(out)
    parent = os.getpid()
    real = output._write_file

    def failing_in_the_helper(path: str, spec: FileSpec, umask: int = 0o022) -> None:
        if os.getpid() != parent:
            raise OSError(28, "No space left on device")
        real(path, spec, umask)

    monkeypatch.setattr(output, "_write_file", failing_in_the_helper)
    changed = {rel: FileSpec(b"new\n") for rel in before_files}
    with pytest.raises(EnvironmentFailure, match="No space left on device"):
        write_tree(str(out), changed, {})
    assert tree_bytes(out) == before
    assert [p.name for p in tmp_path.iterdir() if "stage" in p.name] == []


def _tree_with_drift(tmp_path: Path) -> tuple[Path, dict[str, FileSpec]]:
    """A written tree of more files than one process compares, then one file of each kind
    of drift: changed bytes, a changed mode, deleted, a link, and a user's file in the way."""
    out = tmp_path / "out"
    files = {f"d{i // 4}/f{i % 4}.yaml": FileSpec(f"n: {i}\n".encode())
             for i in range(output.PARALLEL_COMPARE + 11)}
    write_tree(str(out), files, {})
    (out / "d3/f1.yaml").write_bytes(b"n: changed\n")
    (out / "d5/f2.yaml").chmod(0o755)
    (out / "d7/f0.yaml").unlink()
    (out / "d9/f3.yaml").unlink()
    (out / "d9/f3.yaml").symlink_to("f2.yaml")
    desired = {**files, "d11/mine.yaml": FileSpec(b"x\n")}
    (out / "d11/mine.yaml").write_bytes(b"the user's\n")
    return out, desired


def test_two_processes_find_the_same_drift_as_one(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out, desired = _tree_with_drift(tmp_path)
    monkeypatch.setenv("K10FLEET_JOBS", "1")
    one = output.diff_tree(str(out), desired, {})
    log = tmp_path / "pids.log"
    log_pids(monkeypatch, output, "_compare", log)
    monkeypatch.setenv("K10FLEET_JOBS", "2")
    two = output.diff_tree(str(out), desired, {})
    assert len(set(log.read_text().split())) == 2  # the parent and a helper compared
    assert two == one
    assert one.missing == ["d7/f0.yaml"] and one.foreign == ["d11/mine.yaml"]
    assert one.differing == [".k10fleet-manifest.json", "d11/mine.yaml", "d3/f1.yaml",
                             "d5/f2.yaml", "d9/f3.yaml"]


def test_a_failing_compare_helper_is_replaced_by_the_parent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, desired = _tree_with_drift(tmp_path)
    monkeypatch.setenv("K10FLEET_JOBS", "1")
    expected = output.diff_tree(str(out), desired, {})
    parent = os.getpid()
    real = output._compare

    def only_in_the_parent(*args: Any) -> Any:
        if os.getpid() != parent:
            raise RuntimeError("helper down")
        return real(*args)

    monkeypatch.setattr(output, "_compare", only_in_the_parent)
    monkeypatch.setenv("K10FLEET_JOBS", "2")
    assert output.diff_tree(str(out), desired, {}) == expected


# the check's parts, taken by whichever process is free --------------------------------------

def test_a_shared_queue_gives_each_part_to_one_process_and_more_to_the_faster() -> None:
    import time

    from generator.forking import SharedQueue, in_forked_child

    queue = SharedQueue(list(range(400)))
    try:
        helper = in_forked_child(lambda: list(queue.taken()))  # the fast one
        mine = []
        for part in queue.taken():
            mine.append(part)
            time.sleep(0.002)  # the slow one
        theirs = helper()
    finally:
        queue.close()
    assert sorted(mine + theirs) == list(range(400))  # every part once, none twice
    assert len(theirs) > 2 * len(mine) > 0


def test_a_shared_queue_refuses_more_parts_than_a_pipe_holds() -> None:
    from generator.forking import SharedQueue

    with pytest.raises(ValueError, match="too many parts"):
        SharedQueue(list(range(20000)))


def test_a_large_answer_from_a_helper_arrives_whole() -> None:
    from generator.forking import in_forked_child

    answer = ["x" * 1000] * 5000  # 5 MB: many times what a pipe holds
    assert in_forked_child(lambda: answer)() == answer


def test_two_processes_check_a_tree_as_one(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The same findings, documents and order, whichever process took which part (one
    file in five is broken, a kustomization lists files of other parts)."""
    from generator.check import run as check_run

    tree = tmp_path / "tree"
    names = []
    for i in range(check_run.PARALLEL_FROM + 77):
        folder = tree / f"c{i // 10:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\ndata: []\n"
                if i % 5 == 0 else f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n")
        (folder / f"cm{i}.yaml").write_text(body)
        names.append(f"{folder.name}/cm{i}.yaml")
    (tree / "kustomization.yaml").write_text(
        "resources:\n" + "".join(f"- {n}\n" for n in names) + "- missing.yaml\n")

    def checked(jobs: str) -> tuple[list[str], list[tuple[str, int, str]]]:
        monkeypatch.setenv("K10FLEET_JOBS", jobs)
        report = check_run.run_check(check_run.CheckOptions(root=str(tree), kubeconform="off"))
        return ([f.as_text() for f in report.findings],
                [(d.rel, d.line, d.name) for d in report.documents])

    one = checked("1")
    log = tmp_path / "pids.log"
    log_pids(monkeypatch, check_run, "_check_share", log)
    monkeypatch.setattr(check_run, "parallel_jobs", lambda: 2)
    two = checked("2")
    assert len(set(log.read_text().split())) == 2  # the parent and a helper checked
    assert two == one
    assert len(one[1]) == check_run.PARALLEL_FROM + 78 and sum(
        "missing.yaml" in f for f in one[0]) == 1 and sum("data" in f for f in one[0]) > 100


def test_errors_come_back_from_a_helper_as_they_were() -> None:
    """Pickled whole: InvalidInput keeps its problems, InternalError its one message."""
    import pickle

    from generator.errors import EnvironmentFailure, InternalError, InvalidInput
    from generator.problems import Problem

    invalid = InvalidInput([Problem("f.yaml", 3, 1, "clusters[0]", "bad", rule="schema")])
    for error in (invalid, InternalError("two objects"), EnvironmentFailure("no sops")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
        assert again.exit_code == error.exit_code
    assert pickle.loads(pickle.dumps(invalid)).problems == invalid.problems
