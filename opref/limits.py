"""The sane range of every numeric knob a user sets (seconds, counts), checked once, here.

The CLI refuses a value outside its range as a usage error; the library function it drives
raises ValueError for the same value, so a caller of the library gets the same refusal.
"""

from __future__ import annotations

import math

MAX_SECONDS = 7 * 24 * 3600.0  # a per-case, start-up or budget deadline longer than a week is a typo
MAX_JOBS = 256  # worker processes per runtime
MAX_EXAMPLES = 10**7  # fuzz examples per runtime
MAX_RANDOM_CASES = 10**5  # generate --random
MAX_SEED = 2**32 - 1  # generate --seed (numpy's legacy seeding takes no more)
MAX_ELEMENTS = 2**27  # fuzz --max-elements (the geometry's own output limit)


def seconds(name: str, value: object) -> float:
    """``value`` as seconds in (0, MAX_SECONDS]; ValueError naming ``name`` otherwise."""
    number = _number(value)
    if number is None or not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
        raise ValueError(f"{name}={value!r}: expected a number of seconds > 0 and <= {MAX_SECONDS:g}")
    return number


def count(name: str, value: object, lowest: int, highest: int) -> int:
    """``value`` as a whole number in [lowest, highest]; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ValueError(f"{name}={value!r}: expected a whole number from {lowest} to {highest}")
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return None
