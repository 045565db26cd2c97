"""Grid trainer throughput vs the μPC paper's loop structure and the machine's matmul limit, with a
regression guard.

Trains μPC (tanh residual, H = 8, T = 8, batch 64) for the μPC paper's 4 × 11 lr grid × 3 seeds
(132 runs) on Fashion-MNIST rows, and prints per width N, side by side in this invocation:

  grid   run-steps/s of the grid trainer's compiled block (all runs vmapped, steps scanned; the
         trainer's own program, compile and test evaluation excluded);
  loop   run-steps/s of the paper's loop structure: one run, every inference step and the weight
         update a separate jitted call driven from Python, the loss read every step;
  GFLOP/s of the grid in *executed* FLOP (:func:`executed_flop`) and as % of a 2048² float32
  matmul measured in the same invocation (mutransfer/throughput.py);
  the block's compile seconds at H = 8, and (``--compile-depths``) at other depths.

``--before PATH`` runs the same measurements on another checkout (e.g. a ``git worktree`` of an
older commit) in a subprocess of this invocation, interleaved width by width with this tree, and
prints both tables and their ratios. ``--against benchmarks/baselines/grid.json`` compares each
width's grid run-steps/s ÷ matmul GFLOP/s (machine-speed-free) with the stored baseline and
marks a drop of more than 15 %; ``--record`` writes that baseline. Run it after touching the
trainer (``make bench``).

Usage: python benchmarks/grid_throughput.py [--widths 64 128 256 512] [--steps 3]
       [--before ../speed-before] [--against benchmarks/baselines/grid.json | --record]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BASELINE = Path(__file__).resolve().parent / "baselines" / "grid.json"
DROP = 0.15


def executed_flop(d: int, n: int, h: int, c: int, b: int, t: int) -> float:
    """FLOP one PC run-step of the trainer executes: hidden and output maps 2T + 3 times (forward,
    T predictions + T vector-Jacobian products, prediction and ∇W at equilibrium); the input map
    3 times (forward, energy at equilibrium, ∇W_1: x is clamped, so inference reuses a_1 W_1 x)."""
    rest = (h - 1) * n * n + c * n
    return 2.0 * b * (rest * (2 * t + 3) + d * n * 3)


# ----------------------------------------------------------------------------------------------
# Measurements (this function body runs in whichever tree is first on sys.path)

def measure(widths: list[int], steps: int, runs: int, compile_depths: list[int], loop_steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from mutransfer import losses, optim, trainer
    from mutransfer.data import load_dataset
    from mutransfer.networks import forward, init_weights, layer_dims, make_net
    from mutransfer.parametrization import resolve
    from mutransfer.pc import PCConfig, energy
    from mutransfer.throughput import FIG5, matmul_gflops

    H, T, B = FIG5.hidden_layers, FIG5.inference_steps, FIG5.batch_size
    ds = load_dataset("fashion_mnist", train_examples=max(loop_steps, 8) * B * 4, test_examples=100)
    etas, betas, seeds = (v[:runs] for v in FIG5.runs())

    def block_program(width: int, depth: int):
        """The trainer's (init, compiled block, args) for a cell at ``width``, ``depth``."""
        cell = trainer.CellSpec("pc", "mupc", width, depth, "tanh", True, ds.input_dim, ds.num_classes,
                                batch_size=B, inference_steps=T)
        init, block, _ = trainer._programs(cell, 1e3, "vmap")
        state = init(jnp.asarray(seeds, jnp.uint32))
        distinct = sorted(set(seeds))
        rng = np.random.default_rng(0)
        args = [jnp.asarray(ds.x_train), jnp.asarray(ds.y_train),
                jnp.asarray(rng.integers(0, ds.x_train.shape[0], (steps, len(distinct), B)), jnp.int32),
                jnp.ones(steps, bool), jnp.asarray([distinct.index(s) for s in seeds], jnp.int32),
                jnp.asarray(etas, jnp.float32) * 0.01, jnp.asarray(betas, jnp.float32) * 0.01]
        if hasattr(trainer, "BUDGET_FRACTIONS"):
            args.append(jnp.asarray([1] * len(trainer.BUDGET_FRACTIONS), jnp.int32))
        t0 = time.perf_counter()
        compiled = block(state, *args)
        return compiled, state, args, time.perf_counter() - t0

    def grid(width: int) -> tuple[float, float]:
        compiled, state, args, compile_s = block_program(width, H)
        state, m = compiled(state, *args)  # warm
        m.block_until_ready()
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            state, m = compiled(state, *args)
            m.block_until_ready()
            best = min(best, time.perf_counter() - t0)
        return len(seeds) * steps / best, compile_s

    def loop(width: int) -> float:
        layers = resolve("mupc", input_dim=ds.input_dim, width=width, hidden_layers=H,
                         output_dim=ds.num_classes, residual=True)
        net = make_net("tanh", True, layers)
        cfg = PCConfig(inference_steps=T)
        lr_mults = [p.lr_mult for p in layers]
        tx = optax.scale_by_adam()
        init_acts = jax.jit(lambda w, x: forward(net, w, x)[:-1])
        train_loss = jax.jit(lambda w, x, y: losses.batch_loss("mse", forward(net, w, x)[-1], y))

        @jax.jit
        def inference_step(w, zs, x, y, beta):
            g = jax.grad(lambda z: energy(net, w, z, x, y, cfg))(zs)
            return [z - beta * gz for z, gz in zip(zs, g)]

        @jax.jit
        def weight_update(w, opt, zs, x, y, eta):
            loss, grads = jax.value_and_grad(lambda ww: energy(net, ww, zs, x, y, cfg))(w)
            upd, opt = tx.update(grads, opt, w)
            return optim.apply(w, upd, eta, lr_mults), opt, loss

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
                w, opt, _ = weight_update(w, opt, zs, x, y, 0.01)
                float(loss)  # the paper's loop logs the loss every step
            jax.block_until_ready(w)

        one_run(0, 2)  # compile
        best = float("inf")
        for r in range(2):
            t0 = time.perf_counter()
            one_run(r, loop_steps)
            best = min(best, time.perf_counter() - t0)
        return loop_steps / best

    out = {"jax": jax.__version__, "device": f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})",
           "runs": len(seeds), "steps": steps, "widths": {}, "compile_s": {}}
    mm = [matmul_gflops()]
    for width in widths:
        g, c = grid(width)
        out["widths"][str(width)] = {"grid": g, "loop": loop(width), "compile_s": c,
                                     "flop": executed_flop(ds.input_dim, width, H, ds.num_classes, B, T)}
        mm.append(matmul_gflops())
    for depth in compile_depths:
        trainer._programs.cache_clear()  # a fresh trace and compile
        out["compile_s"][str(depth)] = block_program(widths[0], depth)[3]
    out["matmul_gflops"] = float(np.median(mm))
    return out


# ----------------------------------------------------------------------------------------------
# Driver

def _in_tree(tree: str, argv: list[str], timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()))
    proc = subprocess.run([sys.executable, __file__, "--emit-json", *argv], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(Path(tree).resolve()))
    if proc.returncode != 0:
        raise SystemExit(f"--before {tree}: the measurement failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(name: str, res: dict) -> list[str]:
    mm = res["matmul_gflops"]
    lines = [f"{name}: {res['device']}, jax {res['jax']}, {res['runs']} runs, 2048² float32 matmul "
             f"{mm:.1f} GFLOP/s",
             f"{'N':>5} {'grid run-steps/s':>17} {'loop run-steps/s':>17} {'grid/loop':>10} "
             f"{'grid GFLOP/s':>13} {'% of 2048²':>11} {'compile s':>10}"]
    for n, r in res["widths"].items():
        gf = r["grid"] * r["flop"] / 1e9
        lines.append(f"{n:>5} {r['grid']:>17.1f} {r['loop']:>17.1f} {r['grid'] / r['loop']:>9.2f}x "
                     f"{gf:>13.1f} {100 * gf / mm:>10.1f}% {r['compile_s']:>10.1f}")
    if res["compile_s"]:
        lines.append("block compile s by depth (N = " + next(iter(res["widths"])) + "): "
                     + ", ".join(f"H = {h}: {s:.1f}" for h, s in res["compile_s"].items()))
    return lines


def _ratios(res: dict) -> dict[str, float]:
    """Grid run-steps/s per matmul GFLOP/s: the guard's machine-speed-free figure."""
    return {n: r["grid"] / res["matmul_gflops"] for n, r in res["widths"].items()}


def record(res: dict) -> None:
    """Write ``res``'s widths' ratios into :data:`BASELINE` (other widths keep their figure)."""
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(BASELINE.read_text())["ratio"] if BASELINE.exists() else {}
    BASELINE.write_text(json.dumps({"what": "grid run-steps/s per 2048² matmul GFLOP/s (μPC tanh residual, "
                                            "H = 8, T = 8, batch 64; widths recorded separately keep "
                                            "their figure)", "runs": res["runs"],
                                    "jax": res["jax"], "device": res["device"],
                                    "ratio": {**kept, **_ratios(res)}}, indent=1) + "\n")
    print(f"recorded {BASELINE} ({', '.join(res['widths'])})", flush=True)


def compare(ratios: dict[str, float], base: dict[str, float], drop: float = DROP) -> list[str]:
    """The guard's table: each width's grid/matmul ratio now against the baseline's, its change,
    and ``DROP > 15 %`` where it fell by more than ``drop`` (a fraction)."""
    lines = [f"{'N':>5} {'grid/matmul now':>16} {'baseline':>10} {'change':>8}"]
    for n, r in ratios.items():
        if n not in base:
            lines.append(f"{n:>5} {r:>16.4f} {'—':>10}   (no baseline for this width)")
            continue
        ch = r / base[n] - 1
        mark = f"  DROP > {100 * drop:.0f} %" if ch < -drop else ""
        lines.append(f"{n:>5} {r:>16.4f} {base[n]:>10.4f} {100 * ch:>+7.1f}%{mark}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--steps", type=int, default=3, help="training steps per timed grid block")
    ap.add_argument("--runs", type=int, default=132, help="runs of the grid (the first of the 132)")
    ap.add_argument("--loop-steps", type=int, default=5, help="steps per timed one-run loop")
    ap.add_argument("--compile-depths", type=int, nargs="*", default=[8, 128])
    ap.add_argument("--before", help="another checkout to measure side by side (subprocess)")
    ap.add_argument("--against", help="baseline JSON to compare with (drop > 15 %% is marked)")
    ap.add_argument("--record", action="store_true", help=f"write the baseline ({BASELINE})")
    ap.add_argument("--emit-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if any(w < 1 for w in args.widths) or args.steps < 1 or not 1 <= args.runs <= 132:
        raise SystemExit("--widths and --steps must be positive, --runs in 1..132")
    if args.emit_json:
        print(json.dumps(measure(args.widths, args.steps, args.runs, args.compile_depths, args.loop_steps)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.before:
        # Interleaved width by width (before, after), each in its own process, so load drifts hit both.
        now = {"widths": {}, "compile_s": {}}
        old = {"widths": {}, "compile_s": {}}
        mms_now, mms_old = [], []
        for i, w in enumerate(args.widths):
            depths = args.compile_depths if i == 0 else []
            sub = ["--widths", str(w), "--steps", str(args.steps), "--runs", str(args.runs),
                   "--loop-steps", str(args.loop_steps), "--compile-depths", *map(str, depths)]
            for res, mms, tree in ((old, mms_old, args.before), (now, mms_now, ".")):
                r = _in_tree(tree if tree != "." else str(Path(__file__).resolve().parents[1]), sub, 1800)
                res["widths"].update(r["widths"])
                res["compile_s"].update(r["compile_s"])
                res.update({k: r[k] for k in ("jax", "device", "runs", "steps")})
                mms.append(r["matmul_gflops"])
                # each width's figures as they come (a later width may not finish in its time box)
                rw = r["widths"][str(w)]
                print(f"partial: {'before' if tree == args.before else 'after'} N = {w}: grid {rw['grid']:.1f}, "
                      f"loop {rw['loop']:.1f} run-steps/s, compile {rw['compile_s']:.1f} s, matmul "
                      f"{r['matmul_gflops']:.1f} GFLOP/s, compile by depth {r['compile_s']}", flush=True)
            if args.record:  # width by width, so a time box that ends the run keeps what finished
                record({**now, "widths": {str(w): now["widths"][str(w)]}, "matmul_gflops": mms_now[-1]})
        old["matmul_gflops"], now["matmul_gflops"] = float(np.median(mms_old)), float(np.median(mms_now))
        print("\n".join(_table(f"before ({args.before})", old)))
        print("\n".join(_table("after (this tree)", now)))
        print(f"{'N':>5} {'grid after/before':>18} {'loop after/before':>18}")
        for n in now["widths"]:
            a, b = now["widths"][n], old["widths"][n]
            print(f"{n:>5} {a['grid'] / b['grid']:>17.2f}x {a['loop'] / b['loop']:>17.2f}x")
        res = now
    else:
        res = measure(args.widths, args.steps, args.runs, args.compile_depths, args.loop_steps)
        print("\n".join(_table("this tree", res)))
    print("GFLOP/s count executed FLOP: hidden and output maps 2T + 3 times per run-step, the input map 3 times.")
    ratios = _ratios(res)
    if args.record:
        record(res)
    if args.against:
        try:
            base = json.loads(Path(args.against).read_text())["ratio"]
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(f"--against {args.against}: not a baseline written by --record ({e})")
        print("\n".join(compare(ratios, base)))


if __name__ == "__main__":
    main()
