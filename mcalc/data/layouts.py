"""Where a download keeps its images, behind one interface: a locator resolving a manifest row's table
paths to files, and a check of those files; the types they share, and the DICOM release's layout.

A :class:`Layout` names the release (``dicom`` or ``kaggle-jpeg``), its locator (``resolve(row)`` →
:class:`Resolved`, ``hits``: files found), its check (:class:`Resolved` → :class:`RowCheck`) and the
places it looks. :func:`dicom_layout` is the official DICOM release, with its two folder layouts:
(1) the tables' UID paths below the root (or below ``CBIS-DDSM/`` there); (2) otherwise the NBIA
downloader's descriptive layout, found by the top series folder name (``Calc-Training_P_00005_RIGHT_CC``
for the full image, ``..._1`` for the ROI's crop and mask). :func:`mcalc.data.kaggle.kaggle_layout` is
the Kaggle JPEG re-release.

Which ROI file is the crop and which the mask is decided by content, never by file name
(:func:`choose_mask`): the mask has the full image's rows × columns (the headers), and when the
headers cannot tell, the mask is the one with at most two distinct pixel values (near-binary for JPEG).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mcalc.data.case_tables import SERIES_FOLDER
from mcalc.data.images import check_image, is_binary, read_dicom_header, read_dicom_pixels
from mcalc.errors import UnusableImage

__all__ = [
    "DICOM",
    "Resolved",
    "RowCheck",
    "MaskChoice",
    "choose_mask",
    "RowLocator",
    "Layout",
    "DICOM_FOLDER",
    "LAYOUTS_TRIED",
    "index_dicom_tree",
    "DicomLocator",
    "check_files",
    "dicom_layout",
]

#: Name of the official DICOM release's layout (either folder layout) in the manifest.
DICOM = "dicom"


# --------------------------------------------------------------------------- shared by the layouts


@dataclass
class Resolved:
    """Where one ROI's files are: the full image and the two ROI files as the table names them."""

    full: str
    claimed_crop: str
    claimed_mask: str
    claims_known: bool
    missing: list[str] = field(default_factory=list)
    ambiguous: str = ""
    outside: list[str] = field(default_factory=list)


@dataclass
class RowCheck:
    """The outcome of checking one ROI's files."""

    crop: str
    mask: str
    swapped: bool = False
    reason: str = ""
    detail: str = ""
    note: str = ""


@dataclass(frozen=True)
class MaskChoice:
    """Which of an ROI's two files is the mask (0 or 1), or why content cannot tell (``mask`` None)."""

    mask: int | None
    reason: str = ""
    detail: str = ""


def choose_mask(
    sizes: tuple[tuple[int, int], tuple[int, int]],
    full_shape: tuple[int, int],
    near_binary: Callable[[int], bool],
    names: tuple[str, str],
    binary_words: str = "files are binary",
) -> MaskChoice:
    """Pick the mask of two ROI files: the one of the full image's size, else the only near-binary one."""
    full_size = [i for i in (0, 1) if tuple(sizes[i]) == tuple(full_shape)]
    if len(full_size) == 1:
        return MaskChoice(full_size[0])
    binary = [i for i in (0, 1) if near_binary(i)]  # pixels read only when sizes cannot tell
    if len(binary) == 1:
        return MaskChoice(binary[0])
    listed = ", ".join(f"{name} {rows}x{cols}" for name, (rows, cols) in zip(names, sizes))
    return MaskChoice(
        None,
        "crop_mask_undecided",
        f"cannot tell crop from mask: {len(binary)} of the two {binary_words} and "
        f"{len(full_size)} have the full image's size {full_shape[0]}x{full_shape[1]} ({listed})",
    )


class RowLocator(Protocol):
    """Resolves a manifest row's table paths to its files; ``hits`` counts the files found so far."""

    hits: int

    def resolve(self, row: dict) -> Resolved:
        """Where one row's full image, crop and mask are (nothing is decoded)."""
        ...


@dataclass(frozen=True)
class Layout:
    """One way a download keeps its images: its name, its locator, the check of a row's files, where it looks."""

    name: str
    locator: RowLocator
    check: Callable[[Resolved], RowCheck]
    tried: tuple[str, ...]


# ------------------------------------------------------------------------------- the DICOM release


DICOM_FOLDER = "CBIS-DDSM"
#: The layouts the locator tries, in order (named in the message when no image is found at all).
LAYOUTS_TRIED = (
    "the tables' UID paths below ROOT or ROOT/CBIS-DDSM",
    "the NBIA downloader's series folders (Calc-Training_P_00005_RIGHT_CC[_1]/...) anywhere below ROOT",
)


def index_dicom_tree(root: Path) -> dict[str, list[Path]]:
    """Map each top series folder name (Calc-Training_P_00005_RIGHT_CC[_1]) to the .dcm files beneath it."""
    root = Path(root)
    index: dict[str, list[Path]] = {}
    owner: dict[str, str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        name = os.path.basename(dirpath)
        parent = owner.get(os.path.dirname(dirpath))
        series = name if parent is None and SERIES_FOLDER.match(name) else parent
        owner[dirpath] = series
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if series is not None:
            files = [Path(dirpath, f) for f in filenames if f.lower().endswith(".dcm")]
            if files or series not in index:
                index.setdefault(series, []).extend(files)
    return {k: sorted(v) for k, v in index.items()}


def _nbia_name(csv_name: str) -> str | None:
    """The NBIA downloader's file name for a table file name ('000001.dcm' → '1-2.dcm')."""
    match = re.fullmatch(r"0*(\d+)\.dcm", csv_name)
    return f"1-{int(match.group(1)) + 1}.dcm" if match else None


def _escapes(rel: str) -> bool:
    """True when a table path is absolute or climbs out with '..' (it names no file below the root)."""
    text = rel.replace("\\", "/")
    return (
        os.path.isabs(rel)
        or text.startswith(("/", "~"))
        or re.match(r"^[A-Za-z]:", text) is not None
        or ".." in text.split("/")
    )


class DicomLocator:
    """Resolves table paths below a root: the UID layout first, then the NBIA layout by series folder.

    Nothing outside the data root is ever used: a table path that is absolute or climbs out with
    '..', and a file that resolves (after symlinks) outside ROOT and ROOT/CBIS-DDSM (which may be a
    link to the disk holding the images), are reported as ``outside_root`` and never opened.
    """

    def __init__(self, root: Path) -> None:
        """Prepare the lookup for root (the folder index is built on first need)."""
        self.root = Path(root)
        self.bases = [self.root, self.root / DICOM_FOLDER]
        self.allowed = sorted({os.path.realpath(b) for b in self.bases})
        self.hits = 0  # files found by name: 0 after every row means no image under the root at all
        self._index: dict[str, list[Path]] | None = None

    def inside(self, path: str | Path) -> bool:
        """True when path, after symlinks, lies within the data root."""
        real = os.path.realpath(path)
        return any(real == a or real.startswith(a.rstrip(os.sep) + os.sep) for a in self.allowed)

    def index(self) -> dict[str, list[Path]]:
        """The series folder index of the root, and of ROOT/CBIS-DDSM when it is a link (built once)."""
        if self._index is None:
            self._index = index_dicom_tree(self.root)
            if self.bases[1].is_symlink() and self.bases[1].is_dir():  # os.walk does not follow it
                for series, files in index_dicom_tree(self.bases[1]).items():
                    self._index.setdefault(series, []).extend(files)
        return self._index

    def table_path(self, rel: str) -> str | None:
        """The file a table path names below the root (or below CBIS-DDSM/), or None."""
        if _escapes(rel):
            return None
        for base in self.bases:
            path = base / rel
            if path.is_file():
                self.hits += 1
                return str(path)
        return None

    def expected(self, rel: str) -> str:
        """Where a table path would be (for reports when it is absent)."""
        base = self.bases[1] if self.bases[1].is_dir() else self.bases[0]
        return str(base / rel)

    def folder_files(self, *names: str) -> list[str]:
        """The .dcm files under the first of the series folders that the index holds."""
        index = self.index()
        for name in dict.fromkeys(names):
            if name in index:
                self.hits += bool(index[name])
                return [str(p) for p in index[name]]
        return []

    def resolve(self, row: dict) -> Resolved:
        """Resolve one manifest row's full image, crop and mask paths by name, all within the root."""
        out = self._by_name(row)
        for role, rel, path in (
            ("image file path", row["full_path"], out.full),
            ("cropped image file path", row["crop_path"], out.claimed_crop),
            ("ROI mask file path", row["mask_path"], out.claimed_mask),
        ):
            if _escapes(rel):
                out.outside.append(f"{role} {rel!r} leaves the data root {self.root}")
            elif os.path.lexists(path) and not self.inside(path):
                out.outside.append(
                    f"{role}: {path} resolves to {os.path.realpath(path)}, "
                    f"outside the data root {self.root}"
                )
        return out

    def _by_name(self, row: dict) -> Resolved:
        """Where one row's files are by name (UID paths, then series folders); nothing is opened."""
        full_rel, crop_rel, mask_rel = row["full_path"], row["crop_path"], row["mask_path"]
        full_folder = (
            f"{row['roi_id'].rsplit('_', 1)[0]}" if row["image_id"] else full_rel.split("/")[0]
        )
        roi_folders = (row["roi_id"], crop_rel.split("/")[0], mask_rel.split("/")[0])
        out = Resolved(full="", claimed_crop="", claimed_mask="", claims_known=crop_rel != mask_rel)
        full = self.table_path(full_rel)
        if full is None:
            files = self.folder_files(full_folder, full_rel.split("/")[0])
            if len(files) == 1:
                full = files[0]
            elif len(files) > 1:
                out.ambiguous = (
                    f"full image folder {full_folder} holds {len(files)} files: {', '.join(files)}"
                )
        if full is None:
            out.missing.append(f"full image {self.expected(full_rel)}")
            full = self.expected(full_rel)
        out.full = full
        crop, mask = self.table_path(crop_rel), self.table_path(mask_rel)
        if crop is not None and mask is not None and crop != mask:
            out.claimed_crop, out.claimed_mask = crop, mask
            return out
        folder = self.folder_files(*roi_folders)
        known = [p for p in (crop, mask) if p is not None]
        extra = [f for f in folder if f not in known]
        if known:  # one file found by its table path (or both paths name the same file): the other from the folder
            other = extra[0] if len(extra) == 1 else None
            if len(extra) > 1:
                out.ambiguous = (
                    f"ROI folder {row['roi_id']} holds {len(folder)} files: {', '.join(folder)}"
                )
            if crop is not None and mask is not None:  # the same file twice in the table
                out.claims_known = False
                mask = other
            elif crop is not None:
                mask = other
            else:
                crop = other
            if other is None and not out.ambiguous:
                role = "ROI mask" if crop is not None else "cropped image"
                rel = mask_rel if crop is not None else crop_rel
                out.missing.append(f"{role} {self.expected(rel)}")
            out.claimed_crop = crop or self.expected(crop_rel)
            out.claimed_mask = mask or self.expected(mask_rel)
            return out
        if len(folder) == 2:
            by_name = {Path(f).name: f for f in folder}
            crop_name, mask_name = crop_rel.rsplit("/", 1)[-1], mask_rel.rsplit("/", 1)[-1]
            for claim_crop, claim_mask in (
                (crop_name, mask_name),
                (_nbia_name(crop_name), _nbia_name(mask_name)),
            ):
                if (
                    out.claims_known
                    and claim_crop != claim_mask
                    and {claim_crop, claim_mask} <= set(by_name)
                ):
                    out.claimed_crop, out.claimed_mask = by_name[claim_crop], by_name[claim_mask]
                    break
            else:
                out.claims_known = False
                out.claimed_crop, out.claimed_mask = folder
            return out
        if len(folder) > 2:
            out.ambiguous = (
                f"ROI folder {row['roi_id']} holds {len(folder)} files: {', '.join(folder)}"
            )
        elif len(folder) == 1:
            present = Path(folder[0]).name
            role = (
                "ROI mask"
                if present == _nbia_name(crop_rel.rsplit("/", 1)[-1])
                else "cropped image"
                if present == _nbia_name(mask_rel.rsplit("/", 1)[-1])
                else "cropped image or ROI mask"
            )
            out.missing.append(f"{role} (only {folder[0]} in ROI folder {row['roi_id']})")
        else:
            out.missing.append(
                f"cropped image {self.expected(crop_rel)} and ROI mask {self.expected(mask_rel)}"
            )
        out.claimed_crop = folder[0] if folder else self.expected(crop_rel)
        out.claimed_mask = folder[1] if len(folder) > 1 else self.expected(mask_rel)
        return out


def check_files(res: Resolved) -> RowCheck:
    """Check one ROI's files by content and decide which ROI file is the crop and which the mask."""
    out = RowCheck(crop=res.claimed_crop, mask=res.claimed_mask)
    if res.outside:
        out.reason, out.detail = "outside_root", "; ".join(res.outside)
        return out
    if res.ambiguous:
        out.reason, out.detail = "ambiguous_files", res.ambiguous
        return out
    if res.missing:
        out.reason, out.detail = "missing_file", "not found: " + "; ".join(res.missing)
        return out
    full = read_dicom_header(res.full)
    if full.reason:
        out.reason, out.detail = full.reason, f"full image: {full.detail}"
        return out
    a, b = read_dicom_header(res.claimed_crop), read_dicom_header(res.claimed_mask)
    for head, role in ((a, "cropped image (per table)"), (b, "ROI mask (per table)")):
        if head.reason:
            out.reason, out.detail = head.reason, f"{role}: {head.detail}"
            return out
    shape = (full.rows, full.columns)

    def binary(i: int) -> bool:
        """Whether ROI file i (0: claimed crop, 1: claimed mask) is binary; unreadable pixels raise."""
        data = read_dicom_pixels((a, b)[i].path)
        if isinstance(data, str):
            raise UnusableImage(data, "corrupt_dicom")
        return is_binary(data)

    try:
        choice = choose_mask(
            ((a.rows, a.columns), (b.rows, b.columns)), shape, binary, (a.path, b.path)
        )
    except UnusableImage as exc:
        out.reason, out.detail = exc.reason, str(exc)
        return out
    if choice.mask is None:
        out.reason, out.detail = choice.reason, choice.detail
        return out
    mask, crop = (a, b) if choice.mask == 0 else (b, a)
    out.crop, out.mask = crop.path, mask.path
    out.swapped = res.claims_known and choice.mask == 0
    if (mask.rows, mask.columns) != shape:  # kept: classification needs only the crop
        size_note = (
            f"mask size mismatch: ROI mask {mask.path} is {mask.rows}x{mask.columns}, "
            f"full image {full.path} is {shape[0]}x{shape[1]} (kept: only the crop is used)"
        )
    else:
        size_note = ""
    try:  # the very check the preprocessing applies to the crop
        _, image_note = check_image(crop.path)
    except UnusableImage as exc:
        out.reason, out.detail = exc.reason, f"cropped image: {exc}"
        return out
    notes = [n for n in (size_note, image_note) if n]
    if not res.claims_known:
        notes.append("crop and mask told apart by content (the table does not name them apart)")
    out.note = "; ".join(notes)
    return out


def dicom_layout(root: Path) -> Layout:
    """The official DICOM release below root: the tables' UID paths first, then the NBIA series folders."""
    return Layout(DICOM, DicomLocator(root), check_files, LAYOUTS_TRIED)
