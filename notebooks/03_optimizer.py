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
# # InceptionResNetV2 with one optimizer (Sections 3.1–3.4, Figures 4–7, Tables 3–4)
#
# One template, executed once per optimizer. The frozen backbone's cached features (chapter 2) feed
# the paper's head, Dense(128, ReLU) → Dense(3, softmax), trained with the Kullback–Leibler divergence
# loss, batch 32, 20 epochs, learning rate 1e-4 and the optimizer's own settings from the paper (the
# sensitivity analyses of chapter 5 run this same template at other learning rates).
# Validation is 200 ROIs held out of the official training split, grouped by patient; the test set
# is the official, patient-disjoint test split (326 ROIs on the real data).

# %% tags=["parameters"]
seed = 0
task = "three-class"  # three-class (the paper), binary-merged or binary-biopsied
image_size = 299
weights = "auto"
results_dir = "results"
n_boot = 1000
optimizer = "adam"  # adam, adagrad, adadelta or rmsprop
learning_rate = 1e-4
batch_size = 32
epochs = 20
validation_size = 200  # ROIs (an int) or a fraction of the training split (a float < 1)
train_backbone = "none"  # "none": the paper's frozen backbone (cached features); "top" or "all": fine-tune (GPU advised)
split_seed = None  # seed of the validation split (None: the run's seed)
run_record = ""  # path of the run's JSON (empty: results_dir/runs/cnn_OPTIMIZER.json)


# %%
from mcalc.run.parameters import check_parameters

check_parameters(globals())  # each parameter against its spec: one line naming a bad value

# %%
from mcalc.chapters.inputs import StepInputs
from mcalc.chapters.training import run_optimizer
from mcalc.learn.model import TrainConfig
from mcalc.report import items, plots, tables

config = TrainConfig(
    optimizer=optimizer,
    learning_rate=learning_rate,
    batch_size=batch_size,
    epochs=epochs,
    seed=seed,
    task=task,
)
inputs = StepInputs(
    results_dir,
    image_size,
    weights,
    config,
    validation_size=validation_size,
    n_boot=n_boot,
    split_seed=split_seed,
)
run = run_optimizer(inputs, train_backbone=train_backbone, record=run_record)
print(run.provenance.label())
print(run.describe())

# %% [markdown]
# ## The paper's figure for this optimizer: loss, accuracy and sensitivity per epoch
#
# Training and validation curves; sensitivity is Keras' *sensitivity at specificity 0.8*, the metric
# the paper plots and tabulates.

# %%
items.show_figure(
    plots.training_curves(run.history, title=run.paper_name),
    f"{run.item_lead(run.figure_label)} Output obtained using the {run.paper_name} optimizer: (a) loss function; (b) accuracy; (c) sensitivity at specificity 0.8; training and validation per epoch",
    run.provenance,
)

# %% [markdown]
# ## Table 3 and Table 4 rows for this optimizer, beside the paper's

# %%
items.show_table(
    tables.without_differences(tables.table3_row(run), run.provenance),
    f"{run.item_lead('Table 3')} Training loss and accuracy after the last epoch, {run.paper_name}: ours and the paper's{tables.difference_words(run.provenance)}."
    + tables.paper_note(run.provenance),
    run.provenance,
    precision=4,
)

# %%
items.show_table(
    tables.long_comparison(tables.table4_row(run), run.provenance),
    f"{run.item_lead('Table 4')} Validation and test loss, accuracy (raw and standardised to the paper's test mix), AUC, sensitivity at specificity 0.8 and Brier score with patient-level 95% CIs (cluster-Wilson for proportions, bootstrap otherwise) (and the patients / lesions / ROIs they rest on), {run.paper_name}: ours and the paper's{tables.difference_words(run.provenance)}; AUC pooled as the paper's, macro as its own row."
    + tables.paper_note(run.provenance),
    run.provenance,
)

# %% [markdown]
# ## All metrics on the official test split, per class
#
# Specificity here is TN / (TN + FP), not the paper's Eq. 4.

# %%
items.show_table(
    run.test.table(),
    f"Test metrics, {run.paper_name} — point estimates, patient-level 95% CIs (cluster-Wilson for proportions, bootstrap otherwise) and the ROIs, lesions and patients each rests on (per class for per-class metrics)",
    run.provenance,
)

# %%
items.show_figure(
    plots.roc_and_confusion(run.test, title=run.paper_name),
    f"ROC curves (one vs rest) and confusion matrix on the test split, {run.paper_name}",
    run.provenance,
)

# %%
# NBVAL_CHECK_OUTPUT
print(f"saved: {run.path.name}; history: {len(run.history)} epochs; test ROIs: {run.test.n}")

# %%
from mcalc import paper

items.glue_numbers(
    epochs_run=len(run.history),
    n_test=run.test.n,
    test_accuracy=run.test.accuracy,
    test_auc=run.test.auc_pooled,
    test_sensitivity=run.test.sensitivity_at_spec80,
    paper_accuracy=paper.table4().loc[optimizer, "accuracy"],
    paper_auc=paper.table4().loc[optimizer, "auc"],
    paper_sensitivity=paper.table4().loc[optimizer, "sensitivity_at_spec80"],
)

# %% [markdown]
# ## What this chapter found
#
# - After {glue:text}`epochs_run` epochs, the head's accuracy on the {glue:text}`n_test` test ROIs is
#   {glue:text}`test_accuracy:.3f`, its pooled AUC (the paper's) {glue:text}`test_auc:.3f` and its sensitivity at
#   specificity 0.8 {glue:text}`test_sensitivity:.3f`; the paper's Table 4 gives
#   {glue:text}`paper_accuracy:.2f`, {glue:text}`paper_auc:.2f` and {glue:text}`paper_sensitivity:.2f`
#   for this optimizer ({ref}`Table 4 <05_comparison-table-4>` of chapter 5 sets every model side by side).
# - These numbers carry this run's provenance (the box at the top and the label under each table): on
#   the phantom or with a randomly initialised backbone they test the pipeline, not the paper.
