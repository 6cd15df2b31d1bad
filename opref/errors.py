"""The one exception opref raises for input that breaks a rule of the spec."""

from __future__ import annotations


class SpecError(ValueError):
    """An attribute, shape or dtype breaks a rule of ConvTranspose.

    ``attribute`` names what is wrong (``pads``, ``output_padding[0]``, ``X.shape`` ...),
    ``value`` is the offending value and ``rule`` says what it must satisfy.
    """

    def __init__(self, attribute: str, value: object, rule: str) -> None:
        self.attribute = attribute
        self.value = value
        self.rule = rule
        super().__init__(f"{attribute}={value!r} {rule}")
