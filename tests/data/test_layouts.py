"""Tests of mcalc.data.layouts: the DICOM release's series-folder index and the crop/mask choice shared by the layouts."""

from __future__ import annotations

import pytest

from mcalc.data import layouts
from tests.data.test_curation import CLEAN, build_download


def test_index_dicom_tree(tmp_path):
    """The index maps top series folders (full image and ROI) to the .dcm files beneath them."""
    truth = build_download(tmp_path, CLEAN[:2], "nbia")
    (tmp_path / "CBIS-DDSM" / "notes.txt").write_text("not a series")
    index = layouts.index_dicom_tree(tmp_path)
    assert set(index) == {
        "Calc-Training_P_00005_RIGHT_CC",
        "Calc-Training_P_00005_RIGHT_CC_1",
        "Calc-Training_P_00005_RIGHT_CC_2",
    }
    assert index["Calc-Training_P_00005_RIGHT_CC"] == [
        truth["Calc-Training_P_00005_RIGHT_CC_1"]["full"]
    ]
    assert sorted(index["Calc-Training_P_00005_RIGHT_CC_2"]) == sorted(
        [
            truth["Calc-Training_P_00005_RIGHT_CC_2"]["crop"],
            truth["Calc-Training_P_00005_RIGHT_CC_2"]["mask"],
        ]
    )


@pytest.mark.parametrize(
    "sizes, binary, mask, tested",
    [
        (((3000, 2000), (400, 300)), set(), 0, False),  # one full-size: it is the mask, unread
        (((400, 300), (3000, 2000)), {0}, 1, False),  # the size wins over the content
        (((400, 300), (500, 500)), {1}, 1, True),  # none full-size, one binary
        (((3000, 2000), (3000, 2000)), {0}, 0, True),  # both full-size, one binary
        (((400, 300), (500, 500)), {0, 1}, None, True),  # both binary
        (((400, 300), (500, 500)), set(), None, True),  # neither
    ],
)
def test_choose_mask_by_size_then_content(sizes, binary, mask, tested):
    """The mask is the full-size file, else the only binary one; otherwise undecided, naming both files."""
    asked = []

    def near_binary(i):
        asked.append(i)
        return i in binary

    choice = layouts.choose_mask(sizes, (3000, 2000), near_binary, ("c.dcm", "m.dcm"))
    assert choice.mask == mask and bool(asked) == tested
    if mask is None:
        assert choice.reason == "crop_mask_undecided"
        assert choice.detail == (
            f"cannot tell crop from mask: {len(binary)} of the two files are binary and 0 have "
            f"the full image's size 3000x2000 (c.dcm {sizes[0][0]}x{sizes[0][1]}, "
            f"m.dcm {sizes[1][0]}x{sizes[1][1]})"
        )
    else:
        assert (choice.reason, choice.detail) == ("", "")
