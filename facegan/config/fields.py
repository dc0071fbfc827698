"""How a config key declares what it accepts, next to its default: num (a numeric range) and one_of
(a fixed set of values). validate reads these declarations; the README table is checked against them."""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Range:
    """The numbers a key accepts: finite, and within the bounds given (None: unbounded)."""
    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    unit: str = ""

    def problem(self, value) -> Optional[str]:
        """None when value is acceptable, else what is wrong, e.g. 'must be > 0'."""
        if not math.isfinite(value):
            return "must be a finite number" + (f" {self.describe()}" if self.describe() else "")
        bad = ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
               or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))
        return f"must be {self.describe()}" if bad else None

    def describe(self) -> str:
        lo = f"{self.ge:g}" if self.ge is not None else (f"{self.gt:g}" if self.gt is not None else None)
        hi = f"{self.le:g}" if self.le is not None else (f"{self.lt:g}" if self.lt is not None else None)
        unit = f" ({self.unit})" if self.unit else ""
        if lo is not None and hi is not None:
            return (f"in {'[' if self.ge is not None else '('}{lo}, {hi}{']' if self.le is not None else ')'}"
                    + unit)
        if lo is not None:
            return f"{'>=' if self.ge is not None else '>'} {lo}{unit}"
        if hi is not None:
            return f"{'<=' if self.le is not None else '<'} {hi}{unit}"
        return ""


def num(default, unit: str = "", **bounds):
    """A numeric field whose accepted range is declared with it: num(2e-4, gt=0)."""
    return field(default=default, metadata={"range": Range(unit=unit, **bounds)})


def one_of(default, choices):
    """A field with a fixed set of values, declared with it: one_of("auto", ("auto", "no")). choices
    may be a function returning them (a registry: what is registered when the config is read). On a
    list field, each item must be one of them."""
    if isinstance(default, list):  # a mutable default: each Config gets its own copy
        return field(default_factory=lambda: list(default), metadata={"choices": choices})
    return field(default=default, metadata={"choices": choices})


def choices_of(f: dataclasses.Field) -> tuple:
    """The values a field accepts (its one_of declaration), or () when any value of its type goes."""
    c = f.metadata.get("choices", ())
    return tuple(c() if callable(c) else c)
