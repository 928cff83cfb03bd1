"""Offline accelerator runs: the shell scripts and the accelerator smoke test."""
