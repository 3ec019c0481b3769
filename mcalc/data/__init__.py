"""The data: the official case-description tables shipped with mcalc, a user's CBIS-DDSM copy (TCIA DICOM in
its UID or NBIA layout, or the Kaggle JPEG re-release) read through one image reader, curated into a
manifest; and the offline phantom that stands in for the images."""
