"""The paper's ablation table and figures (ablations.py, ablations.ipynb)."""
