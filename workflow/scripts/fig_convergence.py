"""Rule fig_convergence: KDE and kurtosis of off-diagonal P[:n, :n] as n grows, one model
(kis.figures.run_convergence)."""
from kis import figures
from kis.io import run

run(snakemake, figures.run_convergence)  # noqa: F821
