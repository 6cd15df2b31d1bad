"""opref: a spec-faithful reference of ONNX ConvTranspose, its conformance vectors and a validator."""

from opref.errors import SpecError
from opref.geometry import Geometry, Rule, geometry
from opref.readings import AMBIGUITIES
from opref.reference import conv_transpose
from opref.version import __version__

__all__ = ["AMBIGUITIES", "Geometry", "Rule", "SpecError", "__version__", "conv_transpose", "geometry"]
