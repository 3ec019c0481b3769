"""mcalc: an executable reproducibility study of Singh et al. (2022), IJERPH 19:2159."""

__version__ = "0.1.0"
