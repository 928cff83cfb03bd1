"""Test setup: eight fake CPU devices (set before jax is imported) and shared-data paths."""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# hdrjax's cache (receptive-field measurements, compiled programs) goes to a folder of this
# test session, removed at the end: tests neither read a user's cache nor leave one behind.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_CACHE = tempfile.mkdtemp(prefix="hdrjax-test-cache-")
os.environ["HDRJAX_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import pytest  # noqa: E402

# ../shared/data beside the project checkout; absent on a user's fresh clone.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_path(*parts):
    """Path under ../shared/data, or skip the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is not part of a fresh clone)")
    return path


@pytest.fixture
def shared_data():
    return shared_path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """This environment for subprocess runs, plus a compilation cache shared by a module's runs."""
    e = dict(os.environ)
    e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
    e["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    e["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return e
