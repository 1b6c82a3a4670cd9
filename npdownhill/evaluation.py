r"""Evaluation params: lookahead and parameter averaging, shared by every first-order rule.

Most rules train and evaluate the same parameters: the user's arrays. Some
keep another set for evaluation, which the run validates, keeps as the
best and leaves in the arrays at the end:

* ``lookahead=k`` (Zhang et al. 2019): every ``k`` updates the slow weights
  move ``lookahead_alpha`` of the way to the fast ones (the arrays) and the
  fast ones restart there,

  .. math::

      \phi \leftarrow \phi + \alpha\, (\theta - \phi), \qquad \theta \leftarrow \phi;

  the slow weights :math:`\phi` are the evaluation params (the paper's
  output). They start as the params of the first update.
* ``average='ema'``: an exponential moving average with bias correction
  (``optax.ema(debias=True)`` applied to the params), which weighs the params
  after update :math:`t` by :math:`(1 - d) d^{T - t}` normalised to 1,

  .. math::

      \bar\theta_t = \bar\theta_{t-1} + c_t\, (\theta_t - \bar\theta_{t-1}),
      \qquad c_t = \frac{1 - d}{1 - d^t};

* ``average='polyak'``: the plain mean of the params after updates
  ``average_start + 1`` .. ``t`` (Polyak & Juditsky 1992), the same
  recursion with :math:`c_t = 1 / (t - s)` for :math:`t > s` and
  :math:`c_t = 1` before (the average follows the params until then).

Both run after a successful update, on the new params: a refused update
touches neither. Their buffers (``slow``, ``average``) are named state of
the optimizer, so state dicts and checkpoints carry them; they are not
double-buffered, since nothing can fail once the update is committed.
Before the first update the evaluation params are the params themselves.
The schedule-free rules keep their own evaluation params (their average
``x``) and take neither option.
"""

from contextlib import contextmanager

import numpy as np

from . import hyper as H

__all__ = ["HYPERS", "BUFFERS", "check", "state_spec", "active", "after_update", "coefficient",
           "EvaluationParams"]


def _lookahead(call, name, value):
    return H.number(call, name, value, low=0, integer=True)


def _alpha(call, name, value):
    return H.number(call, name, value, low=0, high=1, low_open=True)


def _average(call, name, value):
    if value is None or value in ("ema", "polyak"):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{call}({name}={value!r}): {name} must be None, 'ema' or 'polyak'; "
                        f"got {type(value).__name__}")
    raise ValueError(f"{call}({name}={value!r}): {name} must be None, 'ema' or 'polyak'; "
                     f"got {value!r}")


def _start(call, name, value):
    return H.number(call, name, value, low=0, integer=True)


#: The shared hyperparameters (merged into :attr:`Optimizer.hyperparameters`).
HYPERS = {
    "lookahead": H.Hyper(0, _lookahead, "lookahead: sync the slow weights every k updates; 0 = off"),
    "lookahead_alpha": H.Hyper(0.5, _alpha, "lookahead: step of the slow weights, in (0, 1]"),
    "average": H.Hyper(None, _average, "evaluate an average of the params: 'ema', 'polyak' or None"),
    "average_decay": H.Hyper(0.999, H.unit_interval, "average='ema': decay d in [0, 1)"),
    "average_start": H.Hyper(0, _start, "average='polyak': updates before the mean starts"),
}

#: The state buffers these options add, which the rules' kernels never see.
BUFFERS = ("slow", "average")


def check(opt, call, hyper):
    """Refuse what cannot work: both options at once, or on a rule that cannot take them."""
    on = [name for name in ("lookahead", "average") if hyper[name]]
    if not on:
        return
    name, shown = type(opt).__name__, ", ".join(f"{k}={hyper[k]!r}" for k in on)
    if len(on) == 2:
        raise ValueError(f"{call}({shown}): lookahead and average cannot be combined: each "
                         "defines the evaluation params (the slow weights or the average); "
                         "choose one")
    if opt.own_evaluation_params:
        raise ValueError(f"{call}({shown}): {name} already evaluates an average of its "
                         "iterates (its x sequence), so it takes neither lookahead nor average")
    if opt.full_batch:
        raise ValueError(f"{call}({shown}): {name} takes its steps by a line search on the "
                         "whole batch; lookahead and averaging apply to the first-order rules")


def active(hyper):
    """Whether lookahead or averaging is on."""
    return bool(hyper["lookahead"]) or hyper["average"] is not None


def state_spec(hyper):
    """``{name: 0.0}`` of the buffers the options use (filled with the params when made)."""
    if hyper["lookahead"]:
        return {"slow": 0.0}
    if hyper["average"] is not None:
        return {"average": 0.0}
    return {}


def coefficient(hyper, t):
    """:math:`c_t` of the average after update ``t`` (from 1)."""
    if hyper["average"] == "ema":
        d = hyper["average_decay"]
        return (1.0 - d) / (1.0 - d ** t)
    start = hyper["average_start"]
    return 1.0 if t <= start else 1.0 / (t - start)


def after_update(hyper, t, old, new, buffers, tmp):
    """Advance lookahead or the average after update ``t`` (from 1); return whether
    ``new`` (the new params, flat) was changed.

    Parameters
    ----------
    hyper : dict
    t : int
        The update just made.
    old : ndarray or None
        The params before it (flat), needed only for lookahead's first update.
    new : ndarray
        The params after it (flat); a lookahead sync writes the slow weights there.
    buffers : dict
        ``slow`` or ``average``, advanced in place.
    tmp : ndarray
        Scratch of the same size.
    """
    k = hyper["lookahead"]
    if k:
        slow = buffers["slow"]
        if t == 1:                       # the slow weights start at the first update's params
            np.copyto(slow, old)
        if t % k:
            return False
        # phi = phi + alpha (theta - phi);  theta = phi
        np.subtract(new, slow, tmp)
        np.multiply(tmp, hyper["lookahead_alpha"], tmp)
        np.add(slow, tmp, slow)
        np.copyto(new, slow)
        return True
    if hyper["average"] is not None:
        avg = buffers["average"]
        # avg = avg + c_t (theta - avg)
        np.subtract(new, avg, tmp)
        np.multiply(tmp, coefficient(hyper, t), tmp)
        np.add(avg, tmp, avg)
    return False


class EvaluationParams:
    """What a run validates, keeps and leaves: the evaluation params of an
    :class:`~npdownhill.Optimizer` (a mixin; see the module docstring)."""

    def _evaluation_flat(self):
        """The flat evaluation params when they differ from the params (a buffer of the
        optimizer: read it, never write it), else ``None``; see :meth:`evaluation_params`."""
        if not int(self._updates) or not self._wrapped:
            return None
        return self.state["slow" if self._hyper["lookahead"] else "average"]

    @property
    def evaluates_elsewhere(self):
        """Whether the evaluation params now differ from the params being trained (bool)."""
        return self._evaluation_flat() is not None

    def read_evaluation_params(self, out):
        """Copy the flat evaluation params into ``out`` (a flat buffer of the layout); return it."""
        src = self._evaluation_flat()
        if src is None:
            return self.layout.read(out)
        np.copyto(out, src, casting="same_kind")
        return out

    def evaluation_params(self):
        """The params to evaluate, keep and report: a tree of fresh copies.

        Most rules evaluate what they train, the user's arrays. With
        ``lookahead`` these are the slow weights, with ``average`` the
        average, and the schedule-free rules evaluate their average ``x``
        while the arrays hold the point ``y`` where gradients are taken.
        A run (:meth:`iterate`, :meth:`minimize`, :meth:`evaluate`)
        validates these, keeps the best of them, and leaves that in the
        arrays when it ends; in a hand-written loop of :meth:`step` or
        :meth:`apply`, use this method or :meth:`use_evaluation_params`.
        Before the first update they are the params.

        Returns
        -------
        tree
            Shaped like the params.

        Examples
        --------
        >>> import numpy as np, npdownhill as dh
        >>> params = {"w": np.ones(2)}
        >>> opt = dh.SGD(None, params, learning_rate=0.5, average="polyak")
        >>> opt.apply({"w": np.ones(2)}); opt.apply({"w": np.ones(2)})
        >>> params["w"], opt.evaluation_params()["w"]     # after 0.5, then 0 (mean 0.25)
        (array([0., 0.]), array([0.25, 0.25]))
        """
        self._check_params(f"{type(self).__name__}.evaluation_params")
        return self.layout.unflatten(self.read_evaluation_params(self.layout.empty()))

    @contextmanager
    def use_evaluation_params(self):
        """Context manager: the evaluation params in the user's arrays, the trained ones back after.

        Inside the block the arrays hold :meth:`evaluation_params`, so any
        code that reads them (a loss, a plot, a prediction) sees what a run
        would validate; on leaving, even by an exception, the arrays get
        back the params being trained, so training can go on. Do not update
        inside the block.

        Yields
        ------
        tree
            The user's params (the same arrays).

        Examples
        --------
        >>> import numpy as np, npdownhill as dh
        >>> params = {"w": np.ones(2)}
        >>> opt = dh.SGD(None, params, learning_rate=0.5, average="polyak")
        >>> opt.apply({"w": np.ones(2)}); opt.apply({"w": np.ones(2)})
        >>> with opt.use_evaluation_params():
        ...     print(params["w"])
        [0.25 0.25]
        >>> params["w"]
        array([0., 0.])
        """
        self._check_params(f"{type(self).__name__}.use_evaluation_params")
        src = self._evaluation_flat()
        if src is None:
            yield self.params
            return
        saved = self.layout.read(self.layout.empty())
        self.layout.write(src)
        try:
            yield self.params
        finally:
            self.layout.write(saved)
