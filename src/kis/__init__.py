"""kis — Knowledge in Superposition (Hu et al., AAAI 2025), reproduced and extended.

Modules name the paper's concepts: models (registry), corpus, covariance, knowledge, keys, superposition,
editing, figures. Pure functions on tensors and frames; I/O at the edges (kis.io).
"""
__version__ = "0.1.0"
