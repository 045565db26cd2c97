"""Run a sweep's trials on a Ray cluster with Ray Tune.

By default an embedded local Ray is started for the run; ``address`` (or ``RAY_ADDRESS``) attaches
to an existing cluster (``ray start --head`` on the head node, ``ray start --address HEAD:6379`` on
workers). One Tune trial = one planned trial (a cell or a chunk of its runs); each writes its own
Parquet part atomically, so a retried trial (``FailureConfig(max_failures=...)``) or a resumed
sweep never duplicates a run, and parts already complete in the store are never recomputed.

Every node must see the same results root (a shared filesystem, or an object store URI such as
``s3://bucket/prefix?endpoint_override=...``) and the same dataset.

The embedded local Ray listens on and advertises 127.0.0.1 only (:func:`loopback_only`); a
multi-node cluster is started with ``ray start`` on each node and attached with ``address``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mutransfer import devices
from mutransfer.results import ResultsStore
from sweeps import progress as eta
from sweeps.bookkeeping import SweepOutcome, check_parts, save_spec, verified_parts
from sweeps.plan import Trial
from sweeps.decide import all_trials
from sweeps.recovery import open_registry
from sweeps.registry import Registry, default_path, one_line_error
from sweeps.spec import SweepSpec

log = logging.getLogger(__name__)

PID_DIR_ENV = "MUTRANSFER_TRIAL_PID_DIR"  # when set, each trial writes <dir>/<part>.<pid> at start
# Ray reads this when it is imported: "0" makes a node's IP 127.0.0.1 (as on macOS/Windows), so an
# embedded cluster binds and advertises loopback only instead of the machine's first routable address.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class ClusterError(RuntimeError):
    """The cluster cannot run this sweep (unreachable, or too few resources)."""


@dataclass
class Progress:
    """What the driver knows while a sweep runs (passed to ``on_progress``)."""

    sweep_id: str
    trials_total: int
    trials_done: int = 0
    trials_failed: int = 0
    runs_total: int = 0
    runs_done: int = 0
    running: dict[str, float] = field(default_factory=dict)  # part -> runs-equivalent done
    trial_wall_s: dict[str, float] = field(default_factory=dict)  # start → complete, as Tune saw it
    trial_compute_s: dict[str, float] = field(default_factory=dict)  # inside the trial: data+train+write
    started_at: float = field(default_factory=time.time)  # this driver's start (ETA clock)
    finishes: list[tuple[float, int]] = field(default_factory=list)  # (time, runs) of each cell finished
    finished: bool = False

    @property
    def runs_in_progress(self) -> float:
        return sum(self.running.values())

    @property
    def fraction(self) -> float:
        """Shown progress: below 1 until the sweep has finished (sweeps/progress.py)."""
        return eta.fraction(self.runs_done, self.runs_in_progress, self.runs_total, self.finished)

    def eta_s(self, now: float | None = None) -> float | None:
        return eta.eta_seconds(now or time.time(), self.started_at, self.finishes, self.runs_done, self.runs_total)


def _parse_host_port(address: str) -> tuple[str, int] | None:
    addr = address.removeprefix("ray://")
    if ":" not in addr:
        return None
    host, _, port = addr.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail within seconds, with the address in the message, when nothing listens there."""
    if address in ("auto", "local"):
        return
    hp = _parse_host_port(address)
    if hp is None:
        raise ClusterError(f"--address: {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as e:
        raise ClusterError(f"--address: cannot reach a Ray cluster at {address} ({e.strerror or e}); "
                           "start one with `ray start --head --port PORT` or drop --address to use an "
                           "embedded local Ray") from None


def _default_token_auth() -> None:
    """Attach with token auth when a token is at hand and the user said nothing: `ray start --head`
    enables token auth by default (Ray ≥ 2.59), a token-mode client also works with a cluster that
    has it disabled, and the reverse fails with a bare "Failed to connect"."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    if (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or Path("~/.ray/auth_token").expanduser().exists()):
        os.environ["RAY_AUTH_MODE"] = "token"


def loopback_only() -> None:
    """Make Ray's node address 127.0.0.1 in this process and the processes it starts.

    Ray 2.60 takes a node's IP from the route to the outside (``node_ip_address_from_perspective``)
    and even rewrites an explicit ``127.0.0.1`` to it (``resolve_ip_for_localhost``), then binds its
    gRPC servers to that IP. With ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` it uses 127.0.0.1, so the
    GCS, raylet, object manager, agents and workers listen on loopback only (checked with ``ss`` in
    tests/test_reliability_ray.py). The variable is read when Ray is imported; if Ray is already
    imported here, the constant it set is updated too.
    """
    os.environ[LOOPBACK_ENV] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def _is_loopback(address: str) -> bool:
    hp = _parse_host_port(address)
    return hp is not None and (hp[0] in ("localhost", "::1") or hp[0].startswith("127."))


def connect(address: str | None = None) -> bool:
    """Connect to ``address`` (or $RAY_ADDRESS), or start an embedded local Ray on loopback.
    Returns whether this call started an embedded cluster."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and "ray" not in sys.modules:  # Ray reads its auth mode when first imported
        check_reachable(address)
        _default_token_auth()
    if not address or _is_loopback(address):
        loopback_only()  # a driver of a loopback cluster must itself be on loopback (it is dialled back)
    import ray

    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, configure_logging=False)
    return not address


def check_resources(spec: SweepSpec) -> None:
    """Refuse a sweep whose trials can never be scheduled, with the numbers."""
    import ray

    have = ray.cluster_resources()
    r = spec.resources
    gpus, cpus = float(have.get("GPU", 0)), float(have.get("CPU", 0))
    if r.gpus_per_trial > gpus:
        raise ClusterError(f"resources.gpus_per_trial: {r.gpus_per_trial} GPU(s) per trial requested but the "
                           f"cluster has {gpus:g} GPU(s) in total")
    if r.cpus_per_trial > cpus:
        raise ClusterError(f"resources.cpus_per_trial: {r.cpus_per_trial} CPU(s) per trial requested but the "
                           f"cluster has {cpus:g} CPU(s) in total")


def trial_env(spec: SweepSpec) -> dict[str, str]:
    """Environment for a trial's worker process, set before JAX starts its backend there
    (:func:`mutransfer.devices.trial_env`: one-thread XLA for one-CPU trials; GPUs: no
    preallocation, and a fractional GPU caps JAX's share)."""
    return devices.trial_env(spec.resources.cpus_per_trial, spec.resources.gpus_per_trial)


def _trainable(config: dict) -> None:
    """Runs inside a Ray worker: one planned trial, then report."""
    devices.apply_trial_env(config["env"])  # keeps XLA_FLAGS the cluster operator set
    from ray import tune

    from sweeps import compile_cache
    from sweeps.decide import DecideRecord, all_trials
    from sweeps.refine import RefineRecord
    from sweeps.spec import parse_spec
    from sweeps.worker import execute_trial

    if config.get("jax_cache"):
        compile_cache.enable(config["jax_cache"])
    pid_dir = os.environ.get(PID_DIR_ENV)
    if pid_dir:
        Path(pid_dir, f"{config['part']}.{os.getpid()}").touch()
    spec = parse_spec(config["spec"])
    record = RefineRecord.from_json(config["refine"]) if config.get("refine") else None
    decided = DecideRecord.from_json(config["decide"]) if config.get("decide") else None
    trial = {t.part: t for t in all_trials(spec, record, decided)}[config["part"]]
    store = ResultsStore(config["results_root"])
    t0 = time.perf_counter()
    try:
        n = execute_trial(spec, trial, store, config["sweep_id"],
                          progress=lambda done, total: tune.report({"progress": done / total, "runs": 0}))
    except ValueError as e:
        # The spec cannot run (a batch larger than the data, a subset larger than the dataset, ...):
        # the same on every attempt, so reported once as the cell's one-line reason, never retried.
        tune.report({"progress": 1.0, "runs": 0, "error": one_line_error(e)})
        return
    tune.report({"progress": 1.0, "runs": n, "compute_s": time.perf_counter() - t0})


def _callback(registry: Registry | None, prog: Progress, trials_by_part: dict[str, Trial],
              on_progress: Callable[[Progress], None] | None):
    from ray import tune

    def emit():
        if on_progress:
            on_progress(prog)

    def part(trial) -> str:
        return trial.config["part"]

    started: dict[str, float] = {}
    finished: set[str] = set()

    class RegistryCallback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            started[part(trial)] = time.perf_counter()
            prog.running[part(trial)] = 0.0
            registry and registry.set_trial(prog.sweep_id, part(trial), "running", progress=0.0, attempt=True)
            emit()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            p = part(trial)
            if p in finished:  # a late result of a cell already counted as finished
                return
            frac = float(result.get("progress", 0.0))
            prog.running[p] = eta.running_runs(len(trials_by_part[p].runs), frac)
            if "compute_s" in result:
                prog.trial_compute_s[p] = float(result["compute_s"])
            registry and registry.set_trial(prog.sweep_id, p, progress=frac)
            emit()

        def on_trial_recover(self, iteration, trials, trial, **info):
            p = part(trial)
            prog.running.pop(p, None)
            why = one_line_error(info.get("exception")) or "worker failed"
            registry and registry.set_trial(prog.sweep_id, p, "queued", progress=0.0, error=f"retrying after: {why}")
            emit()

        def on_trial_complete(self, iteration, trials, trial, **info):
            p = part(trial)
            prog.running.pop(p, None)
            if p in finished:
                return
            cannot_run = (trial.last_result or {}).get("error")
            if cannot_run:  # a deterministic failure (_trainable): failed once, with its reason
                finished.add(p)
                prog.trials_failed += 1
                registry and registry.set_trial(prog.sweep_id, p, "failed", error=cannot_run)
                emit()
                return
            finished.add(p)
            prog.trial_wall_s[p] = time.perf_counter() - started.get(p, time.perf_counter())
            prog.trials_done += 1
            prog.runs_done += len(trials_by_part[p].runs)
            prog.finishes.append((time.time(), len(trials_by_part[p].runs)))
            registry and registry.set_trial(prog.sweep_id, p, "finished", progress=1.0)
            emit()

        def on_trial_error(self, iteration, trials, trial, **info):
            p = part(trial)
            prog.running.pop(p, None)
            prog.trials_failed += 1
            registry and registry.set_trial(prog.sweep_id, p, "failed",
                                            error=one_line_error(info.get("exception")) or "failed")
            emit()

    return RegistryCallback()


def _cancel_stopper(registry: Registry, sweep_id: str):
    """Stops the whole Tune run once the registry says the sweep was cancelled (checked ≤ 1/s)."""
    from ray import tune

    class CancelStopper(tune.Stopper):
        def __init__(self):
            self.checked, self.cancelled = 0.0, False

        def __call__(self, trial_id, result):
            return self.stop_all()

        def stop_all(self):
            now = time.monotonic()
            if not self.cancelled and now - self.checked > 1.0:
                self.checked = now
                row = registry.sweep(sweep_id)
                self.cancelled = bool(row and row.get("cancel"))
            return self.cancelled

    return CancelStopper()


def run_sweep_ray(spec: SweepSpec, results_root, *, sweep_id: str | None = None, address: str | None = None,
                  registry_path: str | os.PathLike | None = None, max_failures: int = 2,
                  jax_cache: str | None = None, extra_env: dict[str, str] | None = None,
                  on_progress: Callable[[Progress], None] | None = None, owner: str = "cli",
                  fresh: bool = True, refine_record=None, decide_record=None, ends_sweep: bool = True) -> SweepOutcome:
    """Run every unfinished trial of ``spec`` through Ray Tune and write its results.

    A part counts as finished only once verified (readable, expected row count); a bad one is
    quarantined and recomputed, and its cell's note says so. ``owner``/``fresh``: see
    :meth:`Registry.register` (the service's driver passes ``"service"``, ``fresh=False``, so a
    cancel sent before it started is honoured). The sweep ends ``finished`` only when every planned
    part is verified; ``cancelled`` (finished cells kept) when its cancel flag was set; else
    ``failed`` with the reasons. ``ends_sweep=False`` (a refine or decide loop that may train more
    rounds): a clean end leaves the sweep ``running``; the loop marks it finished when it stops.
    """
    t0 = time.perf_counter()
    sweep_id = sweep_id or spec.default_sweep_id()
    # Trials run in other processes (Tune moves them to trial directories, other nodes have
    # other working directories): a relative local path must be made absolute here.
    results_root = absolute_root(results_root)
    jax_cache = str(Path(jax_cache).resolve()) if jax_cache else None
    store = ResultsStore(results_root)
    # the spec's trials, its refinement's (sweeps/refine.py) and its decide loop's (sweeps/decide.py)
    planned = all_trials(spec, refine_record, decide_record)
    by_part = {t.part: t for t in planned}
    complete, notes = check_parts(store, sweep_id, planned)
    todo = [t for t in planned if t.part not in complete]
    out = SweepOutcome(sweep_id, len(planned), cells_skipped=[t.part for t in planned if t.part in complete])

    connect(address)  # unreachable cluster: fails here, before anything is written
    check_resources(spec)
    if todo and not (address or os.environ.get("RAY_ADDRESS")):
        from sweeps.worker import device_data  # embedded: the dataset must be here; say so now
        device_data(spec.dataset, spec.logging.test_chunk)
    save_spec(store, sweep_id, spec)
    reg_path = registry_path or default_path(results_root)
    registry = open_registry(reg_path, store) if reg_path else None
    if registry:
        registry.register(sweep_id, spec.name, spec.canonical(), spec.spec_hash(),
                          [(t.part, t.cell.cell_id, len(t.runs)) for t in planned], address, owner=owner, fresh=fresh)
        for t in planned:  # a previous driver may have died mid-trial: start from the store's truth
            registry.set_trial(sweep_id, t.part, "finished" if t.part in complete else "queued",
                               progress=1.0 if t.part in complete else 0.0, note=notes.get(t.part))
        if _cancelled(registry, sweep_id):
            return _end(registry, store, sweep_id, planned, out, t0, ends_sweep=ends_sweep)
        registry.start_run(sweep_id, sum(len(t.runs) for t in planned if t.part in complete))
    prog = Progress(sweep_id, len(planned), trials_done=len(out.cells_skipped),
                    runs_total=sum(len(t.runs) for t in planned),
                    runs_done=sum(len(t.runs) for t in planned if t.part in complete))
    if on_progress:
        on_progress(prog)

    # Our own progress (on_progress / the CLI's bar) replaces Tune's console tables and banner.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for attempt in range(2):  # a second round recomputes parts that failed verification after the first
        if not todo or _cancelled(registry, sweep_id):
            break
        prog.runs_done = sum(len(t.runs) for t in planned if t.part in complete)  # the verified truth
        prog.trials_done = sum(t.part in complete for t in planned)
        failed = _fit(spec, todo, by_part, sweep_id, results_root, registry, prog, max_failures, jax_cache,
                      extra_env, on_progress, refine_record, decide_record)
        out.cells_failed.update(failed)
        complete = verified_parts(store, sweep_id, planned, registry)
        todo = [t for t in todo if t.part not in complete and t.part not in out.cells_failed]
    if spec.analyses and not _cancelled(registry, sweep_id):
        from sweeps.worker import run_analyses
        try:
            run_analyses(spec, store, sweep_id)
        except Exception as e:
            out.cells_failed["analyses"] = f"{type(e).__name__}: {e}"
    return _end(registry, store, sweep_id, planned, out, t0, prog=prog, on_progress=on_progress,
                ends_sweep=ends_sweep)


def _cancelled(registry: Registry | None, sweep_id: str) -> bool:
    return bool(registry and (registry.sweep(sweep_id) or {}).get("cancel"))


def _fit(spec, todo, by_part, sweep_id, results_root, registry, prog, max_failures, jax_cache, extra_env,
         on_progress, refine_record=None, decide_record=None) -> dict[str, str]:
    """One Tune run over ``todo``; returns part -> error for trials that failed for good."""
    from ray import tune

    r = spec.resources
    env = {**trial_env(spec), **(extra_env or {})}
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial}),
        param_space={"part": tune.grid_search([t.part for t in todo]), "spec": spec.canonical(),
                     "sweep_id": sweep_id, "results_root": str(results_root), "env": env,
                     "jax_cache": jax_cache,
                     "refine": refine_record.to_json() if refine_record is not None else None,
                     "decide": decide_record.to_json() if decide_record is not None else None},
        tune_config=tune.TuneConfig(max_concurrent_trials=r.max_concurrent_trials, reuse_actors=True,
                                    trial_name_creator=lambda t: t.config["part"],
                                    trial_dirname_creator=lambda t: t.config["part"]),
        run_config=tune.RunConfig(name=f"{sweep_id}-{int(time.time())}", storage_path=_tune_storage(results_root),
                                  verbose=0, failure_config=tune.FailureConfig(max_failures=max_failures),
                                  stop=_cancel_stopper(registry, sweep_id) if registry else None,
                                  callbacks=[_callback(registry, prog, by_part, on_progress)]),
    )
    try:
        grid = tuner.fit()
    except BaseException as e:
        if registry:
            cancelled = _cancelled(registry, sweep_id)
            registry.set_sweep(sweep_id, "cancelled" if cancelled else "failed",
                               error=None if cancelled else f"{type(e).__name__}: {e}")
        raise
    failed = {}
    for res in grid:
        # A trial stopped before it started (cancel) has no config and no error: nothing to record.
        p = (res.config or {}).get("part")
        if p is not None and (res.metrics or {}).get("error"):
            failed[p] = res.metrics["error"]  # the spec cannot run (one line, not retried)
        elif p is not None and res.error is not None:
            failed[p] = one_line_error(res.error)
    return failed


def _end(registry, store, sweep_id, planned, out: SweepOutcome, t0: float, prog: Progress | None = None,
         on_progress=None, ends_sweep: bool = True) -> SweepOutcome:
    """Record how the sweep ended, from the verified store (not from what Tune said)."""
    done = verified_parts(store, sweep_id, planned, registry)
    out.cells_done = [t.part for t in planned if t.part in done and t.part not in out.cells_skipped]
    missing = [t.part for t in planned if t.part not in done and t.part not in out.cells_failed]
    cancelled = _cancelled(registry, sweep_id)
    if missing and not cancelled and not out.cells_failed:
        out.cells_failed.update({p: "did not finish (the run was interrupted)" for p in missing})
    if registry:
        for p in missing:
            registry.set_trial(sweep_id, p, "cancelled" if cancelled else "queued", progress=0.0)
        status = "cancelled" if cancelled else "failed" if out.cells_failed else "finished" if ends_sweep else "running"
        registry.set_sweep(sweep_id, status,
                           error="; ".join(f"{p}: {e}" for p, e in out.cells_failed.items())[:4000] or None)
    if prog is not None:
        prog.finished = not missing and not out.cells_failed
        prog.running.clear()
        if on_progress:
            on_progress(prog)
    out.wall_s = time.perf_counter() - t0
    return out


def absolute_root(results_root) -> str:
    """A local results root as an absolute path; URIs (s3://, file://...) unchanged."""
    root = str(results_root)
    return root if "://" in root else str(Path(root).resolve())


def _tune_storage(results_root) -> str:
    """Tune's own experiment state: under the results root when local (``_tune`` is ignored by the
    Parquet readers), else the user cache dir."""
    root = str(results_root)
    if "://" not in root or root.startswith("file://"):
        path = Path(root.removeprefix("file://")).resolve() / "_tune"
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("mutransfer")) / "tune"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
