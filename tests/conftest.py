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
