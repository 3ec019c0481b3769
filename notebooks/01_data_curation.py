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
# # 1. Data: CBIS-DDSM calcification ROIs (Section 2.1, Table 1)
#
# The paper classifies the calcification regions of interest (ROIs) of CBIS-DDSM into BENIGN,
# BENIGN_WITHOUT_CALLBACK and MALIGNANT. This chapter reads the official case-description tables and
# the DICOM tree below them, resolves every image path, decides crop versus ROI mask by content, and
# writes one manifest row per ROI together with an exclusion report: nothing is dropped silently.
# By default the data are the offline **phantom** (see the introduction); with `data_source =
# "cbis-ddsm"` and `data_root` pointing at a download, the same code reads the real images.

# %% tags=["parameters"]
data_source = "phantom"  # "phantom" (generated offline) or "cbis-ddsm" (your download)
data_root = "data/phantom"  # where the phantom is generated, or the folder of your download
phantom_scale = 1.0  # 1.0 gives the real sizes: 1546 + 326 calcification ROIs
seed = 0
image_size = 299
weights = "auto"
results_dir = "results"
cache_dir = "cache"
n_boot = 1000

# %%
import mcalc.study as study
from mcalc import plots

curation = study.prepare_data(
    data_source, data_root, phantom_scale=phantom_scale, seed=seed, results_dir=results_dir
)
provenance = study.read_results_provenance(results_dir)
print(provenance.label())

# %% [markdown]
# ## Table 1 — images per class, training and testing
#
# Our counts (usable ROIs after curation) beside the paper's Table 1 and the official CBIS-DDSM
# calcification tables. The paper's test counts (99 / 133 / 94) match no release of CBIS-DDSM.

# %%
# NBVAL_CHECK_OUTPUT
table1 = study.table1(curation)
plots.show_table(
    table1,
    "Table 1 — Number of ROI images per class: ours, the paper's, the official CBIS-DDSM tables",
    provenance,
)

# %% [markdown]
# ## What curation excluded or corrected
#
# Every row of the case-description tables is in the manifest. Rows that cannot be used (missing or
# unreadable DICOM, a mask whose size differs from its mammogram, an unknown pathology, a duplicate)
# are listed here with their reason; crop/mask pairs that were swapped on disk were detected by
# content and corrected.

# %%
# NBVAL_CHECK_OUTPUT
plots.show_table(
    study.curation_report(curation),
    "Curation report — rows read, usable, excluded and corrected, per split",
    provenance,
)

# %%
plots.show_table(
    curation.exclusions, "Exclusions — one line per excluded ROI, with its reason", provenance
)

# %%
plots.show_table(curation.swaps, "Corrected crop/mask swaps", provenance)

# %% [markdown]
# ## The metadata behind the labels
#
# BENIGN_WITHOUT_CALLBACK marks lesions that were not biopsied, and the BI-RADS assessment is the
# radiologist's (partly post-hoc) reading; in the official tables that class is almost exactly
# assessment 2. This is a property of the labels, not of the images: a model that sees the
# assessment (or anything correlated with it) inherits it. Pathology by assessment:

# %%
# NBVAL_CHECK_OUTPUT
plots.show_table(
    study.crosstab(curation, "assessment"),
    "Pathology by BI-RADS assessment (usable ROIs)",
    provenance,
)

# %% [markdown]
# ## Sample ROIs per class

# %%
plots.show_figure(
    plots.sample_grid(curation.usable(), n_per_class=4, seed=seed),
    "Sample ROIs — four cropped ROIs per class, as curated",
    provenance,
)
