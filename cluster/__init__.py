"""spinfits.cluster."""
