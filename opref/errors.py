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


class BudgetError(MemoryError):
    """Computing values would need more memory than the budget allows, even in the smallest chunk.

    Not a SpecError: the node is valid, and a larger ``max_memory`` computes it. ``needed`` is
    the working memory (bytes) of the smallest chunk, ``max_memory`` the budget, ``chunk`` says
    what that chunk is.
    """

    def __init__(self, needed: int, max_memory: int, chunk: str) -> None:
        self.needed = needed
        self.max_memory = max_memory
        self.chunk = chunk
        super().__init__(
            f"max_memory={max_memory} bytes ({max_memory / 2**20:.1f} MiB) is too small: {chunk} needs"
            f" {needed} bytes ({needed / 2**20:.1f} MiB) of working memory beyond the operands and the"
            " output; raise max_memory (--max-memory)"
        )
