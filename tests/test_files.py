"""tfmodels.files: atomic writes."""

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
