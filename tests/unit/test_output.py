from __future__ import annotations

import os
from pathlib import Path

import pytest

from generator import output
from generator.errors import EnvironmentFailure, InternalError, InvalidInput, OutputLocked
from generator.output import MANIFEST, FileSpec, diff_tree, read_manifest, write_tree
from tests.conftest import tree_bytes

FILES = {"clusters/a/x.yaml": FileSpec(b"x: 1\n"), "bin/run.sh": FileSpec(b"#!/bin/sh\n", 0o755)}


def test_first_write_creates_files_modes_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "output"
    result = write_tree(str(out), FILES, {"clusters": {}})
    assert result.written == ["bin/run.sh", "clusters/a/x.yaml"]
    assert (out / "clusters/a/x.yaml").read_bytes() == b"x: 1\n"
    assert os.stat(out / "bin/run.sh").st_mode & 0o777 == 0o755
    assert set(read_manifest(str(out)).files) == set(FILES)


def test_unchanged_files_keep_inode_and_mtime(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    before = os.stat(out / "clusters/a/x.yaml")
    manifest_before = os.stat(out / MANIFEST)
    again = write_tree(str(out), FILES, {})
    assert not again.changed
    changed = write_tree(str(out), {**FILES, "bin/run.sh": FileSpec(b"#!/bin/bash\n", 0o755)}, {})
    assert changed.written == ["bin/run.sh"]
    after = os.stat(out / "clusters/a/x.yaml")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert os.stat(out / MANIFEST).st_ino != manifest_before.st_ino


def test_prunes_only_its_own_files(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    (out / "clusters/a/notes.md").write_text("mine")
    (out / "clusters/b").mkdir()
    (out / "README.md").write_text("user readme")
    result = write_tree(str(out), {"bin/run.sh": FILES["bin/run.sh"]}, {})
    assert result.removed == ["clusters/a/x.yaml"]
    assert (out / "clusters/a/notes.md").read_text() == "mine"
    assert (out / "clusters/b").is_dir()
    assert (out / "README.md").exists()
    assert not (out / "clusters/a/x.yaml").exists()


def test_directory_emptied_by_pruning_goes_away(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    write_tree(str(out), {"bin/run.sh": FILES["bin/run.sh"]}, {})
    assert not (out / "clusters").exists()


def test_manual_edit_is_detected_and_restored(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    (out / "clusters/a/x.yaml").write_text("x: 2\n")
    os.chmod(out / "bin/run.sh", 0o644)
    drift = diff_tree(str(out), FILES, {})
    assert drift.differing == ["bin/run.sh", "clusters/a/x.yaml"]
    write_tree(str(out), FILES, {})
    assert diff_tree(str(out), FILES, {}).clean


def test_check_lists_missing_differing_extra(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    drift = diff_tree(str(out), {"clusters/a/x.yaml": FileSpec(b"x: 2\n"),
                                 "new.yaml": FileSpec(b"n\n")}, {})
    assert drift.missing == ["new.yaml"]
    assert "clusters/a/x.yaml" in drift.differing
    assert drift.extra == ["bin/run.sh"]


def test_failure_mid_write_leaves_previous_tree(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    before = tree_bytes(out)
    calls = {"n": 0}
    real = output._write_file

    def failing(path: str, spec: FileSpec, umask: int = 0o022) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real(path, spec, umask)

    monkeypatch.setattr(output, "_write_file", failing)
    new = {p: FileSpec(b"changed\n") for p in ["a.yaml", "b.yaml", "c.yaml"]}
    with pytest.raises(EnvironmentFailure, match="previous tree is unchanged"):
        write_tree(str(out), new, {})
    assert tree_bytes(out) == before
    assert [p.name for p in tmp_path.iterdir() if "stage" in p.name] == []


def test_stale_staging_from_a_killed_run_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "output"
    stale = tmp_path / f".output{output.STAGE_MARK}dead"
    stale.mkdir()
    (stale / "half.yaml").write_text("x")
    write_tree(str(out), FILES, {})
    assert not stale.exists()


def test_second_writer_is_refused_while_locked(tmp_path: Path) -> None:
    out = tmp_path / "output"
    with output.locked(str(out)), pytest.raises(OutputLocked, match="another k10fleet run"):
        write_tree(str(out), FILES, {})


def test_unsafe_paths_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InternalError, match=r"unsafe output path '\.\./escape'"):
        write_tree(str(tmp_path / "o"), {"../escape": FileSpec(b"x")}, {})


def test_group_writable_clone_is_not_drift(tmp_path: Path) -> None:
    """Git keeps only the executable bit: a clone under umask 002 must not look changed."""
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    os.chmod(out / "clusters/a/x.yaml", 0o664)
    os.chmod(out / "bin/run.sh", 0o775)
    assert diff_tree(str(out), FILES, {}).clean
    os.chmod(out / "bin/run.sh", 0o664)
    assert diff_tree(str(out), FILES, {}).differing == ["bin/run.sh"]


def test_existing_directory_modes_survive_a_write(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    (out / "private").mkdir(mode=0o700)
    (out / "private/key").write_text("k")
    os.chmod(out / "clusters", 0o750)
    write_tree(str(out), {**FILES, "new.yaml": FileSpec(b"n\n")}, {})
    assert os.stat(out / "private").st_mode & 0o777 == 0o700
    assert os.stat(out / "clusters").st_mode & 0o777 == 0o750


def test_symlink_in_the_way_is_named(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "clusters/a/x.yaml").unlink()
    (out / "clusters/a").rmdir()
    (out / "clusters").rmdir()
    (out / "clusters").symlink_to(elsewhere)
    with pytest.raises(InvalidInput) as info:  # the user's link: named, never written through
        write_tree(str(out), FILES, {})
    problem = info.value.problems[0]
    assert problem.file.endswith("output/clusters") and "symbolic link" in problem.message
    assert list(elsewhere.iterdir()) == []


def test_malformed_manifest_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "output"
    write_tree(str(out), FILES, {})
    (out / MANIFEST).write_text('{"files": {"a": {"mode": "rw"}}}')
    with pytest.raises(InvalidInput) as info:
        read_manifest(str(out))
    assert "not a valid k10fleet manifest" in info.value.problems[0].message


def test_unsafe_path_is_every_path_with_an_empty_dot_or_dot_dot_part() -> None:
    """Against the definition, over every short path of these pieces."""
    import itertools

    from generator.output import unsafe_path

    def by_definition(path: str) -> bool:
        return (any(part in ("", ".", "..") for part in path.split("/")) or "\0" in path
                or "\\" in path or len(path) > 4096)

    pieces = ["a", ".", "/", "\0", "\\", "..", "b."]
    for length in range(6):
        for combo in itertools.product(pieces, repeat=length):
            path = "".join(combo)
            assert unsafe_path(path) == by_definition(path), repr(path)
    assert unsafe_path("a" * 4097) and not unsafe_path("a" * 4096)
