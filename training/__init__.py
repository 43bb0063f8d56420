"""spinfits.training."""
