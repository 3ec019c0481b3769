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
# # Data: CBIS-DDSM calcification ROIs (Section 2.1, Table 1)
#
# The paper classifies the calcification {term}`regions of interest (ROIs) <ROI>` of CBIS-DDSM into BENIGN,
# {term}`BENIGN_WITHOUT_CALLBACK` and MALIGNANT. This chapter reads the official case-description tables and
# the DICOM tree below them, resolves every image path, decides crop versus ROI mask by content, and
# writes one manifest row per ROI together with an exclusion report: nothing is dropped silently.
# By default the data are the offline **{term}`phantom`** (see the introduction); with `data_source =
# "cbis-ddsm"` and `data_root` pointing at a download, the same code reads the real images — the
# DICOM release, or the Kaggle JPEG re-release (8-bit, lossy; the label below says which, and the
# Methods what it changes).
#
# What needs no pixel is real in every build: Table 1, the patients, lesions and views per class, and
# the BI-RADS assessment rule are computed from the official CBIS-DDSM calcification tables that ship
# with mcalc, whatever the data source, and are labelled "real CBIS-DDSM case-description tables
# (metadata only)". The curation report and the sample ROIs describe the data this run read.

# %% tags=["parameters"]
data_source = "phantom"  # "phantom" (generated offline) or "cbis-ddsm" (your download)
data_root = ""  # your download's folder; "" for the phantom: data/phantom/uid-scale<s>-seed<n>
phantom_scale = 1.0  # 1.0 gives the real sizes: 1546 + 326 calcification ROIs
seed = 0
task = "three-class"  # three-class (the paper), binary-merged or binary-biopsied
results_dir = "results"
n_boot = 1000


# %%
from mcalc.run.parameters import check_parameters

check_parameters(globals())  # each parameter against its spec: one line naming a bad value

# %%
from mcalc import names
from mcalc.chapters.prepare import prepare_data
from mcalc.evaluate import metadata
from mcalc.records.results import read_results_provenance
from mcalc.report import items, plots, tables

curation = prepare_data(
    data_source,
    data_root,
    phantom_scale=phantom_scale,
    seed=seed,
    results_dir=results_dir,
    task=task,
)
provenance = read_results_provenance(results_dir)
real = metadata.provenance()
real_rows = metadata.read_real_tables()
print(provenance.label())
print(real.label())

# %% [markdown]
# ## Table 1 — images per class, training and testing
#
# The ROIs per class of the official CBIS-DDSM calcification tables, counted by our reader, beside
# the paper's Table 1 (and, when a real download was curated, its usable ROIs after exclusions). The
# training counts agree within one ROI; the paper's test counts (99 / 133 / 94) do not match the
# official test table (67 / 130 / 129), the only release checked here, although their total (326) does.

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    metadata.table1(curation, real_rows),
    "Table 1 — Number of ROI images per class: ours from the official CBIS-DDSM tables, the paper's",
    real,
)

# %%
items.show_figure(
    plots.table1_chart(metadata.table1(curation, real_rows)),
    "Table 1 as a chart — ROIs per class in the official CBIS-DDSM tables beside the paper's Table 1, training and test split: the training counts agree, the test counts per class do not",
    real,
    name="table-1-chart",
)

# %% [markdown]
# ## Patients, lesions and views
#
# ROIs are not independent: one lesion is usually seen in both views (CC and MLO), a mammogram can
# hold several lesions, and a patient several mammograms. A lesion is one patient, breast side and
# abnormality id; a patient with lesions of two classes counts in both class rows.

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    metadata.structure(real_rows),
    "ROIs, lesions, mammograms and patients per class and split of the official tables",
    real,
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
items.show_table(
    tables.curation_report(curation),
    "Curation report — rows read, usable, excluded and corrected, per split",
    provenance,
)

# %%
items.show_table(
    curation.exclusions, "Exclusions — one line per excluded ROI, with its reason", provenance
)

# %%
items.show_table(curation.swaps, "Corrected crop/mask swaps", provenance)

# %% [markdown]
# ## Your download against the shipped tables
#
# When the data are a real download, its tables are compared record by record with the shipped 2017
# release (an updated release, or an edited copy, shows up here).

# %%
download_check = metadata.check_download(curation, real_rows)
items.show_table(
    download_check.summary,
    "Records of your tables against the shipped ones, per split",
    real,
    empty=download_check.note,
)
items.show_table(download_check.differences, "Records that differ from the shipped tables", real)

# %% [markdown]
# ## The metadata behind the labels
#
# BENIGN_WITHOUT_CALLBACK marks lesions that were not biopsied, and the BI-RADS assessment is the
# radiologist's reading; in the official tables that class is almost exactly
# assessment 2. This is a property of the labels, not of the images: a model that sees the
# assessment (or anything correlated with it) inherits it. Pathology by assessment:

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    metadata.assessment_crosstab(real_rows),
    "Pathology by BI-RADS assessment in the official tables",
    real,
)

# %% [markdown]
# A rule that sees only the assessment — the most frequent training pathology of each assessment
# value — is a reference point for what the label structure allows, not a bar for an image model,
# which never sees the assessment. Its confidence intervals resample patients
# (all of a patient's ROIs together), as every interval of the book does.

# %%
reference = metadata.reference_rules(real_rows, n_boot=n_boot, seed=seed)
items.show_table(
    reference.rule,
    "The BI-RADS assessment rule learned on the official training table: class counts, smoothed probabilities, the rule's class",
    real,
)

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    reference.table(),
    "The BI-RADS assessment rule and the majority class on the official test table, with patient-level 95% CIs (cluster-Wilson for proportions, bootstrap otherwise)",
    real,
)

# %% [markdown]
# ## Sample ROIs per class, and what the radiologist's words mean
#
# ```{admonition} A short clinical primer: calcifications in BI-RADS
# :class: tip mcalc-primer
# Radiologists describe breast calcifications with the {term}`BI-RADS` lexicon
# {cite}`dorsi2013birads`, and CBIS-DDSM records these words for every ROI
# (its *calc type* and *calc distribution*, shown above each sample below).
#
# **Morphology** (the shape of the individual specks). *Typically benign*: skin, vascular, coarse
# or "popcorn-like", large rod-like, round (punctate when under 0.5 mm), rim, dystrophic, milk of
# calcium and suture calcifications; CBIS-DDSM's LUCENT_CENTER and EGGSHELL belong here.
# *Suspicious*, in increasing order of concern: amorphous, coarse heterogeneous, fine pleomorphic,
# and fine linear or fine-linear branching.
#
# **Distribution** (how the specks are arranged). Diffuse (scattered over the breast) and regional
# (a large area, more than 2 cm) are more often benign; grouped or *clustered* (a few specks within
# 1 cm, up to 2 cm), linear (in a line, suggesting a duct) and segmental (a duct and its branches)
# raise concern, the last two most.
#
# Morphology and distribution together set the risk; the descriptors' positive predictive values
# for malignancy rise from the benign types to fine linear branching {cite}`burnside2007`. The
# {term}`assessment <BI-RADS>` (0–5) sums the reading up, which is why it predicts the pathology label so
# well (see the rule above), and why an image model is not meant to see it.
# ```

# %%
items.show_figure(
    plots.sample_grid(curation.usable(), n_per_class=4, seed=seed),
    "Sample ROIs — four cropped ROIs per class, as curated",
    provenance,
)

# %% [markdown]
# ## Data dictionary of the case-description tables

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    names.data_dictionary(metadata.shipped_tables()),
    "Data dictionary — the columns of the official CBIS-DDSM calcification case-description tables: what each records, its distinct values over both splits and the most frequent",
    real,
    name="data-dictionary",
)

# %%
items.glue_numbers(
    n_rows=len(curation.manifest),
    n_usable=len(curation.usable()),
    n_excluded=len(curation.exclusions),
    n_swaps=len(curation.swaps),
    rule_accuracy=reference.evaluations["BI-RADS assessment only (metadata rule)"].accuracy,
    majority_accuracy=reference.evaluations["Majority class"].accuracy,
)

# %% [markdown]
# ## What this chapter found
#
# - This run's data: {glue:text}`n_rows` ROI rows read, {glue:text}`n_usable` usable,
#   {glue:text}`n_excluded` excluded (each with its reason above) and {glue:text}`n_swaps` crop/mask
#   swaps corrected.
# - {ref}`Table 1 <01_data_curation-table-1>`: the paper's training counts agree with the official tables within one ROI; its test counts
#   per class do not, although their total does.
# - The labels carry a shortcut: on the official test table the BI-RADS assessment alone reaches an
#   accuracy of {glue:text}`rule_accuracy:.3f`, against {glue:text}`majority_accuracy:.3f` for the
#   majority class (real tables, metadata only).
