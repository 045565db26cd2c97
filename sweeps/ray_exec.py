"""Run a sweep's trials on a Ray cluster with Ray Tune.

By default an embedded local Ray is started for the run; ``address`` (or ``RAY_ADDRESS``) attaches
to an existing cluster (``ray start --head`` on the head node, ``ray start --address HEAD:6379`` on
workers). One Tune trial = one planned trial (a cell or a chunk of its runs); each writes its own
Parquet part atomically, so a retried trial (``FailureConfig(max_failures=...)``) or a resumed
sweep never duplicates a run, and parts already complete in the store are never recomputed.

Every node must see the same results root (a shared filesystem, or an object store URI such as
``s3://bucket/prefix?endpoint_override=...``) and the same dataset.
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
from sweeps.local import SweepOutcome, save_spec
from sweeps.plan import Trial, trials as plan_trials
from sweeps.registry import Registry, default_path
from sweeps.spec import SweepSpec

log = logging.getLogger(__name__)

PID_DIR_ENV = "MUTRANSFER_TRIAL_PID_DIR"  # when set, each trial writes <dir>/<part>.<pid> at start


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

    @property
    def runs_in_progress(self) -> float:
        return sum(self.running.values())


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


def connect(address: str | None = None) -> None:
    """Connect to ``address`` (or $RAY_ADDRESS), or start an embedded local Ray."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and "ray" not in sys.modules:  # Ray reads its auth mode when first imported
        check_reachable(address)
        _default_token_auth()
    import ray

    if ray.is_initialized():
        return
    if address:
        check_reachable(address)
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, configure_logging=False)


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
    from sweeps.plan import trials as _trials
    from sweeps.spec import parse_spec
    from sweeps.worker import execute_trial

    if config.get("jax_cache"):
        compile_cache.enable(config["jax_cache"])
    pid_dir = os.environ.get(PID_DIR_ENV)
    if pid_dir:
        Path(pid_dir, f"{config['part']}.{os.getpid()}").touch()
    spec = parse_spec(config["spec"])
    trial = {t.part: t for t in _trials(spec)}[config["part"]]
    store = ResultsStore(config["results_root"])
    t0 = time.perf_counter()
    n = execute_trial(spec, trial, store, config["sweep_id"],
                      progress=lambda done, total: tune.report({"progress": done / total, "runs": 0}))
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

    class RegistryCallback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            started[part(trial)] = time.perf_counter()
            prog.running[part(trial)] = 0.0
            registry and registry.set_trial(prog.sweep_id, part(trial), "running", progress=0.0, attempt=True)
            emit()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            p = part(trial)
            frac = float(result.get("progress", 0.0))
            prog.running[p] = frac * len(trials_by_part[p].runs)
            if "compute_s" in result:
                prog.trial_compute_s[p] = float(result["compute_s"])
            registry and registry.set_trial(prog.sweep_id, p, progress=frac)
            emit()

        def on_trial_recover(self, iteration, trials, trial, **info):
            p = part(trial)
            prog.running.pop(p, None)
            registry and registry.set_trial(prog.sweep_id, p, "pending", progress=0.0,
                                            error=f"retrying: {info.get('exception') or 'worker failed'}")
            emit()

        def on_trial_complete(self, iteration, trials, trial, **info):
            p = part(trial)
            prog.running.pop(p, None)
            prog.trial_wall_s[p] = time.perf_counter() - started.get(p, time.perf_counter())
            prog.trials_done += 1
            prog.runs_done += len(trials_by_part[p].runs)
            registry and registry.set_trial(prog.sweep_id, p, "done", progress=1.0)
            emit()

        def on_trial_error(self, iteration, trials, trial, **info):
            p = part(trial)
            prog.running.pop(p, None)
            prog.trials_failed += 1
            registry and registry.set_trial(prog.sweep_id, p, "failed", error=str(info.get("exception") or "failed"))
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
                  on_progress: Callable[[Progress], None] | None = None) -> SweepOutcome:
    """Run every unfinished trial of ``spec`` through Ray Tune and write its results."""
    t0 = time.perf_counter()
    sweep_id = sweep_id or spec.default_sweep_id()
    # Trials run in other processes (Tune moves them to trial directories, other nodes have
    # other working directories): a relative local path must be made absolute here.
    results_root = absolute_root(results_root)
    jax_cache = str(Path(jax_cache).resolve()) if jax_cache else None
    store = ResultsStore(results_root)
    planned = plan_trials(spec)
    complete = store.completed_parts(sweep_id)
    todo = [t for t in planned if t.part not in complete]
    out = SweepOutcome(sweep_id, len(planned), cells_skipped=[t.part for t in planned if t.part in complete])

    connect(address)  # unreachable cluster: fails here, before anything is written
    check_resources(spec)
    if todo and not (address or os.environ.get("RAY_ADDRESS")):
        from sweeps.worker import device_data  # embedded: the dataset must be here; say so now
        device_data(spec.dataset, spec.logging.test_chunk)
    save_spec(store, sweep_id, spec)
    reg_path = registry_path or default_path(results_root)
    registry = Registry(reg_path) if reg_path else None
    if registry:
        registry.register(sweep_id, spec.name, spec.canonical(), spec.spec_hash(),
                          [(t.part, t.cell.cell_id, len(t.runs)) for t in planned], address)
        for t in planned:  # a previous driver may have died mid-trial: start from the store's truth
            registry.set_trial(sweep_id, t.part, "done" if t.part in complete else "pending",
                               progress=1.0 if t.part in complete else 0.0)
        registry.set_sweep(sweep_id, "running")
    prog = Progress(sweep_id, len(planned), trials_done=len(out.cells_skipped),
                    runs_total=sum(len(t.runs) for t in planned),
                    runs_done=sum(len(t.runs) for t in planned if t.part in complete))
    if on_progress:
        on_progress(prog)
    if not todo:
        if spec.analyses:
            from sweeps.worker import run_analyses
            run_analyses(spec, store, sweep_id)
        registry and registry.set_sweep(sweep_id, "finished")
        out.wall_s = time.perf_counter() - t0
        return out

    # Our own progress (on_progress / the CLI's bar) replaces Tune's console tables and banner.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    r = spec.resources
    env = {**trial_env(spec), **(extra_env or {})}
    by_part = {t.part: t for t in planned}
    tune_dir = _tune_storage(results_root)
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial}),
        param_space={"part": tune.grid_search([t.part for t in todo]), "spec": spec.canonical(),
                     "sweep_id": sweep_id, "results_root": str(results_root), "env": env,
                     "jax_cache": jax_cache},
        tune_config=tune.TuneConfig(max_concurrent_trials=r.max_concurrent_trials, reuse_actors=True,
                                    trial_name_creator=lambda t: t.config["part"],
                                    trial_dirname_creator=lambda t: t.config["part"]),
        run_config=tune.RunConfig(name=f"{sweep_id}-{int(time.time())}", storage_path=tune_dir, verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  stop=_cancel_stopper(registry, sweep_id) if registry else None,
                                  callbacks=[_callback(registry, prog, by_part, on_progress)]),
    )
    try:
        grid = tuner.fit()
    except BaseException as e:
        if registry:
            cancelled = bool((registry.sweep(sweep_id) or {}).get("cancel"))
            registry.set_sweep(sweep_id, "cancelled" if cancelled else "failed",
                               error=None if cancelled else f"{type(e).__name__}: {e}")
        raise
    done_now = store.completed_parts(sweep_id)
    cancelled_now = bool(registry and (registry.sweep(sweep_id) or {}).get("cancel"))
    if spec.analyses and not cancelled_now:
        from sweeps.worker import run_analyses
        try:
            run_analyses(spec, store, sweep_id)
        except Exception as e:
            out.cells_failed["analyses"] = f"{type(e).__name__}: {e}"
    for res in grid:
        p = res.config["part"]
        if res.error is not None:
            out.cells_failed[p] = f"{type(res.error).__name__}: {res.error}"
        elif p in done_now:
            out.cells_done.append(p)
    cancelled = bool(registry and (registry.sweep(sweep_id) or {}).get("cancel"))
    if registry:
        for t in todo:
            if t.part not in done_now and t.part not in out.cells_failed:
                registry.set_trial(sweep_id, t.part, "pending", progress=0.0)
        status = "cancelled" if cancelled else "failed" if out.cells_failed else "finished"
        registry.set_sweep(sweep_id, status,
                           error="; ".join(f"{p}: {e}" for p, e in out.cells_failed.items())[:4000] or None)
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
