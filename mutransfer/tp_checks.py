"""Width checks for target propagation: the coordinate check that fixes ``tp_mup`` (docs/reference/conventions.md#tp-mup)
and the kernel-regime contrast with backprop (Ishikawa et al.: TP has no kernel regime).

Both train a plain tanh MLP (or, with ``architecture="cnn"``, a CNN whose width is its channel
count) for a few Adam steps on fixed batches (seed 0) and measure, on a fixed probe batch, the mean
|h_l(k) − h_l(0)| of every layer's pre-activations (including the output).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mutransfer import algorithms, optim, tp
from mutransfer.networks import forward, init_weights
from mutransfer.trainer import CellSpec, model_for


def feature_updates(algorithm: str, parametrization: str, widths: Sequence[int], *, x: np.ndarray,
                    y: np.ndarray, hidden_layers: int = 2, steps: int = 3, lr: float = 1e-2,
                    beta_out: float = 0.5, batch_size: int = 64, base_width: int | None = None,
                    probe: int = 256, relative: bool = False, activation: str = "tanh",
                    architecture: str = "mlp", image_shape: tuple[int, ...] = ()) -> pd.DataFrame:
    """Rows (algorithm, parametrization, width, layer, delta): mean |Δh_l| after ``steps`` Adam steps
    (``relative``: divided by mean |h_l(0)|). ``algorithm``: tp, dtp, bp or pc (``beta_out`` is then
    PC's activity lr β, with T = H inference steps). ``y`` one-hot. ``image_shape`` (C, H, W) for
    ``architecture="cnn"``."""
    rows = []
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    xp = x[:probe]
    for width in widths:
        cell = CellSpec(algorithm, parametrization, width, hidden_layers, activation, False, x.shape[1],
                        y.shape[1], batch_size=batch_size, base_width=base_width or min(widths),
                        architecture=architecture, image_shape=tuple(image_shape))
        m = model_for(cell)
        key = jax.random.key(0)
        w = init_weights(key, m.dims, m.init_stds)
        tx = optim.direction("adam")
        opt = tx.init(w)
        fb = None
        if m.tp is not None:
            kf, key = jax.random.split(jax.random.fold_in(key, 1))
            V = tp.init_feedback(kf, m.geometry, m.feedback_stds)
            fb = (V, tx.init(V))

        @jax.jit
        def step(w, opt, fb, xb, yb, k):
            if fb is None:
                grads = algorithms.get(algorithm).gradients(m.net, w, xb, yb, beta_out, m.pc).grads
            else:
                out, V, fopt = tp.train_step(m.net, w, fb[0], fb[1], xb, yb, beta_out, k, m.tp, tx, lr,
                                             m.feedback_lr_mults)
                grads, fb = out.grads, (V, fopt)
            upd, opt = tx.update(grads, opt, w)
            return optim.apply(w, upd, lr, m.lr_mults), opt, fb

        h0 = forward(m.net, w, xp)
        for t in range(steps):
            key, sub = jax.random.split(key)
            sl = slice(t * batch_size, (t + 1) * batch_size)
            w, opt, fb = step(w, opt, fb, x[sl], y[sl], sub)
        h1 = forward(m.net, w, xp)
        for layer, (a, b) in enumerate(zip(h0, h1), start=1):
            d = float(jnp.mean(jnp.abs(b - a)))
            if relative:
                d /= float(jnp.mean(jnp.abs(a)))
            rows.append({"algorithm": algorithm, "parametrization": parametrization, "width": width,
                         "layer": "f" if layer == len(h0) else f"h{layer}", "delta": d})
    return pd.DataFrame(rows)
