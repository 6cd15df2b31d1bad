"""The ambiguities of the ConvTranspose text, and the readings opref can compute, as data.

Each entry mirrors a row of section 3 of ``opref/SPEC.md``. The geometry
module looks readings up here; adding a reading means adding an entry here and one
behaviour in ``opref.geometry`` keyed by the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from opref.errors import SpecError


@dataclass(frozen=True)
class Ambiguity:
    """One place where the spec text admits more than one answer.

    ``readings`` maps a reading's name to a one-line description; ``default`` is the
    reading opref's reference uses unless told otherwise. Which reading a runtime follows
    is not declared here: the validator measures it, case by case, on the runtime itself.
    """

    id: str
    summary: str
    default: str
    readings: Mapping[str, str] = field(default_factory=dict)


NEGATIVE_TOTAL_PADDING = "negative-total-padding"
OUTPUT_PADDING_BOUND = "output-padding-bound"
SAME_WITH_OUTPUT_PADDING = "same-with-output-padding"
OUTPUT_SHAPE_RANK = "output-shape-rank"
OPSET1_SPLIT = "opset1-split"

AMBIGUITIES: Mapping[str, Ambiguity] = MappingProxyType(
    {
        a.id: a
        for a in (
            Ambiguity(
                id=NEGATIVE_TOTAL_PADDING,
                summary="total padding T < 0 (output_shape beyond the full extent, or SAME "
                "with K + output_padding < stride): how is T split?",
                default="floor",
                readings=MappingProxyType(
                    {
                        "floor": "split T with floor division (T//2); the side that would "
                        "get the smaller half extends",
                        "trunc": "split T with division truncated toward zero",
                        "clamp": "clamp T at 0; SAME then gives the full extent, an "
                        "output_shape larger than it is zero-filled at the end",
                        "reject": "T < 0 breaks pads >= 0: the model is invalid",
                    }
                ),
            ),
            Ambiguity(
                id=OUTPUT_PADDING_BOUND,
                summary="stride <= output_padding < dilation: 'less than the corresponding "
                "stride/dilation' read as stride only, or as max(stride, dilation)?",
                default="max",
                readings=MappingProxyType(
                    {
                        "max": "accept output_padding < max(stride, dilation) (PyTorch)",
                        "stride": "reject output_padding >= stride (onnxruntime)",
                    }
                ),
            ),
            Ambiguity(
                id=SAME_WITH_OUTPUT_PADDING,
                summary="auto_pad SAME_* with output_padding > 0 and no output_shape: does "
                "output_padding enter the total padding?",
                default="in-total",
                readings=MappingProxyType(
                    {
                        "in-total": "yes: output = input * stride, output_padding is "
                        "absorbed by T (the formula)",
                        "added": "no: T is computed without it and the output is "
                        "input * stride + output_padding (ONNX shape inference)",
                    }
                ),
            ),
            Ambiguity(
                id=OUTPUT_SHAPE_RANK,
                summary="output_shape that also lists N and C (length = rank of X): the text "
                "says it 'should not include' them; refused, or read as its spatial tail?",
                default="spatial-only",
                readings=MappingProxyType(
                    {
                        "spatial-only": "refuse it: output_shape lists the spatial sizes only "
                        "(ONNX shape inference, onnxruntime at session creation)",
                        "full-rank": "accept it when its N and C entries are X's N and M, and use "
                        "its spatial tail (onnxruntime's kernel tests, DirectML)",
                    }
                ),
            ),
            Ambiguity(
                id=OPSET1_SPLIT,
                summary="opset-1 models with odd T: the v1 text says "
                "'auto_pads != SAME_UPPER', contradicting its own auto_pad text",
                default="opset11",
                readings=MappingProxyType(
                    {
                        "opset11": "split as the opset-11 text: SAME_UPPER puts the odd unit at the end",
                        "v1-text": "split as the v1 text literally says: SAME_UPPER puts "
                        "the odd unit at the beginning, the others at the end",
                    }
                ),
            ),
        )
    }
)


def resolve_readings(readings: Mapping[str, str] | None) -> dict[str, str]:
    """Complete a partial ``{ambiguity id: reading}`` choice with the defaults.

    Raises SpecError for an unknown id or reading name.
    """
    chosen = {a.id: a.default for a in AMBIGUITIES.values()}
    for key, value in (readings or {}).items():
        if key not in AMBIGUITIES:
            raise SpecError("readings", key, f"must be one of the ambiguity ids {sorted(AMBIGUITIES)}")
        if value not in AMBIGUITIES[key].readings:
            raise SpecError(
                f"readings[{key!r}]",
                value,
                f"must be one of {sorted(AMBIGUITIES[key].readings)}",
            )
        chosen[key] = value
    return chosen
