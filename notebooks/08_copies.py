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
# # Beyond the paper: two copies of the data, one verdict?
#
# Most people who try this study hold the Kaggle JPEG re-release of CBIS-DDSM (8-bit, lossy, about
# 6 GB), not the TCIA DICOM download (16-bit, 163 GB). mcalc reads both and labels every result with
# the copy it came from (see the methods), but a label does not say whether the copy changes a result.
# This chapter measures it on one phantom written twice, from the same seed: once in the DICOM
# release's layout and once in the Kaggle re-release's (a `jpeg/` tree of 8-bit JPEGs and its
# `dicom_info.csv`), so that both copies hold the same patients, ROIs and pixels until the JPEG
# encoding. Each copy then goes through chapters 1–4 by the same functions and under the same seeds:
# curation, the backbone features, the head with each of the paper's optimizers, and the GLCM
# baselines. `mcalc compare` sets the two runs side by side: every model's test predictions paired by
# ROI id, the difference of every metric bootstrapped by patient, both runs' verdicts, and what
# differs in their provenance.
#
# **On the phantom this measures the JPEG round trip of the pipeline, not the real copies.** The
# Kaggle re-release was converted from the DICOMs by its publisher with settings that are not
# documented (windowing, scaling to 8 bits, JPEG quality); the phantom's copy is our own conversion.
# The last section gives the command that answers the question on two real copies.

# %% tags=["parameters"]
seed = 0
task = "three-class"  # three-class (the paper), binary-merged or binary-biopsied
image_size = 299
weights = "auto"
backbone_variant = "folded"  # or "folded+bf16": opt-in bfloat16, faster, not float32's features
results_dir = "results"
cache_dir = "cache"
n_boot = 1000
learning_rate = 1e-4
batch_size = 32
epochs = 20
validation_size = 50  # ROIs (an int) or a fraction of the training split (a float < 1)
cv_folds = 10
copies_scale = 0.25  # phantom scale of both copies (1: the real CBIS-DDSM calc sizes)


# %%
from mcalc.run.parameters import check_parameters

check_parameters(globals())  # each parameter against its spec: one line naming a bad value

# %%
import pandas as pd

from mcalc.chapters.copies import CopiesConfig, pair_label, run_copies
from mcalc.evaluate import compare
from mcalc.evaluate.shift import shift_figure, shift_sentence, shift_summary
from mcalc.learn.model import TrainConfig
from mcalc.records.results import read_results_provenance
from mcalc.report import items

config = CopiesConfig(
    results_dir=results_dir,
    cache_dir=cache_dir,
    scale=copies_scale,
    seed=seed,
    task=task,
    image_size=image_size,
    weights=weights,
    backbone_variant=backbone_variant,
    train=TrainConfig(
        learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, seed=seed, task=task
    ),
    validation_size=validation_size,
    n_boot=n_boot,
    cv_folds=cv_folds,
)
copies = run_copies(config)
dicom, jpeg = config.results("dicom"), config.results("kaggle-jpeg")
comparison = compare.compare_runs(dicom, jpeg)
provenance = pair_label(read_results_provenance(dicom), read_results_provenance(jpeg))
print(provenance.label())

# %%
# NBVAL_CHECK_OUTPUT
print(copies[["ROI rows read", "usable"]].to_string())

# %%
items.show_table(
    copies,
    "The two copies of one phantom — ROI rows read, usable, excluded at curation and left out at feature extraction, each copy run through chapters 1–4 in its own results folder",
    provenance,
)

# %% [markdown]
# ## What differs between the two runs
#
# Everything each run records of where it came from, item by item: the copy of the data, the
# weights, the task, the settings and the versions and commit of the code that made the features.
# Only the copy should differ here.

# %%
items.show_table(
    comparison.provenance.rename(columns={"A": "DICOM copy (A)", "B": "Kaggle JPEG copy (B)"}),
    "Provenance of the two runs, item by item, and whether they differ (mcalc compare)",
    provenance,
)

# %% [markdown]
# ## How far each ROI's backbone features move
#
# The frozen backbone sees each ROI once per copy. For every ROI both copies hold, the distance
# between its two 1,536-dimensional feature vectors, relative to the DICOM copy's vector, is set
# beside the distance from that vector to the nearest *other* ROI of the same copy: a move much
# smaller than that leaves every ROI where the head saw it.

# %%
shift = comparison.features
items.show_figure(
    shift_figure(shift),
    "Feature shift — how far each ROI's backbone features moved from the DICOM copy to the Kaggle JPEG copy, and how far each lies from its nearest other ROI (both relative to the ROI's feature norm)",
    provenance,
)

# %%
items.show_table(
    shift_summary(shift),
    "Feature shift in numbers — the move of each ROI's features between the copies, beside the distance to its nearest other ROI",
    provenance,
)

# %% [markdown]
# ## The paired differences of every Table 4 metric
#
# Each model predicted the same test ROIs in both copies, so the difference (Kaggle JPEG − DICOM) is
# bootstrapped *paired*: a drawn patient brings all of their ROIs, with both copies' predictions. The
# loss is the KL loss of Table 4, the AUC the paper's pooled one with the macro AUC beside it.

# %%
units = compare.units_text(comparison) or "the patients / lesions / ROIs in the last column"
items.show_table(
    compare.difference_table(comparison, names=("DICOM", "Kaggle JPEG")),
    f"Table 4 metrics, Kaggle JPEG copy − DICOM copy, per model on the test ROIs both copies hold ({units}): each copy's value and the paired patient-level bootstrap of the difference (95% CI, two-sided p)",
    provenance,
)

# %% [markdown]
# ## Does any verdict change?
#
# The analysis plan's verdict table of chapter 5, computed for each copy. On the phantom the claims
# about images are not testable here in either copy, whatever the numbers; the table shows whether
# the copy changes any verdict, and the differences above show how much room the copy leaves.

# %%
items.show_table(
    comparison.verdicts.rename(columns={"A": "DICOM copy", "B": "Kaggle JPEG copy"}),
    "Verdicts of the two copies, claim by claim, and whether the copy changes them",
    provenance,
)

# %%
not_paired = pd.concat(
    [
        comparison.unmatched.rename(columns={"roi_id": "ROI or model"}),
        comparison.models_skipped.rename(columns={"model": "ROI or model"}),
    ],
    ignore_index=True,
)
items.show_table(
    not_paired,
    "Not paired — test ROIs one copy holds and the other does not (or labels differently), and models only one copy holds",
    provenance,
    empty="Every test ROI and every model is in both copies: nothing was left out of the pairing.",
)

# %% [markdown]
# ## On your own two copies
#
# Run the book (or the chapters you need) once per copy, each into its own results folder, then
# compare the two folders (or two books' results bundles, `mcalc-results.zip`):
#
# ```bash
# mcalc notebooks --data-source cbis-ddsm --data-root /data/CBIS-DDSM \
#     --results-dir results-dicom --out-dir build/dicom
# mcalc notebooks --data-source cbis-ddsm --data-root /data/kaggle-cbis-ddsm \
#     --results-dir results-kaggle --out-dir build/kaggle
# mcalc compare results-dicom results-kaggle --out comparison
# ```
#
# The same command compares any two runs of one task: two seeds of the data pipeline, a CPU run and
# a GPU run, your run and a colleague's. It prints what differs in their provenance, the paired
# differences of the Table 4 metrics, whether any verdict changes, and every test ROI or model that
# only one run holds; `--out` writes every metric's difference as CSV. Runs of another task, or
# without a test ROI in common, are refused with one line.

# %%
n_excluding, n_differences = comparison.n_excluding_zero()
items.glue_numbers(
    shift_text=shift_sentence(shift),
    difference_text=compare.difference_sentence(comparison),
    verdict_text=compare.verdict_sentence(comparison),
    n_excluding=n_excluding,
    n_differences=n_differences,
    command=compare.COMMAND,
)

# %% [markdown]
# ## What this chapter found
#
# On the phantom, written once as the DICOM release and once as the Kaggle JPEG re-release (this
# measures the JPEG round trip of the pipeline, not the real copies):
#
# - {glue:text}`shift_text`
# - {glue:text}`difference_text`
# - {glue:text}`verdict_text`
# - On two real copies, `mcalc compare RUN_A RUN_B` answers the same questions.
