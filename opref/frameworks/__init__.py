"""Framework transposed-convolution layers spelled exactly as ONNX ConvTranspose attributes.

Each ``from_*`` function takes a layer in its framework's own terms and returns a
:class:`Spelling`: ONNX attributes under which :func:`opref.conv_transpose` computes exactly
what the framework computes, the ids of the ambiguities (:mod:`opref.readings`) that result
depends on, and notes on the spellings that look equivalent and are not.

Every framework here computes the same scatter (spec notes section 2): tap ``k`` of input
position ``i`` lands at ``i*s + k*d - pad_begin`` of the output. They differ only in how they
choose ``pad_begin`` and the output size ``O``. Given those, the exact ONNX spelling is
explicit: ``pads`` begin ``pad_begin``, and at the end what the full extent
``F = s*(I-1) + (k-1)*d + 1`` leaves beyond ``pad_begin + O`` — or, where the output reaches
past ``F``, ``output_padding`` for the difference. Explicit pads never split a total padding,
so the spelling is free of ``negative-total-padding`` and ``opset1-split``; ``output_shape``
and ``auto_pad`` are used by no spelling, because they would (notes say where they differ).

Shapes are in ONNX layout: X is (N, C, spatial...) and W is (C, M/group, kernel...). From a
framework's own layout:

- PyTorch and Paddle (NCHW): X and W already are (``ConvTranspose*d.weight`` is
  (C_in, C_out/groups, k...)).
- TensorFlow ``tf.nn.conv*d_transpose`` (NHWC; filter (k..., M, C)):
  ``x_shape = (N, x.shape[-1], *x.shape[1:-1])``,
  ``w_shape = (w.shape[-1], w.shape[-2], *w.shape[:-2])``.
- Keras ``Conv*DTranspose`` (channels_last; kernel (k..., M, C)): as TensorFlow.
- TFLite ``TRANSPOSE_CONV`` (input NHWC, weights OHWI = (M, kh, kw, C)):
  ``w_shape = (w.shape[3], w.shape[0], w.shape[1], w.shape[2])``.

Arrays move the same way (``np.moveaxis``/``transpose`` with the permutation above). Integer
arguments are one int for every spatial axis or one per axis. A framework argument the
framework itself refuses raises :class:`opref.SpecError` (a ValueError) naming it.
"""


from types import MappingProxyType

from opref.frameworks.paddle import from_paddle
from opref.frameworks.pytorch import from_pytorch
from opref.frameworks.spelling import FRAMEWORKS, Spelling
from opref.frameworks.tensorflow import from_keras, from_tensorflow

SPELLERS = MappingProxyType(
    {"pytorch": from_pytorch, "keras": from_keras, "tensorflow": from_tensorflow, "paddle": from_paddle}
)

__all__ = [
    "FRAMEWORKS",
    "SPELLERS",
    "Spelling",
    "from_keras",
    "from_paddle",
    "from_pytorch",
    "from_tensorflow",
]
