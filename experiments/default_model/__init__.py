"""The default model: its training chain (train.py), evaluation (evaluate.sh), figures and README section."""
