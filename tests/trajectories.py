"""A few PC + Adam training steps of one net, for tests that compare two implementations of the same
net (scanned vs unrolled layers, BLAS vs XLA products) step by step."""
from __future__ import annotations

import jax

from mutransfer import optim, pc
from mutransfer.pc import PCConfig


def pc_adam_trajectory(net, w0, batch, steps: int = 5, beta: float = 0.5, lr: float = 0.05):
    """``steps`` PC steps (T = 5 inference steps at activity lr ``beta``) with Adam at weight lr ``lr``
    from weights ``w0``; ``batch(t)`` gives step t's (x, y). Returns (weights, train losses)."""
    tx = optim.direction("adam")
    lr_mults = (1.0,) * len(w0)

    @jax.jit
    def step(w, o, x, y):
        out = pc.gradients(net, w, x, y, beta, PCConfig(inference_steps=5))
        upd, o = tx.update(out.grads, o, w)
        return optim.apply(w, upd, lr, lr_mults), o, out.train_loss

    w, o, losses = list(w0), tx.init(list(w0)), []
    for t in range(steps):
        w, o, loss = step(w, o, *batch(t))
        losses.append(float(loss))
    return w, losses
