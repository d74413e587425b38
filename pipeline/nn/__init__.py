"""Activation modules and MLPs: the public modelling API (see DESIGN.md, Public Python API)."""

from .activations import ACTIVATIONS, Sine, TanhScaled, make_activation
from .input_activations import InputActivations
from .mlp import make_mlp
from .seeding import GLOBAL_RNG_LOCK, seeded
from .spline import INITS, SplineActivation, spline_eval

__all__ = [
    "GLOBAL_RNG_LOCK",
    "seeded",
    "ACTIVATIONS",
    "INITS",
    "InputActivations",
    "SplineActivation",
    "Sine",
    "TanhScaled",
    "make_activation",
    "make_mlp",
    "spline_eval",
]
