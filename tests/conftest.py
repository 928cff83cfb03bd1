"""Test setup: eight fake CPU devices (set before jax is imported) and shared-data paths."""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
