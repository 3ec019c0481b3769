"""Files: written whole or not at all, content-keyed caches, provenance labels, and the results folder's
layout (the manifest, run records, sweep records) that every later stage reads."""
