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
# # Preprocessing and the transfer-learning model (Sections 2.2–2.3, Figures 1–3, Table 2)
#
# Each cropped ROI is min–max scaled to [0, 255], stretched to a square, resized to 299 × 299 with
# antialiased bicubic interpolation, its grey level copied to three channels, and scaled by
# InceptionResNetV2's own `preprocess_input`. The scaling and the filter are assumptions: the paper
# says only "inter-cubic interpolation" (see the methods, and the speck table below). The
# backbone is InceptionResNetV2 without its classification top, with global average pooling and
# frozen weights; the paper adds Dense(128, ReLU) and Dense(3, softmax). Because the backbone is
# frozen, its 1,536-dimensional features are computed here once and cached for every later chapter.

# %% tags=["parameters"]
seed = 0
image_size = 299  # the paper: 299 (the backbone accepts 75 and more)
weights = "auto"  # "auto", "imagenet", "random" or a path to an .h5 file
resize_antialias = True  # False: point-sampled cubic, like OpenCV's INTER_CUBIC (see the methods)
backbone_variant = "folded"  # or "folded+bf16": opt-in bfloat16, faster, not float32's features
results_dir = "results"
cache_dir = "cache"


# %%
from mcalc.run.parameters import check_parameters

check_parameters(globals())  # each parameter against its spec: one line naming a bad value

# %%
from mcalc.learn.architecture import architecture_summary
from mcalc.learn.features import compute_features
from mcalc.learn.model import build_model
from mcalc.learn.preprocessing import speck_contrast
from mcalc.learn.weights import resolve_weights
from mcalc.records.results import load_manifest, read_results_provenance
from mcalc.report import items, network, plots, tables

manifest = load_manifest(results_dir)
weights_info = resolve_weights(weights)
provenance = read_results_provenance(results_dir).with_weights(weights_info.used, weights_info.note)
items.log(provenance.label())  # run messages, in the kernel's log
items.log(weights_info.note)  # the full reason
items.show_note(items.weights_sentence(weights_info))

# %% [markdown]
# ## Figure 1 — mammogram, cropped ROI, resized ROI, per class

# %%
items.show_figure(
    plots.figure1(manifest, image_size=image_size, seed=seed),
    f"Figure 1 — (a) full mammogram with the ROI box, (b) the cropped ROI, the ROI resized to {image_size} × {image_size} (c) with antialiased bicubic (the default) and (d) point-sampled cubic, one row per class",
    provenance,
)

# %% [markdown]
# Column (c) is the default filter; column (d) the point-sampled cubic that OpenCV's `INTER_CUBIC`
# (the likely reading of the paper's "inter-cubic interpolation") applies when it shrinks a ROI. The
# difference is in the smallest specks: shrinking a 1,000-pixel ROI to 299 (about 3.3 : 1), a
# point-sampled filter keeps or drops a speck a pixel or two wide (0.05–0.1 mm on DDSM's scanners)
# depending on where it falls, while the antialiased one keeps it at a brightness set by its area.
# The table measures it on a unit speck moved over one output pixel.

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    speck_contrast(),
    "What each resize filter does to a bright square speck when a 1000-pixel ROI is resized to 299: its smallest and largest peak over eight sub-pixel positions",
    None,
    precision=3,
)

# %% [markdown]
# ## Table 2 — the architecture, read off the built model

# %%
model = build_model(image_size, weights_info)

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    tables.table2(model, image_size),
    "Table 2 — Architecture of the transfer-learning model: ours (read off the built Keras model) and the paper's",
    provenance,
)

# %% [markdown]
# ## Figure 2 — the proposed network, and Figure 3 — InceptionResNetV2
#
# Both are drawn from the built Keras model (layer names and output shapes), not redrawn by hand.

# %%
items.show_figure(
    network.figure2(model),
    "Figure 2 — The proposed network: frozen InceptionResNetV2 → Dense(128, ReLU) → Dense(3, softmax), with the output shape of each stage",
    provenance,
)

# %%
items.show_figure(
    network.figure3(model),
    "Figure 3 — InceptionResNetV2 as built: stem, Inception-ResNet-A/B/C blocks and reduction blocks with their output grids (35 × 35 → 17 × 17 → 8 × 8 at 299 px input)",
    provenance,
)

# %%
# NBVAL_CHECK_OUTPUT
items.show_table(
    architecture_summary(model),
    "Layer summary of the end-to-end model (trainable parameters are the head's only)",
    provenance,
)

# %% [markdown]
# ## Backbone features, computed once and cached
#
# The cache is keyed by the content of each DICOM file, the preprocessing, the weights and how the
# backbone runs (float32 by default; a bfloat16 `backbone_variant` is named on every label), so a
# later chapter (or a re-run) reuses it, and a changed input recomputes only its own row.

# %%
features = compute_features(
    manifest,
    image_size=image_size,
    weights_info=weights_info,
    cache_dir=cache_dir,
    results_dir=results_dir,
    provenance=provenance,
    antialias=resize_antialias,
    variant=backbone_variant,
)
provenance = read_results_provenance(results_dir)  # now naming the backbone's arithmetic
items.show_note(provenance.precision_sentence())

# %%
# NBVAL_CHECK_OUTPUT
print(f"features: {features.shape[0]} ROIs × {features.shape[1]} dimensions")

# %%
items.glue_numbers(
    n_rois=features.shape[0], n_dims=features.shape[1], weights_label=provenance.label()
)

# %% [markdown]
# ## What this chapter found
#
# - Every usable ROI went through the paper's preprocessing and the frozen backbone once:
#   {glue:text}`n_rois` ROIs × {glue:text}`n_dims` pooled features, cached for the chapters that follow.
# - The network is the paper's {ref}`Figure 2 <02_preprocessing-figure-2>`, read off the built model, with the
#   backbone of {ref}`Figure 3 <02_preprocessing-figure-3>`; {ref}`Table 2 <02_preprocessing-table-2>` sets its
#   architecture beside the paper's.
# - Provenance of these features: {glue:text}`weights_label`.
