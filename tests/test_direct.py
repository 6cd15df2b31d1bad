"""opref.direct, the independent check: it shares no code with what it checks."""

from __future__ import annotations

import ast
import inspect

import numpy as np

import opref.direct
from opref.direct import direct_conv_transpose, direct_pads


def test_imports_nothing_from_opref():
    tree = ast.parse(inspect.getsource(opref.direct))
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m == "opref" or m.startswith("opref.")], imported


def test_scatter_by_hand():
    # X = [1, 2], W = [1, 10], stride 2: tap k of input i lands at 2i + k -> [1, 10, 2, 20].
    X = np.array([1.0, 2.0]).reshape(1, 1, 2)
    W = np.array([1.0, 10.0]).reshape(1, 1, 2)
    np.testing.assert_array_equal(direct_conv_transpose(X, W, strides=[2])[0, 0], [1, 10, 2, 20])
    np.testing.assert_array_equal(direct_conv_transpose(X, W, strides=[2], pads=[1, 0])[0, 0], [10, 2, 20])
    B = np.array([5.0])
    np.testing.assert_array_equal(direct_conv_transpose(X, W, B, strides=[2])[0, 0], [6, 15, 7, 25])


def test_pads_of_onnx_output_shape_case():
    # ONNX's test_convtranspose_output_shape, axis 0: F = 3*2 + 2 + 1 = 9, T = 9 - 10 = -1,
    # NOTSET: pb = T - floor(T/2) = 0, pe = -1.
    assert direct_pads((1, 1, 3), (1, 2, 3), strides=[3], output_shape=[10]) == ([0], [-1], [10])
