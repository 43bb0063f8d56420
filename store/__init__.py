"""spinfits.store."""
