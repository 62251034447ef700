"""Per-place drawing, mixed into ``core.synth.features.Place``."""
