"""pumpops: MLOps for predictive maintenance on IoT edge fleets of pumps.

The package tree follows ``DESIGN.md``: one sub-package per part, each with a
docstring saying what it owns and what it may import.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
