import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# The fast lane (`make test-fast`, `pytest -m "not slow"`) is every test that needs no Ray cluster, no
# uvicorn server, no browser, no subprocess sweep and no training beyond a few steps; `make test` runs
# everything. A test is slow when it asks for one of SLOW_FIXTURES (directly or through another
# fixture), lives in one of SLOW_MODULES, or carries ``@pytest.mark.slow`` itself.
SLOW_FIXTURES = frozenset({
    "ray_cli_cluster", "ray_cli_cluster_info",  # a `ray start --head` cluster
    "embedded_ray", "reference",                # tests/test_ray.py: the embedded cluster
    "server", "served",                         # a real uvicorn server (tests/serving.py)
    "browser",                                  # headless Chromium
    "swept",                                    # tests/test_cli.py: a whole sweep through the CLI
})
SLOW_MODULES = frozenset({
    "test_browser", "test_ray", "test_reliability_ray", "test_reliability_drivers", "test_service",
    "test_reliability_api", "test_compose_check",
})


# Tests that train, compile or build for many seconds (each ≥ 10 s of a 42-min fast-lane run on a
# machine at load ≈ 10, `pytest -m "not slow" --durations=60`: the 60 slowest held 79 % of its time).
SLOW_TESTS = {
    "test_alignment.py": {'test_closed_form_equals_converged_inference', 'test_dataframe_and_registry_entry', 'test_mup_equals_mupc_for_plain_nets', 'test_nonlinear_uses_inference', 'test_small_precision_limit_is_bp', 'test_width_trend_gamma0_approaches_bp'},
    "test_api.py": {'test_openapi_fuzz_never_5xx'},
    "test_cli.py": {'test_console_script_entry_point'},
    "test_cli_errors.py": {'test_missing_dataset_is_refused_before_ray_starts', 'test_report_json_into_a_closed_pipe_is_quiet'},
    "test_cnn.py": {'test_conv_implementations_agree_with_gradients', 'test_pc_on_a_cnn',
                    # grid-trainer training of CNN cells (151 s, 116 s, 109 s on a loaded machine)
                    'test_every_algorithm_trains_a_cnn_in_the_grid_trainer', 'test_cnn_runs_in_a_grid_equal_runs_trained_alone',
                    'test_preactivations_stay_order_one_as_channels_grow', 'test_map_and_vmap_over_runs_give_the_same_numbers',
                    'test_residual_cnn_trains_with_mupc'},
    "test_cpu_gemm.py": {'test_pc_training_trajectory_float64_matches_xla_dots',
                         'test_grid_trainer_uses_blas_on_cpu_and_gives_xla_curves'},
    "test_matmul.py": {'test_grid_trainer_same_numbers_split_or_not'},
    "test_trainer_budget_precision.py": {'test_float64_cell_computes_in_float64_and_matches_float32'},
    "test_dashboards.py": {'test_contour_page', 'test_pages_link_every_view_and_carry_the_metric'},
    "test_depth_scan.py": {'test_forward_and_pc_step_match_unrolled', 'test_grid_trainer_packed_state_same_numbers', 'test_init_weights_one_draw_per_shape_equals_per_layer_draws', 'test_training_trajectories_match'},
    "test_device_check.py": {'test_dry_run_passes_without_the_service_packages_and_reports_every_stage', 'test_every_selected_test_exists_and_collects_without_the_service_packages'},
    "test_diagnostics.py": {'test_analyses_table_runs_small_configs', 'test_autodiff_hessian_equals_closed_form_and_blocks', 'test_batch_hessian_is_block_diagonal_over_examples', 'test_block_lanczos_conditioning_equals_dense', 'test_blocks_equal_dense_autodiff_for_nonlinear_nets', 'test_closed_form_hessian_float32_autodiff', 'test_coordinate_check_rows_and_width_scaling', 'test_dense_request_over_max_bytes_is_refused_with_size', 'test_linear_equilibrium_float32_gradient_small', 'test_linear_hessian_positive_definite', 'test_loss_energy_ratio_approaches_one_when_width_dominates_depth'},
    "test_diagnostics_training.py": {'test_numerical_equilibrium_is_a_stationary_point_below_the_forward_energy', 'test_numerical_equilibrium_matches_theorem1_on_linear_nets', 'test_training_diagnostics_analysis', 'test_training_diagnostics_linear_uses_theorem1'},
    "test_docs_site.py": {'test_site_builds_strict_with_every_section', 'test_strict_build_fails_on_a_broken_link_naming_it'},
    "test_hardening_service.py": {'test_a_full_disk_makes_status_unavailable_not_finished_and_writes_507', 'test_connections_beyond_the_cap_get_503', 'test_the_cli_refuses_a_cost_bomb_before_anything_starts'},
    "test_import_graph.py": {'test_every_module_imports_at_top_level_in_a_fresh_interpreter'},
    "test_inference.py": {'test_inference_converges_to_analytical_solution'},
    "test_pc_reference.py": {'test_matches_jpc_reference_at_the_default_optimisation_level'},  # a fresh pytest process
    "test_report_typed.py": {'test_a_real_sweeps_report_round_trips'},
    "test_studies.py": {'test_pages_and_index_come_from_the_runs_on_disk'},  # trains two small sweeps
    "test_sweep_analyses.py": {'test_spec_analyses_run_store_and_serve'},
    "test_tp.py": {'test_dtp_training_reduces_the_loss', 'test_feedback_grads_only_touch_V_and_match_autodiff', 'test_forward_grads_are_local_and_match_the_hand_computed_local_gradient', 'test_output_layer_gradient_is_beta_times_backprop_for_mse', 'test_reconstruction_loss_decreases_under_feedback_training', 'test_step_vmaps_over_runs', 'test_train_step_runs_feedback_before_forward'},
    "test_tp_trainer.py": {'test_grid_trainer_runs_tp_and_flags_divergence', 'test_tp_mup_feature_updates_are_flat_in_width_and_sp_are_not', 'test_tp_runs_alone_equal_runs_in_a_grid'},
    "test_trainer.py": {'test_grid_equals_runs_trained_one_at_a_time', 'test_same_seed_same_init_and_batches'},
}


# `make test` and `make test-fast` run on two pytest-xdist workers with `--dist loadgroup` (three
# gained nothing on 2 cores: 685 s against 658 s, and again 616 and 646 s against 638 s; with two the
# CPUs are already ~97 % busy, benchmarks/cpu_account.py). Each worker is a process with its
# own session fixtures, so everything that starts a Ray cluster (the session's `ray start --head`
# cluster, servers whose drivers join or embed one) is one group and runs on one worker, once;
# tests/test_ray.py's embedded cluster is a second group, so the two run side by side. A module whose tests
# share a module-scoped fixture (a trained sweep, a server, a browser) is a group too, so that
# fixture is built once, not once per worker. Everything else is spread test by test.
RAY_FIXTURES = frozenset({"ray_cli_cluster", "ray_cli_cluster_info", "embedded_ray"})
RAY_MODULES = frozenset({"test_reliability_ray"})  # servers whose drivers embed their own Ray
# tests/test_ray.py's in-process embedded cluster (one `ray.init` per process) and its trained
# reference sweep: a group of its own, so it runs beside the "ray" group on another worker (the
# two groups are the suite's longest chains: most of their time is waiting on drivers and servers).
EMBEDDED_RAY_MODULE = "test_ray"
BROWSER_MODULES = frozenset({"test_browser", "test_browser_pages"})  # one headless Chromium at a time


def xdist_group(item, module: str) -> str | None:
    """The group an item runs in under `--dist loadgroup` (None: any worker, test by test)."""
    if module == EMBEDDED_RAY_MODULE:
        return "ray-embedded"
    if RAY_FIXTURES & set(item.fixturenames) or module in RAY_MODULES:
        return "ray"
    if module in BROWSER_MODULES:
        return "browser"
    if "swept" in item.fixturenames:
        return "swept"  # conftest's session sweep: trained once
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    if any(d.scope in ("module", "session") and d.baseid.endswith(f"{module}.py")
           for fixturedefs in defs.values() for d in fixturedefs):
        return module
    return None


def _join_group(item, group: str) -> None:
    """Put an item in an xdist group: the mark, and the ``@group`` suffix of its node id, which is
    what xdist's loadgroup scheduler reads. xdist 3.8 adds the suffix by setting ``item._nodeid``,
    which pytest ≥ 9.2 no longer reads (the node id comes from ``item._id``): there it is set here."""
    item.add_marker(pytest.mark.xdist_group(group))
    if getattr(item.config.option, "loadgroup", False) and hasattr(item, "_id"):
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{group}")


# First: the marks must be there before `-m "not slow"` deselects by them and before xdist reads them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(item.module, "__name__", "").rsplit(".", 1)[-1]
        name = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
        if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or module in SLOW_MODULES
                or name in SLOW_TESTS.get(f"{module}.py", ())):
            item.add_marker(pytest.mark.slow)
        group = xdist_group(item, module)
        if group:
            _join_group(item, group)
    # The Ray groups are the longest; first in line, their workers start them at once (loadgroup hands
    # out groups in collection order). The order changes nothing else: tests share no state but fixtures.
    items.sort(key=lambda item: not any(m.args and m.args[0] in ("ray", "ray-embedded")
                                        for m in item.iter_markers("xdist_group")))


# Tests run on CPU with small shapes.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray starts its worker processes at nice 15 (its `worker_niceness` config), below the control plane.
# In the suite the other xdist worker is a nice-0 process on the same 2 cores, so a test cluster's
# trials would wait behind it (measured: a cached 1-cell trial 29 s at nice 15 beside a busy
# process, 4.4 s at nice 0). The test clusters run their workers at the tests' own priority.
os.environ.setdefault("RAY_worker_niceness", "0")


# XLA's CPU backend at LLVM -O0 for the suite: most tests compile many small programs and run them
# for a few steps, and -O0 compiles them ≈ 3× faster (tests/test_cnn.py's six training tests: 94 s
# → 28 s on the same loaded machine). The flag sets the optimisation level of XLA's LLVM code
# generation (the dots are library calls either way); machine code differs, so float32 results may
# differ at rounding level, which is why tests comparing two differently built programs do so in
# float64. The jpc reference fixture is also checked at the default level, in a fresh process:
# tests/test_pc_reference.py::test_matches_jpc_reference_at_the_default_optimisation_level.
# `MUTRANSFER_TESTS_XLA_OPT=default` runs the whole suite at XLA's default level. CPU only: on a GPU
# (benchmarks/device_check.py's test stages set JAX_PLATFORMS) the flag would also lower the GPU
# kernels' code generation, and the numerics checked there must be the ones users run.
if (os.environ.get("MUTRANSFER_TESTS_XLA_OPT", "") != "default"
        and os.environ.get("JAX_PLATFORMS") == "cpu"
        and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# One compute thread per process on CPU: the suite runs as many busy processes as there are cores
# (the pytest-xdist workers, and beside them the Ray trials, drivers and servers the tests start),
# so a second XLA (Eigen) or BLAS thread per process only adds contention: idle pool threads spin
# before they sleep, on cores another process needs. What a one-CPU Ray trial gets in production
# (mutransfer.devices.trial_env), given to every process of the suite through the environment.
# `MUTRANSFER_TESTS_THREADS=all` keeps the libraries' defaults (every core per process).
if (os.environ.get("MUTRANSFER_TESTS_THREADS", "") != "all"
        and os.environ.get("JAX_PLATFORMS") == "cpu"
        and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", "")):
    os.environ["XLA_FLAGS"] = (f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false "
                               "intra_op_parallelism_threads=1").strip()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _session_jax_cache() -> None:
    """One JAX persistent compilation cache for the whole test session, fresh each session (as on a
    clean CI checkout) and removed at its end: this process, the xdist workers (they inherit the
    environment of the process that starts them), and every process the tests start (CLI runs, sweep
    drivers, Ray workers, the device check's stages) read and write it, so a program compiled once
    is loaded, not recompiled, by the next process or fixture that builds the same one. JAX reads
    the ``JAX_*`` variables at import; ``MUTRANSFER_JAX_CACHE`` is where the CLI and drivers point
    it (``sweeps/compile_cache.py``). Every program is cached, however quick to compile."""
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("MUTRANSFER_TESTS_JAX_CACHE"):
        return  # an xdist worker: the controller's cache
    root = tempfile.mkdtemp(prefix="mutransfer-tests-jax-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    os.environ.update({"MUTRANSFER_TESTS_JAX_CACHE": root, "MUTRANSFER_JAX_CACHE": root,
                       "JAX_COMPILATION_CACHE_DIR": os.path.join(root, "jax"),
                       "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})


_session_jax_cache()


@pytest.fixture(scope="session")
def digits():
    """The bundled digits data set (``load_dataset("digits")``: 8×8 images, 10 classes), loaded once."""
    from mutransfer.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_on_device(digits):
    """:func:`digits` as the trainer takes it (``mutransfer.trainer.to_device``)."""
    from mutransfer.trainer import to_device

    return to_device(digits)


@pytest.fixture(scope="session")
def digits_small():
    """A 512-train / 200-test slice of the digits, for the CNN tests' compile-bound shapes."""
    from mutransfer.data import load_dataset

    return load_dataset("digits", train_examples=512, test_examples=200)


# A small real sweep on the bundled digits: two algorithms (PC with its activity lr, BP without), two
# widths, 24 runs of 10 steps. What the CLI, the report and the pages are tested on end to end.
SMALL_SPEC = {
    "name": "clitest",
    "algorithms": ["pc", "bp"],
    "parametrizations": ["mupc"],
    "architecture": {"kind": "residual_mlp", "activation": "tanh"},
    "widths": [8, 16],
    "depths": [2],
    "weight_lrs": [1e-2, 1e-1],
    "activity_lrs": [0.5, 1.0],
    "seeds": 2,
    "dataset": {"name": "digits", "train_examples": 320},
    "training": {"epochs": 1, "batch_size": 32},
    "logging": {"every": 2},
}


@pytest.fixture(scope="session")
def swept(tmp_path_factory):
    """SMALL_SPEC trained once per session through the CLI, in-process (``mutransfer run
    --executor local``): (spec file, results root, exit code). Tests only read it."""
    import yaml

    from sweeps.cli import main

    tmp = tmp_path_factory.mktemp("cli")
    spec = tmp / "spec.yaml"
    spec.write_text(yaml.safe_dump(SMALL_SPEC))
    root = tmp / "results"
    code = main(["run", str(spec), "--results", str(root), "--executor", "local"])  # the session's JAX cache
    return spec, root, code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cli_cluster(ray_cli_cluster_info) -> str:
    """The session cluster's address (HOST:PORT)."""
    return ray_cli_cluster_info["address"]


@pytest.fixture(scope="session")
def ray_cli_cluster_info(tmp_path_factory):
    """A Ray cluster started the way users start one: `ray start --head` on loopback.

    `--node-ip-address 127.0.0.1` alone is not enough: Ray 2.60 rewrites a loopback node address to
    the machine's routable one and binds there. `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (what
    sweeps.ray_exec.loopback_only sets for the embedded cluster) keeps it on 127.0.0.1, for every
    process of the cluster (checked with `ss` in tests/test_reliability_ray.py).

    `--block` keeps the `ray start` process in the foreground so that terminating it stops exactly
    this cluster's processes (`ray stop` would stop every Ray cluster of the user on the machine): the
    cluster's processes share the new session's process group, which teardown kills.
    """
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    tmp = tmp_path_factory.mktemp("raycli")
    # Ray's socket paths (TEMP/session_<date>_<pid>/sockets/plasma_store) must fit AF_UNIX's 107 bytes:
    # a pytest tmp path (longer under xdist: .../popen-gw0/...) does not, a short one under /tmp does.
    ray_tmp = tempfile.mkdtemp(prefix="mt-ray-")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    log = open(tmp / "ray_start.log", "wb")
    proc = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                             "--temp-dir", ray_tmp],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while "block forever" not in (tmp / "ray_start.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill_group(proc.pid)
            log.close()
            shutil.rmtree(ray_tmp, ignore_errors=True)
            raise RuntimeError("ray start --head failed: " + (tmp / "ray_start.log").read_text()[-2000:])
        time.sleep(0.5)
    # the address, the process group of the whole cluster, and the `ray start` output
    yield {"address": f"127.0.0.1:{port}", "pgid": proc.pid, "log": tmp / "ray_start.log"}
    # The whole process group is this cluster (gcs, raylet, its workers): stop it without the 30-s drain.
    _kill_group(proc.pid)
    proc.wait(timeout=30)
    log.close()
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # `ray start` failed and its group is gone already
        pass
