"""The numbers Singh et al. (2022) published (cited, never computed), and the literature as its sources state it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import MappingProxyType

import pandas as pd

CITATION = (
    "Singh KK, Kumar S, Antonakakis M, Moirogiorgou K, Deep A, Kashyap KL, Bajpai MK, Zervakis M. "
    "Deep Learning Capabilities for the Categorization of Microcalcification. "
    "Int. J. Environ. Res. Public Health 2022, 19, 2159. doi:10.3390/ijerph19042159"
)

#: The four optimizers the paper compares (§3.1–3.4), by mcalc's names, in the paper's order.
OPTIMIZERS = ("adam", "adagrad", "adadelta", "rmsprop")
#: Optimizer names as the paper spells them, keyed by mcalc's names.
PAPER_OPTIMIZER_NAMES = dict(zip(OPTIMIZERS, ("ADAM", "ADAGrad", "ADADelta", "RMSProp")))
#: The paper's figure of each optimizer's training curves (§3.1–3.4: Figures 4–7).
FIGURE_OF_OPTIMIZER = {opt: f"Figure {i}" for i, opt in enumerate(OPTIMIZERS, start=4)}
#: The learning rate of every network the paper reports (§2.4, §3.1–3.4).
LEARNING_RATE = 1e-4
#: The mini-batch size of its training (§2.4, Table 3).
BATCH_SIZE = 32
#: Training epochs per optimizer (§2.4, Figures 4–7).
EPOCHS = 20
#: The backbone's input side in pixels: ROIs are resized to 299 × 299 × 3 (§2.2, Table 2).
IMAGE_SIZE = 299
#: ROIs of the training split held out for validation (the paper's 1547 train, 200 validation, 326 test).
VALIDATION_SIZE = 200
#: The learning rates of the paper's search (§2.4), from which it reports 1e-4.
SEARCH_LEARNING_RATES = (1e-2, 1e-3, 1e-4, 1e-5)

#: Each optimizer's settings (§2.4, §3.1–3.4: learning rate 1e-4 for all four; the rest are Keras'
#: defaults, which the paper does not change), by mcalc's names.
PAPER_OPTIMIZER_SETTINGS: MappingProxyType = MappingProxyType(
    {
        "adam": MappingProxyType(
            {"learning_rate": LEARNING_RATE, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
        ),
        "adagrad": MappingProxyType(
            {
                "learning_rate": LEARNING_RATE,
                "initial_accumulator_value": 0.1,
                "epsilon": 1e-7,
            }
        ),
        "adadelta": MappingProxyType(
            {"learning_rate": LEARNING_RATE, "rho": 0.95, "epsilon": 1e-7}
        ),
        "rmsprop": MappingProxyType(
            {"learning_rate": LEARNING_RATE, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7}
        ),
    }
)
#: The order in which the paper's tables list the classes (Table 1).
PAPER_CLASS_ORDER = ("BENIGN_WITHOUT_CALLBACK", "BENIGN", "MALIGNANT")


def table1() -> pd.DataFrame:
    """Table 1: images per class, training and testing, as printed in the paper."""
    return pd.DataFrame(
        {"Training": [474, 528, 545], "Testing": [99, 133, 94]},
        index=pd.Index(PAPER_CLASS_ORDER, name="class"),
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
        index=pd.Index(OPTIMIZERS, name="optimizer"),
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
        index=pd.Index([*OPTIMIZERS, "svm", "knn"], name="model"),
    )


@dataclass(frozen=True)
class Source:
    """One study of the literature as its own text states it: task, classes, data, split, quoted and cited."""

    article: str  # as shown in Table 5
    key: str  # BibTeX key in book/references.bib
    model: str
    accuracy: float | None
    auc: float | None
    sensitivity: float | None
    task: str
    classes: str
    data: str
    split: str
    quote: str  # the source's own words that carry the numbers above ("" when it could not be read here)
    where: str  # where the quote was read
    comparable: str  # how far it is comparable with three-class CBIS-DDSM calcification ROIs


#: The four studies of the paper's Table 5, with the numbers the paper attributes to them and what
#: their sources say. Ribli et al.'s and Arevalo et al.'s abstracts could be read here; Dhungel et al.
#: and Becker et al. are described by their titles and by the paper's own sentence about them, and
#: say why (no copy of their abstracts could be found).
TABLE5_SOURCES: tuple[Source, ...] = (
    Source(
        article="Ribli et al. [11]",
        key="ribli2018",
        model="faster R-CNN",
        accuracy=0.92,
        auc=0.95,
        sensitivity=0.96,
        task="lesion detection and benign/malignant classification on whole mammograms",
        classes="malignant vs benign (image-level cancer classification)",
        data="INbreast (full-field digital); the DREAM Digital Mammography challenge",
        split="not stated in the abstract",
        quote=(
            "The proposed method sets the state of the art classification performance on the public "
            "INbreast database, AUC = 0.95. The approach described here has achieved 2nd place in the "
            "Digital Mammography DREAM Challenge with AUC = 0.85."
        ),
        where="abstract, Sci. Rep. 8:4165 (2018), doi:10.1038/s41598-018-22437-z",
        comparable=(
            "no: whole-image detection and classification on INbreast; the AUC 0.95 is in the abstract, "
            "the accuracy 0.92 and sensitivity 96 attributed to it by Singh et al. are not"
        ),
    ),
    Source(
        article="Arevalo et al. [12]",
        key="arevalo2016",
        model="CNN",
        accuracy=0.90,
        auc=0.82,
        sensitivity=0.85,
        task="mass lesion classification on film mammograms (segmented lesions, learned features)",
        classes="2: benign vs malignant masses (426 benign, 310 malignant lesions)",
        data="a new biopsy-proven data set: 736 film mammography views (CC and MLO) of 344 patients",
        split="not stated in the abstract",
        quote=(
            "increasing the performance from 0.787 to 0.822 in terms of the area under the ROC curve "
            "(AUC) ... the combination of both representations, learned and hand-crafted, resulted in "
            "the best descriptor for mass lesion classification, obtaining 0.826 in the AUC score."
        ),
        where=(
            "abstract, Comput. Methods Programs Biomed. 127:248-257 (2016); the abstract reports AUCs "
            "only: the AUC 0.82 matches its 0.822, the accuracy 0.90 and sensitivity 0.85 Singh et al. "
            "attribute to it are not in it"
        ),
        comparable="no: masses only, 2 classes, film mammograms of another collection",
    ),
    Source(
        article="Dhungel et al. [13]",
        key="dhungel2017",
        model="CNN",
        accuracy=0.92,
        auc=0.93,
        sensitivity=0.98,
        task="detection, segmentation and classification of masses (title: 'the analysis of masses')",
        classes="masses (per the title)",
        data="not established: the abstract could not be read here",
        split="not established: the abstract could not be read here",
        quote="",
        where=(
            "title and Singh et al. §3; the abstract could not be read here (searches of the stored "
            "public pages by its title and by its authors found no copy of it)"
        ),
        comparable="no: masses only",
    ),
    Source(
        article="Becker et al. [14]",
        key="becker2017",
        model="CNN",
        accuracy=0.81,
        auc=0.89,
        sensitivity=0.87,
        task="breast cancer detection on digital mammograms (Singh et al.'s description)",
        classes="cancer vs no cancer (per Singh et al.)",
        data="digital mammograms (per Singh et al.)",
        split="not established: the abstract could not be read here",
        quote="",
        where=(
            "Singh et al. §3; the abstract could not be read here (searches of the stored public pages "
            "by its title and by its authors found no copy of it)"
        ),
        comparable="no: cancer detection, not calcification classification",
    ),
)

#: Published results closer to this task, each described exactly as its source states it.
ANCHOR_SOURCES: tuple[Source, ...] = (
    Source(
        article="Shen et al. 2019 [shen2019]",
        key="shen2019",
        model="patch classifier (VGG16 / ResNet50) → all-convolutional whole-image classifier",
        accuracy=None,
        auc=0.88,
        sensitivity=None,
        task="whole-mammogram cancer classification (per image), not ROI classification",
        classes=(
            "2: malignant vs not, per whole image; CBIS-DDSM images carry masses and calcifications "
            "together"
        ),
        data="CBIS-DDSM digitized film mammograms (and INbreast FFDM)",
        split="'an independent test set' (the abstract does not say how it was drawn)",
        quote=(
            "On an independent test set of digitized film mammograms from the Digital Database for "
            "Screening Mammography (CBIS-DDSM), the best single model achieved a per-image AUC of 0.88, "
            "and four-model averaging improved the AUC to 0.91 (sensitivity: 86.1%, specificity: 80.1%)."
        ),
        where="abstract, Sci. Rep. 9:12495 (2019), doi:10.1038/s41598-019-48995-4",
        comparable="partly: same collection, but whole images, masses and calcifications, 2 classes",
    ),
    Source(
        article="Mračko et al. 2024 [mracko2024]",
        key="mracko2024",
        model="ResNet101",
        accuracy=0.762,
        auc=None,
        sensitivity=None,
        task="classification of breast calcifications",
        classes=(
            "2 (benign vs malignant, biopsied findings, per the full text; the abstract does not name "
            "the classes)"
        ),
        data="CBIS-DDSM (digitised film) and OPTIMAM (digital) combined for training",
        split="not established from the source",
        quote=(
            "Results confirmed the lack of seamless transferability, prompting the creation of a "
            "combined dataset for training, significantly improving overall model accuracy to 76.2%."
        ),
        where="abstract, BIOSTEC 2024 (SciTePress), scitepress.org/publishedPapers/2024/125352",
        comparable="partly: calcifications, but 2 classes and CBIS-DDSM pooled with OPTIMAM",
    ),
)


def _source_frame(sources: tuple[Source, ...]) -> pd.DataFrame:
    """Table 5's columns for a set of sources: numbers, task and data as the source states, comparability."""
    rows = [
        {
            "article": s.article,
            "model": s.model,
            "accuracy": s.accuracy,
            "auc": s.auc,
            "sensitivity": s.sensitivity,
            "task_and_data": f"{s.task}; {s.classes}; {s.data}; split: {s.split}",
            "comparable with this task": s.comparable,
        }
        for s in sources
    ]
    return pd.DataFrame(rows)


def sources_table() -> pd.DataFrame:
    """Every study the book compares with: task, classes, data, split, the quoted words and where they are read."""
    frame = pd.DataFrame([asdict(s) for s in TABLE5_SOURCES + ANCHOR_SOURCES])
    frame["quote"] = frame["quote"].replace("", "(the abstract could not be read here)")
    return frame.set_index("article")[["key", "task", "classes", "data", "split", "quote", "where"]]


def table5() -> pd.DataFrame:
    """Table 5: the paper's literature comparison (normalised to fractions), each row annotated from its source."""
    own = [
        ("Proposed DL model with ADAM", 0.93, 0.95, 0.96),
        ("Proposed DL model with ADAGrad", 0.93, 0.93, 0.93),
        ("Proposed DL model with ADADelta", 0.94, 0.96, 0.97),
        ("Proposed DL model with RMSProp", 0.92, 0.95, 0.95),
    ]
    ours = pd.DataFrame(
        [
            {
                "article": name,
                "model": "Inception ResNetV2",
                "accuracy": acc,
                "auc": auc,
                "sensitivity": sens,
                "task_and_data": "CBIS-DDSM calcification ROIs, 3 classes",
                "comparable with this task": "the paper's own claim",
            }
            for name, acc, auc, sens in own
        ]
    )
    return pd.concat([_source_frame(TABLE5_SOURCES), ours], ignore_index=True)


def is_binary(source: Source) -> bool:
    """Whether a source's task, as described, has two classes (benign vs malignant, cancer vs not)."""
    text = source.classes.lower()
    return text.lstrip().startswith("2") or " vs " in text


def binary_sources() -> pd.DataFrame:
    """The studies of Table 5 and the anchors whose task has two classes (beside ours under a binary task)."""
    return _source_frame(tuple(s for s in TABLE5_SOURCES + ANCHOR_SOURCES if is_binary(s)))


def literature_anchors() -> pd.DataFrame:
    """Published results closer to this task (CBIS-DDSM, calcifications), each described as its source states it."""
    return _source_frame(ANCHOR_SOURCES)
