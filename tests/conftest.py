"""Test setup and the fixtures every test module shares.

Setup: eight fake CPU devices, a compilation cache, one folder for what a session writes
outside tmp_path (checked for leftovers).  Fixtures: ../shared/data (`shared_data`), the tiny
model for wiring tests (`tiny_config`, `make_tiny_config`, `tiny_model`, `tiny_variables`) and
what is made from it once per session (`tiny_checkpoint`, `tiny_shipped_model`), small inputs
(`hdr_scene`, `hdr_folder`, `ldr_image`, `write_png`, `photo_bytes`), the predict command line
in-process (`predict_cli`), the display formats' round-trip check (`assert_round_trip`) and a
stand-in model for the engines (`standin`, `photo_like`).  Test modules import nothing from each
other or from this file: what two of them share is a fixture here.

Two tiers (pytest.ini): `python -m pytest -q -m "not slow"` after every change, then
`python -m pytest -q -m slow`; CI (.ci/run) runs both, in that order.
"""
import atexit
import os
import pathlib
import shutil
import subprocess
import sys
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
# Under pytest-xdist each worker process is a session of its own, with its own folder; the
# workers inherit the first process's environment, so their folders sit beside its, not in it.
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
SESSION_DIR = pathlib.Path(tempfile.mkdtemp(prefix="hdrjax-test-session-", dir=os.environ["PYTEST_DEBUG_TEMPROOT"]))
SESSION_TMP = SESSION_DIR / "tmp"
SESSION_TMP.mkdir()
atexit.register(shutil.rmtree, SESSION_DIR, ignore_errors=True)
os.environ["HDRJAX_CACHE_DIR"] = str(SESSION_DIR / "cache")
os.environ["TMPDIR"] = str(SESSION_TMP)
tempfile.tempdir = str(SESSION_TMP)  # gettempdir() keeps its first answer

# JAX's persistent compilation cache of this process and of the subprocesses started with
# the `env` fixture: a program that another test, process or earlier session compiled is
# read instead of compiled (the slow tier; the fast tier does without, see below).  It
# lives in pytest's cache folder, .pytest_cache/d/hdrjax-jax-compilation (`--cache-clear`
# empties it; under `-p no:cacheprovider` it is a folder of this session).  JAX's keys cover
# the program, shapes, flags and versions, so an entry of older code is never used.  Not put
# in os.environ: a subprocess started without `env` (e.g. one testing predict's own
# --compilation-cache) gets JAX's default.
# Entries of older code pile up: JAX evicts the least recently used above this size.  Setting
# a bound also makes JAX lock the folder (the filelock package) around each read and write, which
# the test processes running at once (pytest-xdist's workers, their subprocesses) need.
JAX_CACHE_MAX_BYTES = 500 * 2**20
# Programs that compile faster than this are not cached: tests compile thousands of tiny ones,
# and writing each (JAX scans the folder to bound its size) cost more than reading them back
# saved (fast tier, cold, one run each: 183 s caching all, 163 s with this bound).  The fast tier now does
# without the cache altogether (_choose_optimisations_for_the_tier).
JAX_CACHE_MIN_COMPILE_SECS = 0.5
JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": str(SESSION_DIR / "cache" / "jax-compilation"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": str(JAX_CACHE_MIN_COMPILE_SECS),
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    "JAX_COMPILATION_CACHE_MAX_SIZE": str(JAX_CACHE_MAX_BYTES),
}

import flax.linen as nn  # noqa: E402  (jax after XLA_FLAGS)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
# ../shared/data beside the project checkout; absent on a user's fresh clone.
SHARED_DATA = REPOSITORY.parent / "shared" / "data"

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
    jax.config.update("jax_persistent_cache_min_compile_time_secs", JAX_CACHE_MIN_COMPILE_SECS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", JAX_CACHE_MAX_BYTES)
    _choose_optimisations_for_the_tier(config)


# The fast tier runs tiny shapes, where compiling takes far longer than running: it skips most
# of XLA's optimisation passes, in its own process and in the subprocesses its tests start
# (measured on three compile-heavy modules, test_conv, test_pipeline and test_hallucination:
# 30-40 % less CPU time).  The slow tier's tests run many steps of real widths, where the
# passes pay for themselves (test_overfits_one_batch: 22 s with them, 39 s without), so they
# keep them.  A run of both tiers at once decides per test, in its own process.  The programs
# compute the same values either way.  A JAX_DISABLE_MOST_OPTIMIZATIONS in the environment wins.
_OPTIMISATIONS_CHOSEN = "JAX_DISABLE_MOST_OPTIMIZATIONS" in os.environ


def _choose_optimisations_for_the_tier(config):
    tier = (config.option.markexpr or "").strip()
    if tier == "not slow":
        # The cache did not pay for the fast tier's unoptimised tiny programs (fresh clone, cache
        # on: 181 s cold, 260 s warm; off: 153 s cold, 205 s warm; runs of the same code spread
        # by about 30 % on this machine, so this is weak evidence), so the fast tier does
        # without it; the slow tier keeps it for its real-width programs.
        # Only this process and the subprocesses started with `env` (JAX_CACHE_ENV): one that
        # tests predict's own --compilation-cache keeps JAX's default.
        JAX_CACHE_ENV.clear()
        JAX_CACHE_ENV["JAX_ENABLE_COMPILATION_CACHE"] = "0"
        jax.config.update("jax_enable_compilation_cache", False)
    if _OPTIMISATIONS_CHOSEN:
        return
    if tier in ("not slow", "slow"):
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1" if tier == "not slow" else "0"
        jax.config.update("jax_disable_most_optimizations", tier == "not slow")


@pytest.fixture(autouse=True)
def _xla_optimisations_by_tier(request):
    if "JAX_DISABLE_MOST_OPTIMIZATIONS" not in os.environ:  # both tiers in one run
        jax.config.update("jax_disable_most_optimizations", request.node.get_closest_marker("slow") is None)
    yield


def shared_path(*parts):
    """Path under ../shared/data, or skip the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is not part of a fresh clone)")
    return path


@pytest.fixture(scope="session")
def shared_data():
    """`shared_data("crf", "dorf_201.npz")`: a path under ../shared/data, or the test is skipped."""
    return shared_path


@pytest.fixture(scope="module")
def env():
    """This environment for subprocess runs, with the session's compilation cache (the cache
    and temp folders are in os.environ already); a test may change its copy."""
    return {**os.environ, **JAX_CACHE_ENV}


@pytest.fixture
def stale_block_check(run_module, tmp_path):
    """`stale_block_check(doc, name, old, module)`: copy `doc` with `old` edited inside its generated
    block `name`, run `python -m module --check` on the copy; returns (copy, finished process)."""

    def check(doc: pathlib.Path, name: str, old: str, module: str):
        text = doc.read_text()
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        head, rest = text.split(begin)
        body, tail = rest.split(end)
        changed = body.replace(old, old + " (edited)", 1)
        assert changed != body, f"{old!r} is not in block {name} of {doc}"
        copy = tmp_path / doc.name
        copy.write_text(head + begin + changed + end + tail)
        return copy, run_module(module, "--check", "--doc", copy, timeout=300)

    return check


@pytest.fixture(scope="module")
def run_module(env):
    """`run_module("experiments.benchmark", "--quick", timeout=600, extra_env=None)`: run
    `python -m <module> <args>` from the repository root, as the README documents its commands,
    with the `env` environment; returns the finished subprocess (output captured as text)."""

    def run(module: str, *args, timeout: float = 600, extra_env: dict | None = None):
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPOSITORY, timeout=timeout,
                              env={**env, **(extra_env or {})}, capture_output=True, text=True)

    return run


# ------------------------------------------------------------------------- tiny model


def _tiny_config(stage: str = "joint", variant: str = "smoke"):
    """configs/<stage>.py:<variant> with the tiny model and no pre-trained init (the
    VGG-16 and CRF-Net weights fit width 1.0 only)."""
    from hdrjax import configs

    config = configs.get_config(stage, variant)
    config.model.width = TINY_WIDTH
    config.init.vgg = ""
    config.init.crf_net = ""
    return config


@pytest.fixture(scope="session")
def make_tiny_config():
    """`make_tiny_config(stage="joint", variant="smoke")`: a fresh tiny config of any stage."""
    return _tiny_config


@pytest.fixture
def tiny_config():
    """A fresh tiny config (joint stage, smoke variant: the smoke config of wiring tests) that a test may change."""
    return _tiny_config()


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny SingleHDR of the joint smoke config, built once per session."""
    from hdrjax.models import build

    return build.build_model(_tiny_config())


@pytest.fixture(scope="session")
def tiny_variables(tiny_model):
    """Random variables of `tiny_model` (build.random_variables: nothing is compiled)."""
    from hdrjax.models import build

    return build.random_variables(tiny_model, seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_variables):
    """A standalone checkpoint folder (checkpoints.save_variables) of `tiny_variables`, joint
    stage, smoke config: what predict, evaluate and the ablations load in wiring tests."""
    from hdrjax.weights import checkpoints

    path = tmp_path_factory.mktemp("tiny-checkpoint") / "run"
    checkpoints.save_variables(path, tiny_variables, _tiny_config())
    return path


@pytest.fixture(scope="session")
def tiny_shipped_model(tmp_path_factory, tiny_variables):
    """A shipped-model folder (pretrained.export) of `tiny_variables` that records 123456
    training steps, so loading it warns of no smoke test."""
    from hdrjax.weights import pretrained

    folder = tmp_path_factory.mktemp("tiny-shipped") / "model"
    return pretrained.export(tiny_variables, _tiny_config(), folder, metadata={"step": 123456, "recipe": "test"})


# ------------------------------------------------------------------------- small inputs

HDR_SIZE = (40, 56)  # the HDR scenes' shape: the networks compile once for every test using them
LDR_SIZE = (48, 80)  # the LDR photos' shape (predict's tests; one compilation per stage)


def _hdr_scene(seed: int = 0, h: int = HDR_SIZE[0], w: int = HDR_SIZE[1], light: float = 8.0):
    """f32[h, w, 3] linear HDR: smooth shading plus one bright light in the middle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.3 + 0.2 * np.sin(xx[..., None] / 5.0 + rng.uniform(0, 6, 3)) * np.cos(yy[..., None] / 7.0)
    img = img + light * np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / 20.0)[..., None]
    return img.astype(np.float32)


@pytest.fixture(scope="session")
def hdr_scene():
    """`hdr_scene(seed=0, h=40, w=56, light=8.0)`: a small HDR scene with one bright light."""
    return _hdr_scene


@pytest.fixture(scope="session")
def hdr_folder(tmp_path_factory):
    """A folder of two 40×56 HDR scenes, `a.exr` and `b.hdr` (seeds 0 and 1)."""
    from hdrjax.io import write_image

    folder = tmp_path_factory.mktemp("hdr")
    write_image(folder / "a.exr", _hdr_scene(0))
    write_image(folder / "b.hdr", _hdr_scene(1))
    return folder


def _ldr_image(seed: int = 0, h: int = LDR_SIZE[0], w: int = LDR_SIZE[1]):
    """f64[h, w, 3] in [0, 1]: smooth gradients, one saturated blob, a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.4 + 0.3 * np.sin(xx[..., None] / 7.0 + np.arange(3)) * np.cos(yy[..., None] / 9.0)
    img = img + 1.5 * np.exp(-((yy - h / 2) ** 2 + (xx - 0.6 * w) ** 2) / 60.0)[..., None]
    return np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)


@pytest.fixture(scope="session")
def ldr_image():
    """`ldr_image(seed=0, h=48, w=80)`: an LDR photo with a clipped highlight, values in [0, 1]."""
    return _ldr_image


def _write_png(path, img, bits: int = 8):
    if bits == 8:
        from PIL import Image

        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)
    else:
        import cv2

        cv2.imwrite(str(path), np.round(img[..., ::-1] * 65535).astype(np.uint16))
    return path


@pytest.fixture(scope="session")
def write_png():
    """`write_png(path, img, bits=8)`: an RGB image in [0, 1] as an 8- or 16-bit PNG; returns path."""
    return _write_png


@pytest.fixture(scope="session")
def photo_bytes():
    """`photo_bytes(fmt="PNG", seed=0)`: the `ldr_image` photo encoded as an 8-bit file (an upload)."""
    import io

    from PIL import Image

    def encode(fmt: str = "PNG", seed: int = 0) -> bytes:
        out = io.BytesIO()
        Image.fromarray(np.round(_ldr_image(seed) * 255).astype(np.uint8)).save(out, format=fmt)
        return out.getvalue()

    return encode


# Round-trip tolerance of the display formats, in relative display light (1.0 = 203 cd/m²): the
# mean |Δ| at most 0.02 (4 cd/m²), the median relative error at most 3 % and its 99th percentile
# at most 15 %, relative to the value plus 0.05 (10 cd/m², so dark pixels are not judged by
# their relative error).  The codecs are lossy (JPEG q95 and its gain map, AV1 q90): what the
# bound allows is their local error at edges, not a wrong mapping, which would move every pixel.
ROUND_TRIP_MEAN_ABS, ROUND_TRIP_MEDIAN_REL, ROUND_TRIP_P99_REL, ROUND_TRIP_REL_FLOOR = 0.02, 0.03, 0.15, 0.05


def _assert_round_trip(decoded, expected):
    assert decoded.shape == expected.shape
    error = np.abs(decoded - expected)
    relative = error / (expected + ROUND_TRIP_REL_FLOOR)
    summary = (f"mean {error.mean():.4f}, median rel {np.median(relative):.4f}, "
               f"p99 rel {np.percentile(relative, 99):.4f}")
    assert error.mean() <= ROUND_TRIP_MEAN_ABS, summary
    assert np.median(relative) <= ROUND_TRIP_MEDIAN_REL, summary
    assert np.percentile(relative, 99) <= ROUND_TRIP_P99_REL, summary


@pytest.fixture(scope="session")
def assert_round_trip():
    """`assert_round_trip(decoded, expected)`: a decoded display-format file (Ultra HDR, AVIF) is
    the display mapping it was written from, within the codecs' tolerance (above)."""
    return _assert_round_trip


@pytest.fixture
def predict_cli(capsys):
    """`predict_cli([args])` runs `python -m hdrjax.predict` in this process: (exit status, stderr)."""
    from hdrjax import predict

    def run(args):
        code = predict.main([str(a) for a in args])
        return code, capsys.readouterr().err

    return run


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


# ------------------------------------------------------------------ a stand-in for the engines


class StandIn(nn.Module):
    """SingleHDR look-alike: same methods and data flow, receptive field radius < 16 px per stage."""

    def setup(self):
        init = nn.initializers.normal(0.3)
        self.deq1 = nn.Conv(6, (3, 3), kernel_init=init)
        self.deq2 = nn.Conv(3, (3, 3), kernel_init=init)
        self.crf = nn.Dense(1)
        self.hal1 = nn.Conv(6, (3, 3), kernel_init=init)
        self.hal2 = nn.Conv(6, (3, 3), kernel_init=init)
        self.hal3 = nn.Conv(3, (3, 3), kernel_init=init)
        self.ref = nn.Conv(3, (3, 3), kernel_init=init)

    def dequantize(self, ldr):
        return jnp.clip(ldr + 0.05 * jnp.tanh(self.deq2(nn.relu(self.deq1(ldr)))), 0.0, 1.0)

    def estimate_inverse_crf(self, c, *, train=False):
        # A global statistic, like the Linearization-Net's average pool: gamma from the mean.
        g = 1.0 + jax.nn.sigmoid(self.crf(jnp.mean(c, axis=(1, 2))))  # f32[B, 1] in (1, 2)
        return jnp.linspace(0.0, 1.0, 1024)[None, :] ** g

    def hallucinate(self, linear, *, train=False):
        from hdrjax.models.hallucination import blend_weight

        h = nn.relu(self.hal1(linear))
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = nn.relu(self.hal2(h))
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        r = 3.0 * self.hal3(h)
        return linear + blend_weight(linear) * nn.relu(r), r

    def refine(self, hallucinated, linear, dequantized):
        x = jnp.concatenate([hallucinated, linear, dequantized], axis=-1)
        return nn.relu(hallucinated + 0.1 * self.ref(x))

    def __call__(self, ldr):
        c = self.dequantize(ldr)
        g = self.estimate_inverse_crf(c)
        a, _ = self.hallucinate(c ** 1.5)
        return self.refine(a, c, c), g


@pytest.fixture(scope="session")
def standin():
    """(StandIn(), its variables): SingleHDR's four stage methods with a receptive field of a
    few pixels, so a tiled or cropped run must equal one pass up to float rounding."""
    model = StandIn()
    # jit: one compilation instead of one per initialiser op (eager init is slow on a busy CPU).
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    return model, variables


def _photo_like(h, w, seed=0):
    """A smooth LDR test image with saturated blobs (so some tiles have α > 0, some not)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.35 + 0.25 * np.sin(xx[..., None] / 37.0 + np.arange(3)) * np.cos(yy[..., None] / 23.0)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.03, 0.08) * min(h, w)
        img += 1.2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture(scope="session")
def photo_like():
    """`photo_like(h, w, seed=0)`: a smooth LDR photo with saturated blobs, float32 in [0, 1]."""
    return _photo_like


# ---------------------------------------------------------------- nothing left behind

_LEFT_BY: dict = {}  # name in SESSION_TMP -> the test during which it appeared


@pytest.fixture(autouse=True)
def _note_temp_leftovers(request):
    """Remember which test created what appears in the session's temporary folder."""
    before = set(os.listdir(SESSION_TMP))
    yield
    for name in set(os.listdir(SESSION_TMP)) - before:
        _LEFT_BY.setdefault(name, request.node.nodeid)


_WORKER_LEFTOVERS: list = []  # under pytest-xdist: what the workers found (the first process reports it)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist: a worker finished; keep its leftovers message for the session's end."""
    message = getattr(node, "workeroutput", {}).get("hdrjax_leftovers")
    if message:
        _WORKER_LEFTOVERS.append(message)


def pytest_sessionfinish(session, exitstatus):
    """Fail the session when the code under test left files in the temporary folder.

    A pytest-xdist worker hands its message to the first process (`workeroutput`), which
    reports every worker's after they have all finished."""
    leftovers = sorted(os.listdir(SESSION_TMP)) if SESSION_TMP.is_dir() else []
    messages = list(_WORKER_LEFTOVERS)
    if leftovers:
        messages.append("temporary files left behind by the code under test:\n" + "\n".join(
            f"  {SESSION_TMP / name}  (appeared during {_LEFT_BY.get(name, 'a fixture setup or teardown')})"
            for name in leftovers))
    shutil.rmtree(SESSION_DIR, ignore_errors=True)
    if not messages:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["hdrjax_leftovers"] = "\n".join(messages)
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for message in messages:
        if reporter is not None:
            reporter.write_sep("=", "leftovers", red=True)
            reporter.write_line(message)
        else:
            print(message)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
