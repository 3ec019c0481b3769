"""The numbers Singh et al. (2022) published, transcribed from the paper (cited, never computed)."""

from __future__ import annotations

import pandas as pd

CITATION = (
    "Singh KK, Kumar S, Antonakakis M, Moirogiorgou K, Deep A, Kashyap KL, Bajpai MK, Zervakis M. "
    "Deep Learning Capabilities for the Categorization of Microcalcification. "
    "Int. J. Environ. Res. Public Health 2022, 19, 2159. doi:10.3390/ijerph19042159"
)

#: Optimizer names as the paper spells them, keyed by mcalc's names.
PAPER_OPTIMIZER_NAMES = {
    "adam": "ADAM",
    "adagrad": "ADAGrad",
    "adadelta": "ADADelta",
    "rmsprop": "RMSProp",
}


def table1() -> pd.DataFrame:
    """Table 1: images per class, training and testing, as printed in the paper."""
    return pd.DataFrame(
        {"Training": [474, 528, 545], "Testing": [99, 133, 94]},
        index=pd.Index(["BENIGN_WITHOUT_CALLBACK", "BENIGN", "MALIGNANT"], name="class"),
    )


def table2() -> pd.DataFrame:
    """Table 2: the transfer-learning architecture, as printed in the paper."""
    return pd.DataFrame(
        [
            {
                "Optimizer": "Adam AdaGrad AdaDelta RMSProp",
                "Input Shape": "299 × 299 × 3",
                "Fully Connected Neurons": 128,
                "Fully Connected Activation Function": "Relu",
                "Output": 3,
                "Output Activation Function": "Softmax",
            }
        ]
    )


def table3() -> pd.DataFrame:
    """Table 3: training loss and accuracy per optimizer (lr 1e-4, batch 32, KL divergence)."""
    return pd.DataFrame(
        {
            "training_loss": [0.1134, 0.0212, 0.1293, 0.1193],
            "training_accuracy": [0.9813, 0.9813, 0.9816, 0.9810],
        },
        index=pd.Index(["adam", "adagrad", "adadelta", "rmsprop"], name="optimizer"),
    )


def table4() -> pd.DataFrame:
    """Table 4: validation loss, accuracy, AUC and sensitivity at specificity 0.8 per model.

    The SVM row prints its sensitivity as "91" (a percentage among fractions); it is given here as 0.91.
    The baselines have no loss (printed as "-").
    """
    return pd.DataFrame(
        {
            "loss": [0.21, 0.67, 0.28, 0.32, None, None],
            "accuracy": [0.93, 0.93, 0.94, 0.92, 0.91, 0.89],
            "auc": [0.95, 0.93, 0.96, 0.95, 0.90, 0.88],
            "sensitivity_at_spec80": [0.96, 0.93, 0.97, 0.95, 0.91, 0.89],
        },
        index=pd.Index(["adam", "adagrad", "adadelta", "rmsprop", "svm", "knn"], name="model"),
    )


def table5() -> pd.DataFrame:
    """Table 5: the paper's literature comparison, normalised to fractions (the paper mixes % and fractions)."""
    rows = [
        (
            "Ribli et al. [11]",
            "faster R-CNN",
            0.92,
            0.95,
            0.96,
            "INbreast; lesion detection (masses and calcifications)",
        ),
        ("Arevalo et al. [12]", "CNN", 0.90, 0.82, 0.85, "BCDR-F03 film; masses only"),
        ("Dhungel et al. [13]", "CNN", 0.92, 0.93, 0.98, "INbreast; masses only"),
        (
            "Becker et al. [14]",
            "CNN",
            0.81,
            0.89,
            0.87,
            "private digital mammograms; cancer detection",
        ),
        (
            "Proposed DL model with ADAM",
            "Inception ResNetV2",
            0.93,
            0.95,
            0.96,
            "CBIS-DDSM calcifications, 3 classes",
        ),
        (
            "Proposed DL model with ADAGrad",
            "Inception ResNetV2",
            0.93,
            0.93,
            0.93,
            "CBIS-DDSM calcifications, 3 classes",
        ),
        (
            "Proposed DL model with ADADelta",
            "Inception ResNetV2",
            0.94,
            0.96,
            0.97,
            "CBIS-DDSM calcifications, 3 classes",
        ),
        (
            "Proposed DL model with RMSProp",
            "Inception ResNetV2",
            0.92,
            0.95,
            0.95,
            "CBIS-DDSM calcifications, 3 classes",
        ),
    ]
    return pd.DataFrame(
        rows, columns=["article", "model", "accuracy", "auc", "sensitivity", "task_and_data"]
    )


def headline_claims() -> pd.DataFrame:
    """The paper's headline claims (abstract, Section 3 and Conclusions) that the verdict table tests."""
    rows = [
        ("accuracy", "Validation/test accuracy 94% (ADADelta)", 0.94),
        ("auc", "AUC 0.96 (ADADelta)", 0.96),
        ("sensitivity_at_spec80", "Sensitivity 0.97 at specificity 0.80 (ADADelta)", 0.97),
        ("specificity", "Specificity 0.80", 0.80),
        (
            "beats_classical",
            "Outperforms classical machine learning (GLCM + SVM 0.91, k-NN 0.89 accuracy)",
            None,
        ),
        (
            "optimizer_insensitive",
            "Performs efficiently irrespective of the optimizer (0.92-0.94 accuracy)",
            None,
        ),
    ]
    return pd.DataFrame(rows, columns=["claim_id", "claim", "paper_value"])


def literature_anchors() -> pd.DataFrame:
    """Published results on CBIS-DDSM under its official, patient-disjoint split: what the task allows."""
    rows = [
        (
            "Shen et al. 2019 [shen2019]",
            "VGG16/ResNet50 patch → whole-image classifier",
            None,
            0.88,
            None,
            "CBIS-DDSM official test split; whole images, calcifications and masses, benign vs malignant (best single model; 0.91 averaging four)",
        ),
        (
            "Mračko et al. 2024 [mracko2024]",
            "ResNet101 (fine-tuned)",
            0.762,
            None,
            None,
            "calcification ROIs, benign vs malignant; trained on CBIS-DDSM + OPTIMAM combined",
        ),
    ]
    return pd.DataFrame(
        rows, columns=["article", "model", "accuracy", "auc", "sensitivity", "task_and_data"]
    )
