"""The session-end check of tests/conftest.py fails a session whose code leaves temp files."""
import pathlib
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent

LEAKY_TEST = '''
import tempfile


def test_clean(tmp_path):
    (tmp_path / "kept-by-pytest").write_text("tmp_path is pytest's, not a leftover")
    with tempfile.TemporaryDirectory():
        pass


def test_leaky():
    tempfile.mkdtemp(suffix="tfds")  # what TFDS's bucket lookup used to do
'''


@pytest.mark.parametrize("workers", ["0", "2"])  # in-process, and two pytest-xdist workers
def test_a_session_that_leaves_temp_files_fails_and_names_the_test(tmp_path, workers):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    shutil.copy(HERE / "conftest.py", project / "tests" / "conftest.py")
    (project / "tests" / "test_leaky.py").write_text(LEAKY_TEST)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers, "tests"],
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if "tfds" in line]
    assert len(lines) == 1 and "tests/test_leaky.py::test_leaky" in lines[0], proc.stdout
    # The session's folder (and the leftover in it) is gone all the same.
    leftover = pathlib.Path(lines[0].split()[0])
    assert not leftover.exists() and not leftover.parent.parent.exists()
