"""spinfits: SPIN's fits dictionary at cluster scale.

Subpackages: ``spinfits.fitting`` (batched SMPLify, body model, joints, datasets),
``spinfits.store`` (versioned best-fit store), ``spinfits.cluster`` (Ray precompute),
``spinfits.training`` (SPIN training with the store in the loop).
"""

__version__ = "0.1.0"
