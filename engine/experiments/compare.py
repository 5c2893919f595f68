"""Two runs of an experiment side by side: each threshold matched by its expression, with the change in its figure."""

from __future__ import annotations

from collections import defaultdict

from contract.experiments import ExperimentComparisonOut, ExperimentRunOut, ThresholdComparisonOut, ThresholdResultOut

__all__ = ["compare"]


def _by_expression(run: ExperimentRunOut) -> dict[tuple[str, int], ThresholdResultOut]:
    """Results keyed by (expression, occurrence): a document may hold the same threshold twice."""
    seen: defaultdict[str, int] = defaultdict(int)
    keyed: dict[tuple[str, int], ThresholdResultOut] = {}
    for result in run.thresholds:
        keyed[(result.expression, seen[result.expression])] = result
        seen[result.expression] += 1
    return keyed


def _run_only(run: ExperimentRunOut) -> ExperimentRunOut:
    """The run's summary fields (a detailed run carries its seconds and events, which a comparison leaves out)."""
    if type(run) is ExperimentRunOut:
        return run
    return ExperimentRunOut.model_validate(run.model_dump(include=set(ExperimentRunOut.model_fields)))


def compare(a: ExperimentRunOut, b: ExperimentRunOut) -> ExperimentComparisonOut:
    """Thresholds of a then those only b has, each with both results (None where a run lacks it) and b - a."""
    mine, theirs = _by_expression(a), _by_expression(b)
    rows = []
    for key in [*mine, *(k for k in theirs if k not in mine)]:
        left, right = mine.get(key), theirs.get(key)
        change = None
        if left is not None and right is not None and left.figure is not None and right.figure is not None:
            change = right.figure - left.figure
        rows.append(ThresholdComparisonOut(expression=key[0], a=left, b=right, change=change))
    return ExperimentComparisonOut(a=_run_only(a), b=_run_only(b), thresholds=rows)
