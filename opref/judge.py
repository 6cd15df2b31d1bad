"""One case's data and one runtime's answer -> a typed :class:`Judgement`.

The expected output is the suite's (verified) ``output_0.pb``; the tolerance is the gamma_n bound of
spec notes section 5 (bit for bit on exact data). On an ambiguous case the reference is
recomputed under every documented reading, and an answer that one of them reproduces is a
``divergence`` naming it, not a failure.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from opref import diagnose as dg
from opref import readings as rd
from opref.dtypes import DTYPES
from opref.errors import SpecError
from opref.formdiagnose import FORM_CATALOG, diagnose_form
from opref.forms import BnForm, PadForm, QdqForm
from opref.formvalues import bn_bound, compare_quantized
from opref.geometry import geometry
from opref.pool import Answer
from opref.reference import conv_transpose
from opref.runtimes import Status
from opref.suite import CaseData
from opref.tolerance import Comparison, compare, magnitude_sum, max_terms
from opref.verdicts import Verdict


@dataclass(frozen=True)
class Judgement:
    """The verdict of one (case, runtime) run, with the numbers behind it."""

    verdict: Verdict
    message: str
    seconds: float
    placement: str = ""
    comparison: Comparison | None = None
    reading: Mapping[str, str] | None = None  # the reading followed (ambiguous cases)
    readings_followed: tuple[Mapping[str, str], ...] = ()
    expected_shape: tuple[int, ...] | None = None
    got_shape: tuple[int, ...] | None = None
    got_dtype: str | None = None
    # Bug models (opref.diagnose.CATALOG ids) that reproduce a failing output; several allowed.
    diagnosis: tuple[str, ...] = ()
    # Ambiguous failures: the documented reading whose output is nearest to the runtime's.
    nearest_reading: Mapping[str, str] | None = None
    # max |got - want| / |want| over elements with want != 0 (None without a comparison).
    max_rel_error: float | None = None

    def to_dict(self) -> dict:
        out: dict = {
            "verdict": str(self.verdict),
            "message": self.message,
            "seconds": round(self.seconds, 4),
            "placement": self.placement,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "max_rel_error": self.max_rel_error,
            "reading": None if self.reading is None else dict(self.reading),
            "diagnosis": list(self.diagnosis),
        }
        if self.nearest_reading is not None:
            out["nearest_reading"] = dict(self.nearest_reading)
        if self.readings_followed or self.reading is not None:
            out["readings_followed"] = [dict(c) for c in self.readings_followed]
        if self.expected_shape is not None:
            out["expected_shape"] = list(self.expected_shape)
        if self.got_shape is not None:
            out["got_shape"], out["got_dtype"] = list(self.got_shape), self.got_dtype
        return out


def _reference(case: CaseData, readings: Mapping[str, str] | None, max_memory: int | None) -> np.ndarray:
    rec = case.record
    return conv_transpose(
        *case.operands, **rec.attributes, opset=rec.opset, readings=readings, max_memory=max_memory
    )


def _compare(
    case: CaseData,
    got: np.ndarray,
    want: np.ndarray,
    u: float | None,
    readings: Mapping[str, str] | None = None,
    max_memory: int | None = None,
) -> Comparison | None:
    """The comparison of ``got`` with ``want`` (None when shape or element type differ)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return None
    rec = case.record
    magnitude, terms = None, rec.tolerance.max_terms
    X, W, *rest = case.operands
    if isinstance(rec.form, QdqForm):  # integers: spec notes section 5, quantized forms
        geo = geometry(X.shape, W.shape, **rec.attributes, opset=rec.opset)
        return compare_quantized(got, want, rec.form, case.operands, geo, terms)
    if not rec.tolerance.bitexact:
        geo = geometry(X.shape, W.shape, **rec.attributes, opset=rec.opset, readings=readings)
        magnitude = magnitude_sum(X, W, rest[0] if rest else None, geo, max_memory=max_memory)
        if isinstance(rec.form, BnForm):  # the normalisation's roundings: gamma_(n+8) * S_bn
            magnitude, terms = bn_bound(rec.form, magnitude), terms + rec.form.extra_roundings
    return compare(
        got,
        want,
        DTYPES[rec.dtype],
        bitexact=rec.tolerance.bitexact,
        magnitude=magnitude,
        terms=terms,
        unit_roundoff=u,
    )


def _reading_combinations(ids: Iterable[str]) -> list[dict[str, str]]:
    ids = [aid for aid in rd.AMBIGUITIES if aid in set(ids)]
    combos = itertools.product(*(rd.AMBIGUITIES[aid].readings for aid in ids))
    return [dict(zip(ids, c, strict=True)) for c in combos]


@dataclass(frozen=True)
class _Outcome:
    """The reference under one reading combination, and the runtime's output against it."""

    combo: Mapping[str, str]
    want: np.ndarray | None  # None: the node is invalid under this reading
    comparison: Comparison | None  # None: no output, or another shape or element type


def _outcomes(
    case: CaseData, status: Status, output: np.ndarray | None, u: float | None, max_memory: int | None
) -> list[_Outcome]:
    found = []
    for combo in _reading_combinations(case.record.ambiguities):
        try:
            want = _reference(case, combo, max_memory)
        except SpecError:
            found.append(_Outcome(combo, None, None))
            continue
        cmp = None
        if status is Status.OK and output is not None:
            cmp = _compare(case, output, want, u, combo, max_memory)
        found.append(_Outcome(combo, want, cmp))
    return found


def _followed(outcome: _Outcome, status: Status) -> bool:
    if outcome.want is None:
        return status is Status.ERROR
    return outcome.comparison is not None and outcome.comparison.ok


def followed_readings(
    case: CaseData, status: Status, output: np.ndarray | None, u: float | None
) -> list[dict[str, str]]:
    """Every reading combination of the case's ambiguities whose answer the runtime reproduced
    (an error reproduces a reading under which the node is invalid)."""
    return [dict(o.combo) for o in _outcomes(case, status, output, u) if _followed(o, status)]


def _nearest(outcomes: list[_Outcome]) -> _Outcome | None:
    """The reading whose output is nearest to the runtime's: same shape first, then the fewest
    mismatches, then the smallest error as a fraction of the bound (spec notes section 3)."""
    same = [o for o in outcomes if o.comparison is not None]
    if not same:
        return None
    return min(same, key=lambda o: (o.comparison.mismatches, o.comparison.max_bound_fraction))


def _diagnosis(
    case: CaseData, output: np.ndarray, bases: list[tuple[Mapping[str, str] | None, np.ndarray]]
) -> tuple[str, ...]:
    """The bug models that reproduce a failing output under any of ``bases`` (readings and their
    reference, nearest first), in catalog order. Bounded: large outputs are not diagnosed."""
    if output.size > dg.MAX_ELEMENTS:
        return ()
    rec, found = case.record, set()
    if rec.form is not None:  # the form's own models; the node's too where the node's output is Y
        own = diagnose_form(
            rec.form, case.operands, rec.attributes, rec.opset, rec.dtype, rec.tolerance.bitexact, output
        )
        if not isinstance(rec.form, PadForm):
            return own
        found.update(own)
    for readings, want in bases:
        if want.size > dg.MAX_ELEMENTS:
            continue
        p = dg.problem(case.operands, rec.attributes, rec.opset, readings, bitexact=rec.tolerance.bitexact)
        if p is not None:
            found.update(dg.diagnose(p, output, want))
    return tuple(mid for mid in (*dg.CATALOG, *FORM_CATALOG) if mid in found)


def _max_relative(got: np.ndarray, want: np.ndarray) -> float | None:
    g, w = got.astype(np.float64).reshape(-1), want.astype(np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        rel = np.abs(g - w) / np.abs(w)
    rel = rel[(w != 0) & ~np.isnan(rel)]
    return float(rel.max()) if rel.size else None


def _valid_reading(
    case: CaseData, out: np.ndarray, u: float | None, max_memory: int | None
) -> dict[str, str] | None:
    """The reading combination under which a must-reject node is valid and gives ``out`` (within
    the gamma_n bound), if any: the case's ambiguities are those that can make it valid
    (output-shape-rank)."""
    rec = case.record
    X, W, *rest = case.operands
    B = rest[0] if rest else None
    for combo in _reading_combinations(rec.ambiguities):
        try:
            want = _reference(case, combo, max_memory)
            geo = geometry(X.shape, W.shape, **rec.attributes, opset=rec.opset, readings=combo)
        except SpecError:
            continue
        if out.shape != want.shape or out.dtype != want.dtype:
            continue
        cmp = compare(
            out,
            want,
            DTYPES[rec.dtype],
            bitexact=False,
            magnitude=magnitude_sum(X, W, B, geo, max_memory=max_memory),
            terms=max_terms(geo, B is not None),
            unit_roundoff=u,
        )
        if cmp.ok:
            return combo
    return None


def _describe(combo: Mapping[str, str]) -> str:
    return ", ".join(f"'{r}' for {a}" for a, r in combo.items())


def judge(
    case: CaseData, answer: Answer, unit_roundoff: float | None = None, *, max_memory: int | None = None
) -> Judgement:
    """The verdict of one run of ``case``, with ``unit_roundoff`` (None: the dtype's) as the
    caller derived it from the runtime spec (:func:`opref.runtimes.declared_unit_roundoff`); what
    the reply says it is is never used, so a runtime cannot loosen its own judge.

    ``max_memory`` bounds the working memory of every reference computation (see
    :func:`opref.reference.chunks`; default a quarter of this machine's memory).
    """
    rec = case.record
    head = answer.header
    u = unit_roundoff
    if answer.failure is not None:
        shape = None if head is None or head.output is None else head.output.shape
        if rec.expect == "reject" and head is not None and head.status is Status.OK:
            # An output too large to read is still an output: the model was accepted.
            return Judgement(
                Verdict.ACCEPTED_INVALID,
                f"produced an output of shape {list(shape)}; must refuse: {rec.reject_message}",
                answer.seconds,
                head.placement,
                got_shape=shape,
            )
        if rec.expect == "output" and shape is not None and shape != rec.output_shape:
            return Judgement(
                Verdict.FAIL_SHAPE,
                f"output shape {list(shape)}, expected {list(rec.output_shape)} ({answer.detail})",
                answer.seconds,
                head.placement,
                expected_shape=rec.output_shape,
                got_shape=shape,
            )
        return Judgement(answer.failure, answer.detail, answer.seconds)
    status, out = head.status, answer.output
    common = {
        "seconds": answer.seconds,
        "placement": head.placement,
        "got_shape": None if out is None else tuple(out.shape),
        "got_dtype": None if out is None else str(out.dtype),
    }
    if rec.expect == "reject":
        verdict = {Status.OK: Verdict.ACCEPTED_INVALID, Status.FALLBACK: Verdict.FALLBACK}.get(
            status, Verdict.REJECTED
        )
        message = head.message
        reading = None
        if verdict is Verdict.ACCEPTED_INVALID:
            message = f"produced an output of shape {list(out.shape)}; must refuse: {rec.reject_message}"
            reading = _valid_reading(case, out, u, max_memory)
            if reading is not None:
                verdict = Verdict.DIVERGENCE
                message = f"follows {_describe(reading)}: ran a node opref's default reading refuses"
        return Judgement(verdict, message, reading=reading, **common)
    want = case.expected
    cmp = None
    message = head.message
    if status is Status.UNSUPPORTED:
        verdict = Verdict.UNSUPPORTED
    elif status is Status.FALLBACK:
        verdict = Verdict.FALLBACK
    elif status is Status.ERROR:
        verdict = Verdict.ERROR
    elif out.shape != want.shape:
        verdict = Verdict.FAIL_SHAPE
        message = f"output shape {list(out.shape)}, expected {list(want.shape)}"
    elif out.dtype != want.dtype:
        verdict = Verdict.FAIL_VALUES
        message = f"output element type {out.dtype}, expected {want.dtype}"
    else:
        cmp = _compare(case, out, want, u, max_memory=max_memory)
        verdict = Verdict.PASS if cmp.ok else Verdict.FAIL_VALUES
        if not cmp.ok:
            message = (
                f"{cmp.mismatches} elements out of tolerance; first at {list(cmp.first_mismatch)}: "
                f"expected {cmp.expected_at_first!r}, got {cmp.got_at_first!r}"
            )
    reading, followed, nearest = None, (), None
    bases: list = [(None, want)]
    if rec.ambiguities and verdict in (Verdict.PASS, Verdict.FAIL_SHAPE, Verdict.FAIL_VALUES, Verdict.ERROR):
        outcomes = _outcomes(case, status, out, u, max_memory)
        followed = tuple(dict(o.combo) for o in outcomes if _followed(o, status))
        if verdict is Verdict.PASS:
            reading = {aid: rd.AMBIGUITIES[aid].default for aid in rec.ambiguities}
        elif followed:
            reading = followed[0]
            also = "".join(f"; equally '{_describe(c)}'" for c in followed[1:])
            message = f"follows {_describe(followed[0])}{also} ({message})"
            verdict = Verdict.DIVERGENCE
        elif (near := _nearest(outcomes)) is not None:
            # A value bug on top of another reading's shape is a value failure under that reading.
            nearest, cmp = dict(near.combo), near.comparison
            verdict = Verdict.FAIL_VALUES
            message = (
                f"under {_describe(nearest)} (the nearest documented reading): {cmp.mismatches} elements "
                f"out of tolerance; first at {list(cmp.first_mismatch)}: expected "
                f"{cmp.expected_at_first!r}, got {cmp.got_at_first!r}"
            )
        else:
            message = "matches no documented reading; " + message
        # A mistake may sit on top of any reading: the nearest first, then the others.
        order = sorted(outcomes, key=lambda o: o.combo != nearest)
        bases = [(o.combo, o.want) for o in order if o.want is not None]
    max_rel = None if cmp is None or cmp.ok else _max_relative(out, bases[0][1] if nearest else want)
    diagnosis = ()
    if verdict in (Verdict.FAIL_SHAPE, Verdict.FAIL_VALUES) and out is not None:
        diagnosis = _diagnosis(case, out, bases)
    return Judgement(
        verdict,
        message,
        comparison=cmp,
        reading=reading,
        readings_followed=followed,
        expected_shape=tuple(want.shape),
        diagnosis=diagnosis,
        nearest_reading=nearest,
        max_rel_error=max_rel,
        **common,
    )
