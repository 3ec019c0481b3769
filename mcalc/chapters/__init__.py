"""The chapters' steps: what each notebook calls (curation, training one optimizer, the chapter 5
measurements, the audits, the two releases compared), nothing else."""
