"""Test setup: eight fake CPU devices, a compilation cache, one folder for what a session
writes outside tmp_path (checked for leftovers), a tiny model for wiring tests, shared data.

Two tiers (pytest.ini): `python -m pytest -q -m "not slow"` after every change, the whole
suite `python -m pytest -q` before a merge (and in CI).
"""
import atexit
import os
import pathlib
import shutil
import tempfile

# Set before jax is imported.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One folder per test session, removed when it ends (atexit: also when interrupted):
#   cache/  hdrjax's cache (HDRJAX_CACHE_DIR: receptive-field measurements): tests neither
#           read a user's cache nor leave one behind;
#   tmp/    the temporary folder (TMPDIR) of the session and of its subprocesses; whatever
#           is still in it at the end was left behind by the code under test and fails the
#           session (`pytest_sessionfinish`).
# pytest's own tmp_path folders stay where pytest keeps them (its last three sessions).
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
SESSION_DIR = pathlib.Path(tempfile.mkdtemp(prefix="hdrjax-test-session-"))
SESSION_TMP = SESSION_DIR / "tmp"
SESSION_TMP.mkdir()
atexit.register(shutil.rmtree, SESSION_DIR, ignore_errors=True)
os.environ["HDRJAX_CACHE_DIR"] = str(SESSION_DIR / "cache")
os.environ["TMPDIR"] = str(SESSION_TMP)
tempfile.tempdir = str(SESSION_TMP)  # gettempdir() keeps its first answer

# JAX's persistent compilation cache of this process and of the subprocesses started with
# the `env` fixture: a program that another test, process or earlier session compiled is
# read instead of compiled (the fast tier takes about half the time on a warm cache).  It
# lives in pytest's cache folder, .pytest_cache/d/hdrjax-jax-compilation (`--cache-clear`
# empties it; under `-p no:cacheprovider` it is a folder of this session).  JAX's keys cover
# the program, shapes, flags and versions, so an entry of older code is never used.  Not put
# in os.environ: a subprocess started without `env` (e.g. one testing predict's own
# --compilation-cache) gets JAX's default.
JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": str(SESSION_DIR / "cache" / "jax-compilation"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
# Entries of older code pile up; above this the folder is emptied at the end of a session
# (JAX's own LRU bound needs the filelock package).
JAX_CACHE_MAX_BYTES = 500 * 2**20

import jax  # noqa: E402
import pytest  # noqa: E402

# ../shared/data beside the project checkout; absent on a user's fresh clone.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Channel multiplier of the tiny SingleHDR (config.model.width): the paper's wiring with 1/8
# of its channels (~1/60 of its parameters; compiling takes as long, running far less).  For
# tests of wiring (stages, shapes, options, checkpoints, command lines); what depends on the
# real network (parameter counts, TF1 names, shipped weights) keeps width 1.0.
TINY_WIDTH = 0.125


def pytest_configure(config):
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        JAX_CACHE_ENV["JAX_COMPILATION_CACHE_DIR"] = str(cache.mkdir("hdrjax-jax-compilation"))
    jax.config.update("jax_compilation_cache_dir", JAX_CACHE_ENV["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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
def env():
    """This environment for subprocess runs, with the session's compilation cache (the cache
    and temp folders are in os.environ already); a test may change its copy."""
    return {**os.environ, **JAX_CACHE_ENV}


# ------------------------------------------------------------------------- tiny model


def make_tiny_config(stage: str = "joint", variant: str = "smoke"):
    """configs/<stage>.py:<variant> with the tiny model and no pre-trained init (the
    VGG-16 and CRF-Net weights fit width 1.0 only)."""
    from hdrjax import configs

    config = configs.get_config(stage, variant)
    config.model.width = TINY_WIDTH
    config.init.vgg = ""
    config.init.crf_net = ""
    return config


@pytest.fixture
def tiny_config():
    """A fresh `make_tiny_config()` (joint stage, smoke variant) that a test may change."""
    return make_tiny_config()


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny SingleHDR of `make_tiny_config()`, built once per session."""
    from hdrjax.models import build

    return build.build_model(make_tiny_config())


@pytest.fixture(scope="session")
def tiny_variables(tiny_model):
    """Random variables of `tiny_model` (build.random_variables: nothing is compiled)."""
    from hdrjax.models import build

    return build.random_variables(tiny_model, seed=0)


@pytest.fixture(autouse=True)
def _restore_logging():
    """A command line run in-process sets up the "hdrjax" logger and Python's warning display for
    the whole process (hdrjax.cli.configure_logging: its own handler, no propagation); restore
    both so later tests' caplog and pytest.warns still see hdrjax records."""
    import logging
    import warnings

    package = logging.getLogger("hdrjax")
    handlers, propagate, level = package.handlers[:], package.propagate, package.level
    showwarning = warnings.showwarning
    yield
    package.handlers[:] = handlers
    package.propagate = propagate
    package.setLevel(level)
    warnings.showwarning = showwarning


# ---------------------------------------------------------------- nothing left behind

_LEFT_BY: dict = {}  # name in SESSION_TMP -> the test during which it appeared


@pytest.fixture(autouse=True)
def _note_temp_leftovers(request):
    """Remember which test created what appears in the session's temporary folder."""
    before = set(os.listdir(SESSION_TMP))
    yield
    for name in set(os.listdir(SESSION_TMP)) - before:
        _LEFT_BY.setdefault(name, request.node.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """Fail the session when the code under test left files in the temporary folder."""
    leftovers = sorted(os.listdir(SESSION_TMP)) if SESSION_TMP.is_dir() else []
    if leftovers:
        message = "temporary files left behind by the code under test:\n" + "\n".join(
            f"  {SESSION_TMP / name}  (appeared during {_LEFT_BY.get(name, 'a fixture setup or teardown')})"
            for name in leftovers)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "leftovers", red=True)
            reporter.write_line(message)
        else:
            print(message)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(SESSION_DIR, ignore_errors=True)
    compiled = pathlib.Path(JAX_CACHE_ENV["JAX_COMPILATION_CACHE_DIR"])
    if compiled.is_dir() and sum(f.stat().st_size for f in compiled.rglob("*") if f.is_file()) > JAX_CACHE_MAX_BYTES:
        shutil.rmtree(compiled, ignore_errors=True)
