"""spinfits.fitting."""
