"""Command-line tools that are not part of training or inference.

  python -m hdrjax.tools.import_tf1   the authors' TF1 checkpoints -> an hdrjax checkpoint
  hdrjax.tools.tf_checkpoint          a TensorFlow-free reader of TF (V2) checkpoints
"""
