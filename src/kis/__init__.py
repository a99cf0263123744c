"""kis — Knowledge in Superposition (Hu et al., AAAI 2025), reproduced and extended.

Modules name the paper's concepts: models (registry), probe (how a model reads text), corpus, plan / panels /
covariance / tensorfile (the covariance stage), knowledge, keys, superposition, vstar, editing, trajectory, figures. Pure functions on tensors and frames;
I/O at the edges (kis.io).
"""
__version__ = "0.1.0"
