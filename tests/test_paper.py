"""The paper's numbers and the literature as their sources state it (mcalc.paper)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcalc import paper

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def _numbers(text: str) -> set[float]:
    """Every number written in a text, percentages as fractions."""
    out = set()
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*(%?)", text):
        value = float(m.group(1))
        out.add(round(value / 100 if m.group(2) else value, 4))
    return out


@pytest.mark.parametrize("source", paper.TABLE5_SOURCES + paper.ANCHOR_SOURCES, ids=lambda s: s.key)
def test_every_source_is_described_and_cited(source):
    """Task, classes, data and split are stated; the BibTeX key exists in the book's references."""
    for field in ("task", "classes", "data", "split", "where", "comparable"):
        assert getattr(source, field).strip(), f"{source.article}: empty {field}"
    assert f"{{{source.key}," in BIB.read_text()


@pytest.mark.parametrize("source", paper.ANCHOR_SOURCES, ids=lambda s: s.key)
def test_anchor_numbers_are_in_the_quoted_source(source):
    """An anchor's every number is written in the words quoted from its source."""
    assert source.quote
    found = _numbers(source.quote)
    for value in (source.accuracy, source.auc, source.sensitivity):
        if value is not None:
            assert round(value, 4) in found, f"{source.article}: {value} is not in its quote"


def test_ribli_check_against_its_abstract():
    """Ribli's abstract carries the AUC 0.95 (INbreast) but not the accuracy 0.92 or sensitivity 96."""
    ribli = next(s for s in paper.TABLE5_SOURCES if s.key == "ribli2018")
    found = _numbers(ribli.quote)
    assert ribli.auc in found
    assert ribli.accuracy not in found and ribli.sensitivity not in found
    assert "not" in ribli.comparable and "0.92" in ribli.comparable


def test_no_anchor_is_called_three_class_or_patient_disjoint():
    """No anchor is described as the paper's task or as an official patient-disjoint evaluation."""
    table = paper.literature_anchors()
    text = " ".join(table["task_and_data"]) + " ".join(table["comparable with this task"])
    assert "3 classes" not in text and "patient-disjoint" not in text
    assert set(paper.table5()["comparable with this task"]) >= {"the paper's own claim"}
