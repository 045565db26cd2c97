"""Progress and ETA of a sweep: the one rule, used by the service's status and the CLI's bar.

* **Progress** = (runs of finished cells + runs-equivalent of running cells) / runs total, where a
  running cell counts at most 95 % of its runs (its last report may say 100 % while it still writes
  its results) and the whole is shown below 100 % until the sweep has finished.
* **ETA** = runs left ÷ measured throughput, where throughput is the runs of the cells this driver
  finished after its first one divided by the time from that first finish to the latest (start-up
  and compilation before the first cell finishes would bias it). Between finishes it counts down
  from the estimate made at the last one (it never counts up while cells run, until it runs out); it
  is ``None`` until a first cell finishes (no throughput measured yet, so no number is made up). Once
  overdue it is never 0 while runs are left: the pace is re-measured up to now (runs finished since
  the first finish ÷ the time since), so it grows while nothing finishes.
"""

from __future__ import annotations

RUNNING_CAP = 0.95  # the most a running (unwritten) cell counts for
SHOWN_CAP = 0.999   # the most a sweep shows before it has finished


def running_runs(runs: int, progress: float) -> float:
    """Runs-equivalent of a running cell that reported ``progress`` (fraction of its steps)."""
    return runs * min(max(float(progress), 0.0), RUNNING_CAP)


def fraction(runs_done: float, runs_running: float, runs_total: int, finished: bool) -> float:
    if finished:
        return 1.0
    if runs_total <= 0:
        return 0.0
    return min((runs_done + runs_running) / runs_total, SHOWN_CAP)


def eta_seconds(now: float, started_at: float | None, finishes: list[tuple[float, int]], runs_done: int,
                runs_total: int) -> float | None:
    """Seconds left (see the module docstring). ``finishes``: (time, runs) of each cell this driver
    finished; times are ``time.time()`` seconds.

    Throughput is measured from the first finish to the last (so the start-up before the first cell
    finishes, mostly compilation, does not bias it); with one finish so far, from the start."""
    done = sorted(f for f in finishes if started_at and f[0] > started_at)
    if not done:
        return None
    (t_first, _), t_last = done[0], done[-1][0]
    if t_last > t_first:
        rate = sum(n for _, n in done[1:]) / (t_last - t_first)  # runs per second, concurrency included
    else:
        rate = sum(n for _, n in done) / (t_last - started_at)
    left = max(runs_total - runs_done, 0)
    estimate = left / rate - max(0.0, now - t_last)
    if estimate > 0 or left == 0:
        return max(0.0, estimate)
    # Overdue: the cells running now are slower than the finishes so far suggested (e.g. two cells
    # finishing together made the rate look huge). Re-measure the pace up to now instead of showing 0.
    since = t_first if t_last > t_first else started_at
    measured = sum(n for _, n in done[1:]) if t_last > t_first else sum(n for _, n in done)
    return left * (now - since) / measured


def clock(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
