"""The per-change series counted as plain numbers, moved into prometheus_client when the
registry collects (issue 11).

An increment of a prometheus_client child costs about 0.5 µs and an observation about
1 µs in a loop (a method with its checks, a lock per value it touches); a keycom change
makes six and three of them (the request, its decision, the values masked, two upstream
calls), ≈ 9 µs in a loop and several times that in the serving process (a metrics-free
gateway used ≈ 6-9 % less CPU per answer: docs/performance.md, "The event loop thread,
profiled afresh"). Here each kept child of those series (``service.metrics.Metrics``)
is wrapped: an increment adds to a number, an observation counts in its bucket (the
same ``amount <= bound`` rule, by bisection) and adds to a sum, and what waits is
moved into the children when the registry collects - ``/metrics``, or
``get_sample_value`` - by a collector registered before the series. What is exposed is
what prometheus_client would have counted, at every collection (a histogram's sum added
up in another order: equal but for floating-point rounding in its last digits).

With several workers (``serve --workers N``) every update is still written at once to
the files the workers share (``service.multiproc``: a scrape of any worker counts what
the others answered), so there is no tally: :meth:`Tally.counter` and
:meth:`Tally.histogram` hand the children back as they are.

The event loop's thread records, and collects (``/metrics`` is one of its handlers): a
tally is not shared between threads.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric


class Increments(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Observes(Protocol):
    def observe(self, amount: float) -> None: ...


class _Counted:
    """A counter child's increments not yet moved into it."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Counter) -> None:
        self.child, self.pending = child, 0.0

    def inc(self, amount: float = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        pending = self.pending
        if pending:
            self.pending = 0.0
            self.child.inc(pending)


class _Observed:
    """A histogram child's observations not yet moved into it: a count per bucket (the
    first whose upper bound is at least the amount, as ``Histogram.observe``) and their
    sum."""

    __slots__ = ("bounds", "buckets", "child", "counts", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        # the child's own upper bounds and values (prometheus_client keeps them so;
        # tests/service/test_metrics.py compares the exposition with the library's)
        self.bounds: tuple[float, ...] = tuple(child._upper_bounds)
        self.buckets = child._buckets
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def flush(self) -> None:
        counts = self.counts
        if not any(counts):
            return
        total = self.total
        self.counts, self.total = [0] * len(counts), 0.0
        self.child._sum.inc(total)
        for bucket, count in zip(self.buckets, counts, strict=True):
            if count:
                bucket.inc(count)


class Tally:
    """The wrapped children of one registry; a collector that moves what waits into them
    (register it before the series, so that it runs first)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._pending: list[_Counted | _Observed] = []

    def counter(self, child: Counter) -> Increments:
        """``child``, counted here until the next collection (or itself: no tally)."""
        if not self.enabled:
            return child
        counted = _Counted(child)
        self._pending.append(counted)
        return counted

    def histogram(self, child: Histogram) -> Observes:
        """``child``, observed here until the next collection (or itself: no tally)."""
        if not self.enabled:
            return child
        observed = _Observed(child)
        self._pending.append(observed)
        return observed

    def pair(self, counter: Counter, histogram: Histogram) -> tuple[Increments, Observes]:
        """:meth:`counter` and :meth:`histogram` of a series' two children."""
        return self.counter(counter), self.histogram(histogram)

    def flush(self) -> None:
        """Move every increment and observation waiting into its child."""
        for pending in self._pending:
            pending.flush()

    # the registry's collector protocol: no series of its own
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        self.flush()
        return []
