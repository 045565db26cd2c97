"""The grid trainer: every run of one cell trained together (docs/reference/training.md#the-grid-trainer).

A *cell* fixes every array shape (algorithm, parameterisation, width, depth, ...); its *runs*
differ only in weight lr η, activity lr β and seed. All runs of a cell are stacked along a leading
run axis, one training step is ``jax.vmap``-ed over that axis (``lax.map``-ed for CNNs on CPU, see
:func:`batching_for`), and a block of steps is a ``lax.scan`` — one jit-compiled program per cell
shape, run unchanged on CPU or GPU.

Conventions
-----------
* The seed fixes both the weight init and the data order: runs sharing a seed see the same
  initial weights and the same batches (common random numbers, so lr comparisons are paired).
* A run *diverges* at the first step whose pre-update training loss is non-finite or exceeds
  ``divergence_factor`` × its step-0 loss (docs/reference/training.md#divergence). From then on it
  is frozen (that step's update is discarded and no later one applied) and its metrics are NaN;
  its batch-mates are untouched.
  Weights are not scanned for non-finite entries every step (a reduction over every parameter
  of every run cost ~17 % of throughput); non-finite weights show up as a non-finite loss one
  step later.
* In the curves, ``step`` counts the weight updates applied before the measurement: the training
  loss at step t is the forward-pass loss of batch t on the weights after t updates; test metrics at
  step t are measured after t updates (step 0 = initialisation).
* ``min_train_loss`` is the minimum over *every* step (not just logged ones) before divergence.
  ``min_train_loss_<p>pct`` (p in :data:`BUDGET_FRACTIONS`) is the same running minimum over the
  first ⌈f·S⌉ steps of the run's S planned steps (steps 0 … ⌈f·S⌉−1; a run that diverged before
  then keeps its minimum before divergence, exactly like ``min_train_loss``; compare
  ``diverged_step`` with ⌈f·S⌉ to know whether it was still alive at that budget). These are what
  a report needs to judge the sweep at a fraction of its budget without retraining.
* ``precision``: ``float32`` (default) or ``float64``. A float64 cell trains inside
  ``jax.enable_x64(True)`` (a context, so other cells of the same process are unaffected): data,
  weights, optimiser state and learning rates are cast to float64 (initial weights are drawn in
  float32 and cast, so both precisions train the same run). A float32 cell trains inside
  ``jax.enable_x64(False)``, so it computes in float32 even in a process that enabled x64.
* ``init``: ``default`` draws W_l ~ N(0, σ_l²) (σ_l from the parameterisation);
  ``kaiming_uniform`` draws W_l ~ U(−σ_l, σ_l) (variance σ_l²/3). Under ``sp``
  (σ_l = 1/√fan_in) that is jpc's / equinox's default Linear init, U(±1/√fan_in), variance
  1/(3·fan_in), which the μPC paper's SP runs used.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mutransfer import algorithms, cpu_gemm, inference_health, losses, optim, tp
from mutransfer.budgets import BUDGET_FRACTIONS, budget_column, budget_steps  # noqa: F401 (re-exported)
from mutransfer.data import Dataset, batch_indices
from mutransfer.networks import (Layer, Net, cnn_layers, dense_layers, forward, init_weights, layer_dims,
                                 layer_packing, make_net)
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig, output_precision

Array = jax.Array


class CellSpec(NamedTuple):
    """Everything that fixes a cell's compiled program. Hashable (used as a jit cache key)."""

    algorithm: str
    parametrization: str
    width: int
    depth: int  # hidden layers H (L = H + 1 weight matrices)
    activation: str
    residual: bool
    input_dim: int
    output_dim: int
    batch_size: int = 64
    base_width: int | None = None
    base_depth: int | None = None
    inference_steps: int | None = None  # T; None → H (the μPC paper's default)
    loss: str = "mse"
    optimizer: str = "adam"
    output_precision: float = 1.0  # γ′
    output_precision_exponent: float = 0.0  # γ̄_L: γ_L = γ′ · N^(−γ̄_L)
    # TP/DTP only: σ_ε of the reconstruction noise, feedback updates per step, feedback lr / η.
    feedback_noise: float = 0.1
    feedback_steps: int = 1
    feedback_lr_ratio: float = 1.0
    # "mlp" (residual or not) or "cnn": `depth` k×k convs of `width` channels (the first
    # `downsample_layers` with stride 2) and a dense readout; `image_shape` is the data's (C, H, W).
    architecture: str = "mlp"
    kernel_size: int = 3
    downsample_layers: int = 2
    image_shape: tuple[int, ...] = ()
    precision: str = "float32"  # "float32" | "float64" (JAX x64 inside the cell's context)
    init: str = "default"  # "default": N(0, σ_l²) | "kaiming_uniform": U(±σ_l)

    @property
    def steps_T(self) -> int:
        return self.depth if self.inference_steps is None else self.inference_steps


class TrainOptions(NamedTuple):
    """Budget and logging. ``eval_every`` None → test metrics at the end of every epoch."""

    epochs: int = 1
    max_steps: int | None = None
    log_every: int = 10
    eval_every: int | None = None
    divergence_factor: float = 1e3
    memory_budget_bytes: int | None = None  # None → a share of the device's memory
    test_chunk: int = 1000
    run_batching: str | None = None  # "vmap" | "map" | None → batching_for(cell)
    # Once every run of a chunk has diverged, skip its remaining blocks: a diverged run's state is
    # frozen and its metrics and test numbers are NaN, so the skipped steps are recorded as NaN and
    # the results are the same as training on (tested).
    stop_when_all_diverged: bool = True


class CellResult(NamedTuple):
    """Per-run summaries (arrays of length R) and curves (arrays R × n_points)."""

    runs: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]
    compile_s: float
    train_s: float


class CellModel(NamedTuple):
    net: Net
    pc: PCConfig
    lr_mults: tuple[float, ...]
    geometry: tuple[Layer, ...]  # every layer's shapes (dense layers for an MLP)
    init_stds: tuple[float, ...]
    tp: tp.TPConfig | None = None  # TP/DTP: feedback settings (multipliers b_l inside)
    feedback_stds: tuple[float, ...] = ()
    feedback_lr_mults: tuple[float, ...] = ()

    @property
    def dims(self) -> tuple[tuple[int, ...], ...]:
        """Weight shapes, input layer first."""
        return tuple(g.weight_shape for g in self.geometry)


ARCHITECTURES = ("mlp", "cnn")
PRECISIONS = {"float32": np.float32, "float64": np.float64}
INITS = {"default": "W_l ~ N(0, σ_l²)",
         "kaiming_uniform": "W_l ~ U(−σ_l, σ_l); under sp jpc's default U(±1/√fan_in)"}


def precision_dtype(precision: str):
    if precision not in PRECISIONS:
        raise ValueError(f"precision: unknown {precision!r}; choose one of {sorted(PRECISIONS)}")
    return PRECISIONS[precision]


def precision_context(precision: str):
    """The JAX x64 setting a cell of ``precision`` computes under (a context manager)."""
    return jax.enable_x64(precision_dtype(precision) == np.float64)


def geometry_for(cell: CellSpec) -> tuple[Layer, ...]:
    """Per-layer shapes of a cell's network."""
    if cell.architecture == "mlp":
        return dense_layers(layer_dims(cell.input_dim, cell.width, cell.depth, cell.output_dim))
    if cell.architecture != "cnn":
        raise ValueError(f"architecture: unknown {cell.architecture!r}; choose one of {list(ARCHITECTURES)}")
    if len(cell.image_shape) != 3 or math.prod(cell.image_shape) != cell.input_dim:
        raise ValueError(f"image_shape: a CNN needs the inputs' (C, H, W) with C·H·W = {cell.input_dim}, "
                         f"got {cell.image_shape!r}")
    return cnn_layers(tuple(cell.image_shape), cell.width, cell.depth, cell.output_dim,
                      cell.kernel_size, cell.downsample_layers)


def model_for(cell: CellSpec) -> CellModel:
    """The resolved network, configs and per-layer multipliers of a cell."""
    geometry = geometry_for(cell)
    layers = resolve(cell.parametrization, input_dim=cell.input_dim, width=cell.width,
                     hidden_layers=cell.depth, output_dim=cell.output_dim, residual=cell.residual,
                     base_width=cell.base_width, base_hidden_layers=cell.base_depth,
                     fan_ins=[g.fan_in for g in geometry])
    gamma = output_precision(cell.output_precision, cell.output_precision_exponent, cell.width)
    model = CellModel(
        # MLPs keep the geometry-free Net (their ops follow from the weight shapes).
        net=make_net(cell.activation, cell.residual, layers, geometry if cell.architecture == "cnn" else ()),
        pc=PCConfig(inference_steps=cell.steps_T, loss=cell.loss, output_precision=gamma),
        lr_mults=tuple(p.lr_mult for p in layers),
        geometry=geometry,
        init_stds=tuple(p.init_std for p in layers),
    )
    if not algorithms.get(cell.algorithm).feedback:
        return model
    # Feedback maps g_l = b_l V_l φ(h): standard init under `sp`, unit-init multiplier form
    # (b_l = 1/√fan_in) under the μP-style rows; width-fed maps get the hidden layers' lr scaling.
    fb = tp.feedback_params(geometry, "sp" if cell.parametrization == "sp" else "unit")
    hidden_c = layers[1].lr_mult if len(layers) > 2 else 1.0
    # V_l (l = 2..L) reads h_l: a hidden layer's (width-scaled) activity except for l = L.
    n_fb = len(geometry) - 1
    fb_c = tuple(hidden_c if i < n_fb - 1 else 1.0 for i in range(n_fb))
    tpc = tp.TPConfig(variant=cell.algorithm, loss=cell.loss, feedback_noise=cell.feedback_noise,
                      feedback_steps=cell.feedback_steps, feedback_multipliers=tuple(p.multiplier for p in fb))
    return model._replace(tp=tpc, feedback_stds=tuple(p.init_std for p in fb), feedback_lr_mults=fb_c)


def grid_model(cell: CellSpec) -> CellModel:
    """:func:`model_for` as the grid trainer runs it: PC on a scanned MLP gets the CPU fast path
    for its hot products where it is available and faster (``Net.gemm``; the width gate of
    mutransfer/cpu_gemm.py; reverse-mode only, so not in :func:`model_for`, whose nets the
    forward-mode diagnostics also use)."""
    model = model_for(cell)
    if cell.algorithm == "pc" and model.net.scanned:
        model = model._replace(net=model.net._replace(gemm=cpu_gemm.resolve(cell.width)))
    return model


def _where_runs(ok: Array, new, old):
    """Per-run select over a pytree whose leaves have a leading run axis."""
    def sel(n, o):
        return jnp.where(ok.reshape(ok.shape + (1,) * (n.ndim - 1)), n, o)
    return jax.tree.map(sel, new, old)


class _State(NamedTuple):
    weights: list
    opt_state: object
    aux: object  # TP/DTP: (feedback V, its optimiser state, PRNG key); () otherwise
    alive: Array  # (R,) bool
    loss0: Array  # (R,) initial training loss
    min_loss: Array  # (R,)
    min_loss_at: Array  # (F, R): running minimum over the first ⌈f·S⌉ steps, f in BUDGET_FRACTIONS
    last_loss: Array  # (R,)
    diverged_step: Array  # (R,) int32, -1 while alive
    step: Array  # () int32, updates done so far


RUN_BATCHING = ("vmap", "map")


def batching_for(cell: CellSpec, requested: str | None = None) -> str:
    """How one step treats the runs of a chunk: ``vmap`` (one batched program: MLPs, and any
    cell on an accelerator) or ``map`` (``lax.map``: the runs one after another inside the same
    compiled step — CNNs on CPU, where the batched patch matmuls of many runs were measured slower
    than one run at a time; benchmarks/cnn_checks.py). Same numbers either way."""
    if requested is not None:
        if requested not in RUN_BATCHING:
            raise ValueError(f"run_batching: unknown {requested!r}; choose one of {list(RUN_BATCHING)}")
        return requested
    return "map" if cell.architecture == "cnn" and jax.default_backend() == "cpu" else "vmap"


def _over_runs(fn: Callable, batching: str) -> Callable:
    if batching == "vmap":
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args)


@functools.lru_cache(maxsize=64)
def _programs(cell: CellSpec, divergence_factor: float, batching: str = "vmap"):
    """jit-compiled (init, block, evaluate) for a cell; jit re-specialises per chunk shape."""
    model = grid_model(cell)
    algo = algorithms.get(cell.algorithm)
    tx = optim.direction(cell.optimizer)
    C = cell.output_dim
    dtype = precision_dtype(cell.precision)
    if cell.init not in INITS:
        raise ValueError(f"init: unknown {cell.init!r}; choose one of {sorted(INITS)}")

    def init_one(seed):
        key = jax.random.key(seed)
        # Drawn in float32 and cast: a float64 run starts from exactly the float32 run's weights,
        # so the two precisions train the same run (same weights, same batches).
        w = [a.astype(dtype) for a in init_weights(key, model.dims, model.init_stds, jnp.float32, cell.init)]
        if not algo.feedback:
            return w, tx.init(w), ()
        kf, kn = jax.random.split(jax.random.fold_in(key, 1))
        V = [a.astype(dtype) for a in tp.init_feedback(kf, model.geometry, model.feedback_stds, jnp.float32)]
        return w, tx.init(w), (V, tx.init(V), kn)

    def init(seeds):
        weights, opt_state, aux = jax.vmap(init_one)(seeds)
        R = seeds.shape[0]
        F = len(BUDGET_FRACTIONS)
        return _State(weights, opt_state, aux, jnp.ones(R, bool), jnp.full(R, jnp.nan, dtype),
                      jnp.full(R, jnp.inf, dtype), jnp.full((F, R), jnp.inf, dtype), jnp.full(R, jnp.nan, dtype),
                      jnp.full(R, -1, jnp.int32), jnp.zeros((), jnp.int32))

    def step_one(weights, opt_state, aux, x, y, eta, beta):
        if algo.feedback:
            # TP/DTP: k feedback updates of V, then targets and the local forward gradients.
            V, fopt, key = aux
            key, sub = jax.random.split(key)
            out, V, fopt = tp.train_step(model.net, weights, V, fopt, x, y, beta, sub, model.tp, tx,
                                         eta * cell.feedback_lr_ratio, model.feedback_lr_mults)
            aux = (V, fopt, key)
            # Curves: energy_start = target loss Σ½‖τ_l − h_l‖², energy_end = reconstruction loss.
            metrics = (out.train_loss, out.target_loss, out.reconstruction_loss)
        else:
            out = algo.gradients(model.net, weights, x, y, beta, model.pc)
            metrics = (out.train_loss, out.energy_start, out.energy_end)
        updates, opt_state = tx.update(out.grads, opt_state, weights)
        weights = optim.apply(weights, updates, eta, model.lr_mults)
        return (weights, opt_state, aux, *metrics)

    vstep = _over_runs(step_one, batching)
    # Scanned MLPs keep their state packed: weights and Adam moments as [W_1, stack(W_2..W_H), W_L].
    packing = layer_packing(model.net, model.lr_mults, algo.feedback)

    def block(state: _State, x_train, y_train, idx, valid, seed_pos, eta, beta, cutoffs):
        """``idx``: (steps, S, B) batch indices per distinct seed; ``valid``: (steps,) pads;
        ``cutoffs``: (F,) ⌈f·S⌉ of each budget fraction."""
        def body(st: _State, inp):
            ids, ok_step = inp
            xb = x_train[ids][seed_pos]  # (R, B, D): each run's batch, by its seed
            yb = jax.nn.one_hot(y_train[ids][seed_pos], C, dtype=x_train.dtype)
            w, o, a, loss, e0, e1 = vstep(st.weights, st.opt_state, st.aux, xb, yb, eta, beta)
            loss0 = jnp.where(st.step == 0, loss, st.loss0)
            bad = (~jnp.isfinite(loss)) | (loss > divergence_factor * loss0)
            live = st.alive & ok_step
            accept = live & ~bad  # this step's loss is valid and its update is applied
            newly = live & bad
            metrics = [jnp.where(accept, m, jnp.nan) for m in (loss, e0, e1)]
            st = _State(
                weights=_where_runs(accept, w, st.weights),
                opt_state=_where_runs(accept, o, st.opt_state),
                aux=_where_runs(accept, a, st.aux),
                alive=st.alive & ~newly,
                loss0=jnp.where(ok_step, loss0, st.loss0),
                min_loss=jnp.where(accept, jnp.minimum(st.min_loss, loss), st.min_loss),
                min_loss_at=jnp.where(accept[None, :] & (st.step < cutoffs)[:, None],
                                      jnp.minimum(st.min_loss_at, loss[None, :]), st.min_loss_at),
                last_loss=jnp.where(live, loss, st.last_loss),
                diverged_step=jnp.where(newly, st.step, st.diverged_step),
                step=st.step + ok_step.astype(jnp.int32),
            )
            return st, jnp.stack(metrics)

        return jax.lax.scan(body, state, (idx, valid))

    def evaluate(weights, alive, x_test, y_test, mask):
        """Test loss and accuracy per run (NaN once diverged); ``x_test`` (chunks, chunk, D),
        ``mask`` marks padding."""
        def per_run(w):
            def chunk(args):
                xc, yc, mc = args
                f = forward(model.net, w, xc)[-1]
                onehot = jax.nn.one_hot(yc, C, dtype=f.dtype)
                lossv = losses.LOSSES[model.pc.loss](f, onehot)
                correct = (jnp.argmax(f, -1) == yc).astype(f.dtype)
                return jnp.sum(lossv * mc), jnp.sum(correct * mc)
            l, c = jax.lax.map(chunk, (x_test, y_test, mask))
            n = jnp.sum(mask)
            return jnp.sum(l) / n, jnp.sum(c) / n
        loss, acc = _over_runs(per_run, batching)(weights)
        return jnp.where(alive, loss, jnp.nan), jnp.where(alive, acc, jnp.nan)

    return (jax.jit(lambda seeds: packing.pack(init(seeds))), _aot(jax.jit(block, donate_argnums=(0,))),
            _aot(jax.jit(evaluate)))


def _aot(jitted):
    """Ahead-of-time compile per argument signature, cached, so compile time is measured apart
    from training and every chunk of a cell reuses one executable."""
    cache: dict = {}

    def compiled(*args):
        key = jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), args)
        key = (jax.tree.structure(args), tuple(jax.tree.leaves(key)))
        if key not in cache:
            cache[key] = jitted.lower(*args).compile()
        return cache[key]
    return compiled


def bytes_per_run(cell: CellSpec, test_chunk: int = 1000) -> int:
    """Rough device memory of one run: weights + optimiser moments + update temporaries, and the
    activations of one training step and one test chunk (4 or 8 bytes a number by precision)."""
    geometry = geometry_for(cell)
    params = sum(math.prod(g.weight_shape) for g in geometry)
    if algorithms.get(cell.algorithm).feedback:
        params *= 2  # feedback weights V of the same sizes (transposed)
    moments = 2 if cell.optimizer == "adam" else 0
    f = np.dtype(precision_dtype(cell.precision)).itemsize  # 4 (float32) or 8 (float64)
    # weights, grads, moments, new weights/moments held across the select, plus per-step inputs.
    param_bytes = f * params * (3 + 2 * moments)
    # activations per example, plus a conv's patch matrix (k²·C_in per output position)
    units = sum(math.prod(g.out_shape) + (g.fan_in * math.prod(g.out_shape[:-1]) if g.kind == "conv" else 0)
                for g in geometry)
    act = f * units * (cell.batch_size * 6 + test_chunk * 2)
    return int(param_bytes + act + f * cell.batch_size * cell.input_dim)


def default_memory_budget() -> int:
    """Bytes the trainer may use: 60 % of an accelerator's memory, or 25 % of host RAM on CPU."""
    dev = jax.devices()[0]
    stats = getattr(dev, "memory_stats", lambda: None)()
    if stats and stats.get("bytes_limit"):
        return int(0.6 * stats["bytes_limit"])
    try:
        import os
        return int(0.25 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def chunk_sizes(n_runs: int, per_run: int, budget: int) -> list[int]:
    """Split ``n_runs`` into equal-sized chunks fitting ``budget`` bytes (the last is padded)."""
    cap = max(1, budget // max(per_run, 1))
    n_chunks = math.ceil(n_runs / cap)
    size = math.ceil(n_runs / n_chunks)
    return [size] * n_chunks


class _Batches:
    """Host-side batch indices per (seed, epoch), cached: the same for every run with that seed."""

    def __init__(self, n_train: int, batch_size: int):
        self.n, self.b = n_train, batch_size
        self.per_epoch = n_train // batch_size
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def get(self, seed: int, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.per_epoch)
        key = (seed, epoch)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = batch_indices(self.n, self.b, seed, epoch)
        return self._cache[key][pos]

    def block(self, seeds: Sequence[int], start: int, length: int, total: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.zeros((length, len(seeds), self.b), np.int32)
        valid = np.zeros(length, bool)
        for t in range(length):
            s = start + t
            if s < total:
                valid[t] = True
                for j, seed in enumerate(seeds):
                    idx[t, j] = self.get(seed, s)
        return idx, valid


class DeviceData(NamedTuple):
    """A dataset placed on the device once and shared by every cell that trains on it."""

    x_train: Array
    y_train: Array
    x_test: Array  # (chunks, chunk, D), zero-padded
    y_test: Array
    test_mask: Array
    n_train: int
    input_dim: int
    num_classes: int


def to_device(data: Dataset, test_chunk: int = 1000) -> DeviceData:
    n_test = data.x_test.shape[0]
    chunk = min(test_chunk, max(n_test, 1))
    n_chunks = max(1, math.ceil(n_test / chunk))
    pad = n_chunks * chunk - n_test
    xt = np.concatenate([data.x_test, np.zeros((pad, data.x_test.shape[1]), np.float32)])
    yt = np.concatenate([data.y_test, np.zeros(pad, np.int32)])
    mask = np.concatenate([np.ones(n_test, np.float32), np.zeros(pad, np.float32)])
    return DeviceData(
        jnp.asarray(data.x_train, jnp.float32), jnp.asarray(data.y_train, jnp.int32),
        jnp.asarray(xt.reshape(n_chunks, chunk, -1)), jnp.asarray(yt.reshape(n_chunks, chunk)),
        jnp.asarray(mask.reshape(n_chunks, chunk)), int(data.x_train.shape[0]),
        int(data.x_train.shape[1]), int(data.num_classes))


def train_cell(cell: CellSpec, data: Dataset | DeviceData, weight_lrs: Sequence[float],
               activity_lrs: Sequence[float], seeds: Sequence[int],
               options: TrainOptions = TrainOptions(),
               progress: Callable[[int, int], None] | None = None) -> CellResult:
    """Train the runs (weight_lrs[i], activity_lrs[i], seeds[i]) of one cell together.

    Learning rates: η is Adam's (or SGD's) base lr, scaled per layer by the parameterisation's
    c_l; β is the activity lr applied to the gradient of the batch-mean energy. Runs are chunked to
    fit ``options.memory_budget_bytes``; every chunk has the same size so the cell compiles once.
    ``progress(done, total)`` is called after every block of steps, counting chunk-steps.
    """
    n_runs = len(weight_lrs)
    if not (len(activity_lrs) == len(seeds) == n_runs) or n_runs == 0:
        raise ValueError("weight_lrs, activity_lrs and seeds must be non-empty and of equal length")
    with precision_context(cell.precision):
        return _train_cell(cell, data, weight_lrs, activity_lrs, seeds, options, progress)


def _train_cell(cell: CellSpec, data: Dataset | DeviceData, weight_lrs: Sequence[float],
                activity_lrs: Sequence[float], seeds: Sequence[int], options: TrainOptions,
                progress: Callable[[int, int], None] | None) -> CellResult:
    n_runs = len(weight_lrs)
    dtype = precision_dtype(cell.precision)
    dd = data if isinstance(data, DeviceData) else to_device(data, options.test_chunk)
    dd = dd._replace(x_train=jnp.asarray(dd.x_train, dtype), x_test=jnp.asarray(dd.x_test, dtype),
                     test_mask=jnp.asarray(dd.test_mask, dtype))
    if dd.input_dim != cell.input_dim or dd.num_classes != cell.output_dim:
        raise ValueError(f"cell expects D={cell.input_dim}, C={cell.output_dim}; data has "
                         f"D={dd.input_dim}, C={dd.num_classes}")
    budget = options.memory_budget_bytes or default_memory_budget()
    sizes = chunk_sizes(n_runs, bytes_per_run(cell, options.test_chunk), budget)
    order = np.arange(sum(sizes)) % n_runs  # pad the last chunk by repeating runs (results dropped)
    parts, compile_s, train_s, start = [], 0.0, 0.0, 0
    for k, size in enumerate(sizes):
        sel = order[start:start + size]
        start += size
        chunk_progress = progress and (lambda done, total, k=k: progress(k * total + done, len(sizes) * total))
        res = _train_chunk(cell, dd, np.asarray(weight_lrs, dtype)[sel],
                           np.asarray(activity_lrs, dtype)[sel], np.asarray(seeds)[sel], options,
                           chunk_progress)
        parts.append(res)
        compile_s += res.compile_s
        train_s += res.train_s
    runs = {k: np.concatenate([p.runs[k] for p in parts])[:n_runs] for k in parts[0].runs}
    curves = {k: np.concatenate([p.curves[k] for p in parts])[:n_runs] for k in parts[0].curves}
    # Report the lrs exactly as given (a float32 cell computes with them rounded to float32).
    runs["weight_lr"] = np.asarray(weight_lrs, np.float64)
    runs["activity_lr"] = np.asarray(activity_lrs, np.float64)
    runs["wall_s"] = np.full(n_runs, (compile_s + train_s) / n_runs)
    return CellResult(runs, curves, compile_s, train_s)


def _train_chunk(cell: CellSpec, dd: DeviceData, etas: np.ndarray, betas: np.ndarray,
                 seeds: np.ndarray, options: TrainOptions,
                 progress: Callable[[int, int], None] | None = None) -> CellResult:
    init, block, evaluate = _programs(cell, float(options.divergence_factor),
                                      batching_for(cell, options.run_batching))
    per_epoch = dd.n_train // cell.batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {cell.batch_size} exceeds the {dd.n_train} training examples")
    total = per_epoch * options.epochs
    if options.max_steps is not None:
        total = min(total, options.max_steps)
    block_len = max(1, min(options.eval_every or per_epoch, total))
    n_blocks = math.ceil(total / block_len)
    distinct = sorted(set(int(s) for s in seeds))
    seed_pos = jnp.asarray([distinct.index(int(s)) for s in seeds], jnp.int32)
    eta, beta = jnp.asarray(etas), jnp.asarray(betas)
    batches = _Batches(dd.n_train, cell.batch_size)
    cutoffs = jnp.asarray([budget_steps(f, total) for f in BUDGET_FRACTIONS], jnp.int32)

    t0 = time.perf_counter()
    state = init(jnp.asarray(seeds, jnp.uint32))
    idx, valid = batches.block(distinct, 0, block_len, total)
    # Compile ahead so the timing splits compile from training (and so the GPU path is identical).
    block_c = block(state, dd.x_train, dd.y_train, idx, valid, seed_pos, eta, beta, cutoffs)
    eval_c = evaluate(state.weights, state.alive, dd.x_test, dd.y_test, dd.test_mask)
    compile_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    step_metrics, evals = [], []
    any_alive_before = None  # a device flag: did any run survive the previous block?
    evals.append((0, *eval_c(state.weights, state.alive, dd.x_test, dd.y_test, dd.test_mask)))
    for b in range(n_blocks):
        if b:
            idx, valid = batches.block(distinct, b * block_len, block_len, total)
        state, m = block_c(state, dd.x_train, dd.y_train, idx, valid, seed_pos, eta, beta, cutoffs)
        step_metrics.append(m[: int(valid.sum())])
        done = min((b + 1) * block_len, total)
        evals.append((done, *eval_c(state.weights, state.alive, dd.x_test, dd.y_test, dd.test_mask)))
        if progress:
            progress(done, total)
        # Checked one block late (the previous block's flag is ready by now), so the host never waits
        # on the block it just queued; a block trained after every run died is NaN anyway.
        if options.stop_when_all_diverged and done < total:
            if any_alive_before is not None and not bool(any_alive_before):
                step_metrics.append(np.full((total - done, *m.shape[1:]), np.nan, m.dtype))
                nan = np.full(len(seeds), np.nan)
                evals += [(min((k + 1) * block_len, total), nan, nan) for k in range(b + 1, n_blocks)]
                break
            any_alive_before = state.alive.any()
    metrics = np.asarray(jnp.concatenate(step_metrics))  # (steps, 3, R)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - t1
    runs, curves = _summarise(state, metrics, evals, options.log_every, total, etas, betas, seeds)
    # status/diverge_reason/diverge_step: loss divergence, or inference that raised the energy
    inference_health.mark(runs, metrics, block_len, algorithms.get(cell.algorithm).inference)
    return CellResult(runs, curves, compile_s, train_s)


def _summarise(state: _State, metrics: np.ndarray, evals: list, log_every: int, total: int,
               etas, betas, seeds) -> tuple[dict, dict]:
    R = metrics.shape[2]
    alive = np.asarray(state.alive)
    dstep = np.asarray(state.diverged_step).astype(np.int64)
    test_steps = np.array([e[0] for e in evals])
    test_loss = np.stack([np.asarray(e[1], np.float64) for e in evals], 1)
    test_acc = np.stack([np.asarray(e[2], np.float64) for e in evals], 1)

    log_steps = np.unique(np.concatenate([np.arange(0, total, max(1, log_every)), [total - 1]]))
    steps = np.union1d(log_steps, test_steps)  # rows of the curve table
    n = len(steps)
    curve = {k: np.full((R, n), np.nan) for k in ("train_loss", "energy_start", "energy_end",
                                                  "test_loss", "test_acc")}
    in_train = np.isin(steps, log_steps)
    for j, name in enumerate(("train_loss", "energy_start", "energy_end")):
        curve[name][:, in_train] = metrics[steps[in_train], j, :].T
    in_test = np.searchsorted(steps, test_steps)
    curve["test_loss"][:, in_test] = test_loss
    curve["test_acc"][:, in_test] = test_acc
    curve["step"] = np.broadcast_to(steps, (R, n)).astype(np.int64)

    with np.errstate(all="ignore"):
        best_acc = np.where(np.all(np.isnan(test_acc), 1), np.nan, np.nanmax(np.nan_to_num(test_acc, nan=-1.0), 1))
    best_acc = np.where(best_acc < 0, np.nan, best_acc)
    runs = {
        "weight_lr": np.asarray(etas, np.float64),
        "activity_lr": np.asarray(betas, np.float64),
        "seed": np.asarray(seeds, np.int64),
        "status": np.where(alive, "ok", "diverged"),
        "min_train_loss": np.array(state.min_loss, np.float64),
        "final_train_loss": np.asarray(state.last_loss, np.float64),
        "best_test_acc": best_acc,
        "final_test_acc": test_acc[:, -1],
        "steps": np.where(alive, total, dstep),
        "diverged_step": dstep,
    }
    min_at = np.array(state.min_loss_at, np.float64)
    for f, row in zip(BUDGET_FRACTIONS, min_at):
        runs[budget_column(f)] = row.copy()
    for name in ("min_train_loss", *map(budget_column, BUDGET_FRACTIONS)):
        runs[name][~np.isfinite(runs[name])] = np.nan
    return runs, curve
