"""Grid trainer throughput vs the μPC paper's loop structure, and vs the machine's matmul limit.

Trains μPC (tanh residual, H = 8, T = 8, batch 64) for a 4 × 11 lr grid × 3 seeds (132 runs) on
Fashion-MNIST at N = 64 and N = 256 and prints, side by side in this process:

  (a) run-steps/s of the grid trainer (all 132 runs vmapped, steps scanned, one program);
  (b) run-steps/s of the paper's loop structure: one run at a time, every inference iteration and
      the weight update a separate jitted call driven from Python;
  the achieved GFLOP/s of (a), counting 2·B·(Σ_l fan_in·fan_out)·(2T + 3) FLOP per run-step
  (the nominal count, mutransfer/throughput.py), and a 2048² float32 matmul's GFLOP/s (the
  practical limit).

Compilation is excluded from (a) and (b). Usage: python benchmarks/grid_throughput.py [--steps 40]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

from mutransfer import losses, optim
from mutransfer.data import load_dataset
from mutransfer.networks import forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig, energy
from mutransfer.throughput import FIG5, matmul_gflops, pc_flop_per_run_step
from mutransfer.trainer import CellSpec, TrainOptions, to_device, train_cell

H, T, B = FIG5.hidden_layers, FIG5.inference_steps, FIG5.batch_size


def small_matmul_gflops(width: int, reps: int = 400) -> float:
    """One run's hidden-layer product, (B × N) @ (N × N): the per-run matrix size the trainer is
    made of. On CPU this, not the 2048² figure, bounds what B = 64 per run can reach."""
    k = jax.random.key(0)
    a, w = jax.random.normal(k, (B, width)), jax.random.normal(k, (width, width))
    f = jax.jit(lambda a, w: jnp.tanh(a @ w))
    f(a, w).block_until_ready()
    t = time.perf_counter()
    for _ in range(reps):
        out = f(a, w)
    out.block_until_ready()
    return 2 * B * width * width / ((time.perf_counter() - t) / reps) / 1e9


def flop_per_run_step(width: int, d: int, c: int) -> float:
    return pc_flop_per_run_step(d, width, H, c, B, T)


def grid_rate(width: int, data, steps: int) -> tuple[float, float]:
    """Run-steps/s of the grid trainer (compile excluded), and its compile time."""
    cell = CellSpec("pc", "mupc", width, H, "tanh", True, data.input_dim, data.num_classes,
                    batch_size=B, inference_steps=T)
    etas, betas, seeds = FIG5.runs()
    opts = TrainOptions(epochs=1, max_steps=steps, log_every=10, eval_every=steps)
    train_cell(cell, data, etas, betas, seeds, opts._replace(max_steps=2, eval_every=2))  # warm
    res = train_cell(cell, data, etas, betas, seeds, opts)
    return len(etas) * steps / res.train_s, res.compile_s


def paper_loop_rate(width: int, ds, steps: int, runs: int = 2) -> float:
    """One run at a time; each inference step and the weight update are separate jitted calls."""
    layers = resolve("mupc", input_dim=ds.input_dim, width=width, hidden_layers=H,
                     output_dim=ds.num_classes, residual=True)
    net = make_net("tanh", True, layers)
    cfg = PCConfig(inference_steps=T)
    lr_mults = [p.lr_mult for p in layers]
    tx = optax.scale_by_adam()

    @jax.jit
    def init_acts(w, x):
        return forward(net, w, x)[:-1]

    @jax.jit
    def inference_step(w, zs, x, y, beta):
        g = jax.grad(lambda z: energy(net, w, z, x, y, cfg))(zs)
        return [z - beta * gz for z, gz in zip(zs, g)]

    @jax.jit
    def weight_update(w, opt, zs, x, y, eta):
        loss, grads = jax.value_and_grad(lambda ww: energy(net, ww, zs, x, y, cfg))(w)
        upd, opt = tx.update(grads, opt, w)
        return optim.apply(w, upd, eta, lr_mults), opt, loss

    @jax.jit
    def train_loss(w, x, y):
        return losses.batch_loss("mse", forward(net, w, x)[-1], y)

    x_all = jnp.asarray(ds.x_train)
    y_all = jax.nn.one_hot(jnp.asarray(ds.y_train), ds.num_classes)

    def one_run(seed: int, n_steps: int) -> None:
        w = init_weights(jax.random.key(seed), layer_dims(ds.input_dim, width, H, ds.num_classes),
                         [p.init_std for p in layers])
        opt = tx.init(w)
        for s in range(n_steps):
            x, y = x_all[s * B:(s + 1) * B], y_all[s * B:(s + 1) * B]
            loss = train_loss(w, x, y)
            zs = init_acts(w, x)
            for _ in range(T):
                zs = inference_step(w, zs, x, y, 0.5)
            w, opt, _ = weight_update(w, opt, zs, x, y, 0.1)
            float(loss)  # the paper's loop logs the loss every step
        jax.block_until_ready(w)

    one_run(0, 2)  # compile
    t = time.perf_counter()
    for r in range(runs):
        one_run(r, steps)
    return runs * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40, help="training steps per measurement")
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    args = ap.parse_args()
    ds = load_dataset("fashion_mnist", train_examples=max(args.steps, 2) * B, test_examples=1000)
    data = to_device(ds)
    peak = matmul_gflops()
    print(f"device: {jax.devices()[0].platform} ({jax.devices()[0].device_kind}); jax {jax.__version__}")
    print(f"2048² float32 matmul: {peak:.1f} GFLOP/s")
    print(f"{'N':>5} {'grid run-steps/s':>17} {'loop run-steps/s':>17} {'(a)/(b)':>8} "
          f"{'grid GFLOP/s':>13} {'% of 2048²':>11} {'64×N×N GFLOP/s':>15} {'compile s':>10}")
    for width in args.widths:
        rate_a, compile_s = grid_rate(width, data, args.steps)
        rate_b = paper_loop_rate(width, ds, min(args.steps, 10))
        gflops = rate_a * flop_per_run_step(width, ds.input_dim, ds.num_classes) / 1e9
        peak = max(peak, 1e-9)
        small = small_matmul_gflops(width)
        print(f"{width:>5} {rate_a:>17.1f} {rate_b:>17.1f} {rate_a / rate_b:>7.1f}x "
              f"{gflops:>13.1f} {100 * gflops / peak:>10.1f}% {small:>15.1f} {compile_s:>10.1f}")
    print(f"2048² float32 matmul (again, after): {matmul_gflops():.1f} GFLOP/s")
    print("GFLOP/s use the nominal count 2·B·ΣW·(2T+3); the trainer computes the input layer's "
          "prediction once per step\n(x is clamped), so it executes fewer FLOP than counted.")


if __name__ == "__main__":
    main()
