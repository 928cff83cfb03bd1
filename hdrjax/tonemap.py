"""Tone curves shared by losses, metrics and previews."""
import jax.numpy as jnp

LOG_TONE_MU = 10.0


def log_tone(v):
    """The paper's T(v) = log(1 + 10 v) / log(11): maps [0, 1] to [0, 1], compresses highlights."""
    return jnp.log1p(LOG_TONE_MU * v) / jnp.log1p(LOG_TONE_MU)
