"""tfmodels.files: atomic writes, their temporary names and permissions, hashes."""

import os

import pytest

from tfmodels import files


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_write(path, "w") as f:
            f.write("half of the new")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_atomic_write_replaces_the_file(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")
    with files.atomic_write(path, "w") as f:
        f.write("new")
    assert path.read_text() == "new"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_honours_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert files.current_umask() == umask
        with files.atomic_write(tmp_path / "file.txt", "w") as f:
            f.write("new")
    finally:
        os.umask(old)
    assert (tmp_path / "file.txt").stat().st_mode & 0o777 == mode


def test_temporary_names_are_recognised(tmp_path):
    with files.atomic_write(tmp_path / "history.json", "w") as f:
        [temporary] = [p.name for p in tmp_path.iterdir()]
        f.write("{}")
    assert files.temporary_target(temporary) == "history.json"
    assert files.temporary_target(".history.json.tmp") is None
    assert files.temporary_target("history.json") is None


def test_sha256(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert files.sha256(tmp_path / "abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
