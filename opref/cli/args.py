"""Argument types of the command line: lists of ints, memory sizes, readings, shards, seconds
and counts in range; negative lists joined back to their option."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from opref import limits
from opref import readings as rd


def ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


MAX_OPSET = 30  # the highest ONNX opset opref takes; ConvTranspose's own versions are cases.OPSETS


def opset(text: str) -> int:
    """A model's ONNX opset, 1..MAX_OPSET (ConvTranspose's version there is the command's to find)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_OPSET:
        raise argparse.ArgumentTypeError(f"expected an ONNX opset 1..{MAX_OPSET}, got {text!r}")
    return value


def memory(text: str) -> int:
    from opref.reference import parse_memory

    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def reading(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected AMBIGUITY=READING, got {text!r}")
    if key not in rd.AMBIGUITIES:
        raise argparse.ArgumentTypeError(f"unknown ambiguity {key!r}; known: {', '.join(rd.AMBIGUITIES)}")
    known = rd.AMBIGUITIES[key].readings
    if value not in known:
        raise argparse.ArgumentTypeError(f"unknown reading {value!r} of {key}; known: {', '.join(known)}")
    return key, value


# Options whose value is a comma-separated list of integers, possibly negative.
_INT_LISTS = ("--x-shape", "--w-shape", "--dilations", "--kernel-shape", "--output-padding")
_INT_LISTS += ("--output-shape", "--pads", "--strides")
_INT_LISTS += ("--stride", "--dilation", "--dilation-rate", "--output-size", "--padding")
_NEGATIVE_LIST = re.compile(r"-\d+(,\s*-?\d+)*,?")


def join_negative_lists(argv: Sequence[str]) -> list[str]:
    """``--pads -1,0`` as ``--pads=-1,0``: argparse takes a value starting with '-' that is
    not a plain negative number for an option, so the SpecError for negative pads would
    never be reached."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _INT_LISTS and i + 1 < len(argv) and _NEGATIVE_LIST.fullmatch(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = (0, 0)
    if not sep or not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"expected i/n with 1 <= i <= n, got {text!r}")
    return shard


def positive_seconds(text: str) -> float:
    try:
        return limits.seconds("seconds", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds > 0 and <= {limits.MAX_SECONDS:g}, got {text!r}"
        ) from None


def count(minimum: int, maximum: int):
    def parse(text: str) -> int:
        try:
            return limits.count("value", int(text), minimum, maximum)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {minimum} to {maximum}, got {text!r}"
            ) from None

    return parse
