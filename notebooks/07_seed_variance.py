# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Beyond the paper: seed and optimizer variance
#
# The paper reports one run per optimizer and concludes that the network "performs efficiently
# irrespective of the optimizers' type" (test accuracies 0.92–0.94). Whether differences of that
# size mean anything depends on how much a single run varies with its random seed (weight
# initialisation and batch order). Here every optimizer is trained with several seeds on one fixed
# split: a sweep (`mcalc sweep`, the profile's `sweep` section) executes the chapter 3 template once
# per optimizer × seed as tasks on a Dask cluster, and this chapter reads the sweep's records.

# %% tags=["parameters"]
results_dir = "results"
sweep_name = "seed_variance"  # the sweep under the results folder's sweeps/ that holds the runs


# %%
from mcalc.run.parameters import check_parameters

check_parameters(globals())  # each parameter against its spec: one line naming a bad value

# %%
from mcalc.chapters.audits import variance_summary
from mcalc.records import sweeps
from mcalc.records.results import read_results_provenance
from mcalc.report import items, plots

runs = sweeps.load_runs(results_dir, sweep_name)
provenance = read_results_provenance(results_dir)
print(provenance.label())

# %%
# NBVAL_CHECK_OUTPUT
print(
    f"{len(runs)} runs: {runs['optimizer'].nunique()} optimizers × {runs['seed'].nunique()} seeds"
)

# %%
items.show_figure(
    plots.seed_spread(runs),
    f"Seed variance — test metrics of each optimizer over {runs['seed'].nunique()} seeds (points: runs; boxes: spread)",
    provenance,
)

# %%
items.show_table(
    variance_summary(runs),
    "Seed variance — mean ± SD over seeds per optimizer, a Kruskal–Wallis test of the optimizer effect, and the paper's spread across optimizers",
    provenance,
)

# %%
from IPython.display import Markdown

from mcalc.evaluate.prose import seed_sentence

items.glue_numbers(n_runs=len(runs), seed_sentence=Markdown(seed_sentence(runs)))

# %% [markdown]
# ## What this chapter found
#
# - Over {glue:text}`n_runs` runs: {glue:md}`seed_sentence`
# - Like is compared with like: a range of optimizer means with the range that as many means of one
#   optimizer would show from the seed alone, not a standard deviation with a range. The verdict on
#   the paper's "irrespective of the optimizer" uses these runs ({ref}`the verdict table <verdict>`).
