"""A physics-informed pump fleet: operating points, faults, benign drift and ground truth.

May import: schema, fleet, errors, numpy.
"""
