"""The progress/ETA rule (issue 10 item 13) on a sweep's timeline: no number before a cell has
finished, then an estimate that counts down between finishes, never up, and never 100 % while
cells run."""

from sweeps import progress as eta
from sweeps.ray_exec import Progress


def test_eta_counts_down_between_finishes_and_tracks_the_truth():
    # 12 cells of 9 runs, one finishing every 7.5 s after 10 s of start-up (compile): a 92.5-s sweep.
    start, total = 1000.0, 108
    finishes = [start + 10 + 7.5 * k for k in range(1, 13)]
    shown, t = [], start
    while t < finishes[-1]:
        seen = [(f, 9) for f in finishes if f <= t]
        shown.append((t, eta.eta_seconds(t, start, seen, 9 * len(seen), total)))
        t += 0.5
    assert all(e is None for t, e in shown if t < finishes[0])  # nothing measured yet: no number
    known = [(t, e) for t, e in shown if e is not None]
    for (t0, e0), (t1, e1) in zip(known, known[1:]):
        if not any(t0 < f <= t1 for f in finishes):
            assert e1 <= e0  # never counts up between finishes
    for t, e in known:
        if t >= finishes[1]:  # from the second finish on, the start-up does not bias it: within 1 s
            assert abs(e - (finishes[-1] - t)) <= 1.0, (t, e)


def test_progress_stays_below_one_until_finished():
    p = Progress("s", trials_total=2, runs_total=8, runs_done=4)
    p.running["cell-b"] = eta.running_runs(4, 1.0)  # its last report says 100 %, its part is not written
    assert p.fraction < 1.0
    p.finished = True
    assert p.fraction == 1.0
    assert eta.fraction(108, 0, 108, finished=False) < 1.0
    assert eta.clock(None) == "?" and eta.clock(3725) == "1:02:05" and eta.clock(65) == "1:05"
