"""The engine: :class:`Optimizer`, its hyperparameters, state buffers and update verbs.

An optimizer owns flat buffers laid out like the user's param tree (see
:mod:`npdownhill.tree`): the gradient (which also takes the step), two
buffers per state variable of its algorithm, and scratch the size of a
chunk. Its verbs (:meth:`~Optimizer.step`, :meth:`~Optimizer.update`,
:meth:`~Optimizer.apply`, :meth:`~Optimizer.get_updates`) gather a gradient
and run the update, the gradient pipeline done chunk by chunk, whose
machinery is in :mod:`npdownhill.update` (noise, multipliers, clipping, the
rule, momentum, weight decay, per-leaf rates, then the step; a refused
update changes nothing). Subclasses declare their hyperparameters and state
buffers and implement :meth:`Optimizer._rule`.

Most rules evaluate what they train. Lookahead's slow weights, a parameter
average (:mod:`npdownhill.evaluation`) and the schedule-free rules' average
``x`` are *evaluation params* kept in named state buffers:
:meth:`Optimizer.evaluation_params` returns them and
:meth:`Optimizer.use_evaluation_params` swaps them into the user's arrays,
which is how the run layer validates, keeps and finally leaves them.

The engine knows nothing of datasets, epochs or checkpoints (torch.optim's
``Optimizer`` is the model). downhill's run verbs :meth:`~Optimizer.iterate`,
:meth:`~Optimizer.minimize` and :meth:`~Optimizer.evaluate` are thin entry
points into the run layer (:mod:`npdownhill.driver`), which plugs itself in
with :func:`install_run_layer` when the package is imported.
"""

import logging
import math

import numpy as np
from autograd import make_vjp
from autograd.extend import vspace

from . import evaluation as E
from . import hyper as H
from . import leafpatterns
from . import optimizer_state
from . import pipeline as P
from .diagnostics import check_arity, explain_trace_error
from .errors import NonFiniteError
from .monitors import check_loss_value, evaluate_monitors, parse_monitors
from .npzfile import load_npz, save_npz
from .options import RUN_OPTIONS
from .tree import Layout, raw_concatenate
from .update import _GATHERED, ChunkedUpdate

__all__ = ["Optimizer", "Buffer", "apply_updates", "install_run_layer"]

_RUN_LAYER = []     # the run layer's entry points, installed by npdownhill.driver

logger = logging.getLogger("npdownhill")


def _off(value):
    """Whether a hyperparameter that switches a stage on is off (0, None; a schedule is on)."""
    return not callable(value) and not value


#: Hyperparameters that act only together with another: ``{name: (inert(h), what it
#: needs)}``. Given explicitly while ``inert(h)`` holds, one is kept (it acts once the
#: other is set) and a WARNING says that it has no effect now.
_DEPENDENT = {
    "nesterov": (lambda h: h["nesterov"] and _off(h["momentum"]), "momentum > 0"),
    "gradient_noise_decay": (lambda h: h["gradient_noise_decay"] and _off(h["gradient_noise_scale"]),
                             "gradient_noise_scale > 0"),
    "lookahead_alpha": (lambda h: _off(h["lookahead"]), "lookahead=k > 0"),
    "average_decay": (lambda h: h["average"] != "ema", "average='ema'"),
    "average_start": (lambda h: h["average"] != "polyak", "average='polyak'"),
}


class Buffer:
    """A state buffer of its own shape, for :meth:`Optimizer._state_spec`.

    Parameters
    ----------
    shape : tuple of int
        Its shape (a flat buffer of the layout is ``(layout.size,)``).
    fill : float
        Its initial value.
    dtype : numpy dtype, optional
        Default: the layout's dtype.
    """

    def __init__(self, shape, fill=0.0, dtype=None):
        self.shape, self.fill, self.dtype = tuple(shape), fill, dtype

    def __repr__(self):
        return f"Buffer({self.shape}, fill={self.fill})"


def install_run_layer(layer):
    """Plug the run layer into the engine (called once by :mod:`npdownhill.driver`).

    Parameters
    ----------
    layer : object
        Provides ``iterate(opt, train, valid, **kwargs)``,
        ``minimize(opt, train, valid, **kwargs)``, ``evaluate(opt, data)``
        and ``history_arrays(records)``.
    """
    _RUN_LAYER[:] = [layer]


def _run_layer():
    if not _RUN_LAYER:
        raise RuntimeError("npdownhill's run layer is not loaded: import npdownhill")
    return _RUN_LAYER[0]


class Optimizer(ChunkedUpdate, E.EvaluationParams):
    r"""Base class of every algorithm: hyperparameters, state and the gradient pipeline.

    Parameters
    ----------
    loss : callable or None
        ``loss(params, *batch) -> float``, written with ``autograd.numpy``.
        ``None`` for loops that compute their own gradients and call
        :meth:`update`, :meth:`apply` or :meth:`get_updates`.
    params : ndarray, dict, list or tuple
        The param tree. Its arrays are updated in place: assign new values
        with ``params["w"][...] = x``; rebinding a leaf
        (``params["w"] = x``) is refused at the next call.
    monitors : dict or sequence of (str, callable), optional
        Extra values to report: ``fn(params, *batch) -> float``.
    monitor_gradients : bool, optional
        Report ``grad(<leaf>)``, the L2 norm of each leaf's raw gradient, and
        ``grad_norm``, the global L2 norm, with every training step.
    **kwargs
        Hyperparameters (see the class's ``hyperparameters`` table and
        :meth:`set_hyperparameters`). Run options such as ``patience`` go to
        :meth:`iterate` or :meth:`minimize`, not here.

    Attributes
    ----------
    hyper : dict
        The current hyperparameters by canonical name.
    explicit : set of str
        The hyperparameters the caller gave (to the constructor,
        :meth:`set_hyperparameters` or :meth:`iterate`). When a run resumes
        from a checkpoint these keep the given value; the others take the
        saved one.
    state : dict of ndarray
        The algorithm's state buffers (flat, in the params' layout), only
        those the current hyperparameters use. An update writes the new
        state into a second set of buffers and swaps them in, so each entry
        alternates between two arrays: look it up again after an update
        rather than keeping the array.
    run : Run or None
        The latest training run (:meth:`iterate` / :meth:`minimize`), with
        its history, best parameters and stop reason.

    Notes
    -----
    Hyperparameters shared by every algorithm:

    ``learning_rate`` (``lr``)
        Step size; a number ``>= 0`` or a schedule ``f(step) -> float``
        where ``step`` counts updates already applied (0 for the first).
    ``momentum`` (0), ``nesterov`` (False)
        Momentum wraps any algorithm's step ``u`` (what it would subtract):
        classical :math:`v \leftarrow \mu v - u;\ p \leftarrow p + v`,
        Nesterov :math:`v \leftarrow \mu v - u;\ p \leftarrow p + \mu v - u`
        (the Lasagne / torch form). ``momentum`` may be a schedule. The
        velocity exists only while momentum is on: turning it off discards
        it, turning it on again starts from zero.
    ``max_gradient_elem`` (0 = off)
        Clip each gradient element to ``[-c, c]``.
    ``max_gradient_norm`` (0 = off)
        Rescale each leaf's gradient to an L2 norm of at most this.
    ``clip_gradients`` (None)
        A number rescales the whole gradient tree to at most that global L2
        norm; a callable takes a gradient tree and returns one.
    ``gradient_noise_scale`` (0), ``gradient_noise_decay`` (0)
        Add :math:`N(0, \sigma_t^2)` noise to every gradient element,
        :math:`\sigma_t = s / (1 + t)^{d / 2}` with ``t`` the updates already
        applied (Neelakantan et al. 2015 use ``d = 0.55``).
    ``gradient_multipliers`` (None), ``frozen`` (())
        A dict from leaf name to a factor on that leaf's gradient; leaves
        named in ``frozen`` never move.
    ``weight_decay`` (0)
        Decoupled decay :math:`p \leftarrow p - \eta\, \lambda\, p` applied with
        each step (Loshchilov & Hutter 2019; AdamW's definition). A dict
        ``{leaf name or pattern: lambda}`` (``{"*.W": 1e-4}``) sets it per
        leaf, 0 for the leaves it does not match (see
        :mod:`npdownhill.leafpatterns` for the matching rules).
    ``accumulate`` (1)
        Gradient accumulation: each call of :meth:`step`, :meth:`apply` or
        :meth:`update` adds its (checked, raw) gradient to a pending sum, and
        every ``k``-th call makes one update from the mean
        :math:`\bar g = \frac1k \sum_{j=1}^{k} g_j` (the unweighted mean of the
        batch gradients, as torch loops get by dividing each batch's loss by
        ``k``); noise, multipliers, clipping and the rule act on
        :math:`\bar g`. The other calls change only the sum (``update``
        returns zero steps). Schedules, ``updates`` and ``max_updates``
        count updates. The sum and its count are part of the state dict;
        a change of ``accumulate`` keeps them (the next update averages
        what is pending). :meth:`get_updates`, ESGD and the quasi-Newton
        rules refuse it.
    ``learning_rate_multipliers`` (None)
        ``{leaf name or pattern: c}``: leaf :math:`\ell`'s whole step
        (the rule's, momentum and weight decay) is multiplied by
        :math:`c_\ell`, as a torch parameter group with learning rate
        :math:`c_\ell \eta` would move it. Unlike ``gradient_multipliers``,
        which scale-invariant rules (Adam, RMSProp) cancel out, this always
        scales the step. A schedule sets :math:`\eta`; the multiplier scales
        the step it gives.
    ``rng`` (None)
        Seed or ``numpy.random.Generator`` for gradient noise and for
        algorithms that draw random numbers.
    ``lookahead`` (0 = off), ``lookahead_alpha`` (0.5)
        Lookahead (Zhang et al. 2019): every ``lookahead`` updates the slow
        weights move ``lookahead_alpha`` of the way to the params and the
        params restart there. The slow weights are the evaluation params.
    ``average`` (None), ``average_decay`` (0.999), ``average_start`` (0)
        ``'ema'``: evaluate a bias-corrected exponential moving average of
        the params; ``'polyak'``: the mean of the params after the first
        ``average_start`` updates. See :mod:`npdownhill.evaluation`.

    The evaluation params (:meth:`evaluation_params`) are what a run
    validates, keeps as the best, checkpoints and leaves in the arrays at
    the end; they differ from the trained params with ``lookahead``,
    ``average`` and the schedule-free rules.
    """

    #: Registered lower-case name; subclasses set it.
    name = None
    #: One line for the algorithm tables: the rule's form and its peers.
    summary = ""
    #: ``{name: Hyper}`` declared by this class (merged along the hierarchy).
    hyperparameters = {
        "learning_rate": H.learning_rate(1e-2),
        "momentum": H.Hyper(0.0, H.unit_interval, "momentum factor mu in [0, 1) (or a schedule)",
                            schedulable=True),
        "nesterov": H.Hyper(False, H.boolean, "use Nesterov's form of momentum"),
        "max_gradient_elem": H.Hyper(0.0, H.nonnegative, "clip gradient elements to [-c, c]; 0 = off"),
        "max_gradient_norm": H.Hyper(0.0, H.nonnegative, "rescale each leaf's gradient to norm <= c; 0 = off"),
        "clip_gradients": H.Hyper(None, H.clip_spec, "global-norm clip (a number) or a callable on the gradient tree"),
        "gradient_noise_scale": H.Hyper(0.0, H.nonnegative, "std of Gaussian gradient noise; 0 = off"),
        "gradient_noise_decay": H.Hyper(0.0, H.nonnegative, "noise std decays as (1 + t)^(-decay / 2)"),
        "gradient_multipliers": H.Hyper(None, H.leaf_factors, "{leaf name: factor} on the gradient"),
        "frozen": H.Hyper((), H.leaf_names, "leaf names that never move"),
        "weight_decay": H.Hyper(0.0, H.decay_spec, "decoupled weight decay factor, or "
                                "{leaf name or pattern: factor} (others 0)"),
        "learning_rate_multipliers": H.Hyper(None, H.leaf_pattern_factors,
                                             "{leaf name or pattern: factor} on the step"),
        "accumulate": H.Hyper(1, H.count, "average this many batches' gradients into one update"),
        "rng": H.Hyper(None, H.rng_or_seed, "seed or Generator for noise and random algorithms"),
        **E.HYPERS,
    }
    #: ``{alias: (name, name, ...)}``: one keyword that sets several
    #: hyperparameters from a sequence, e.g. torch's ``betas=(b1, b2)``.
    compound_aliases = {}
    #: Names of this algorithm's flat state buffers (see :meth:`_state_spec`).
    state_names = ()
    #: True for algorithms that evaluate the loss themselves (ESGD).
    needs_loss = False
    #: True for algorithms that need the same (whole) batch at every step (quasi-Newton).
    full_batch = False
    #: Why the algorithm stopped itself, e.g. ``'gtol'``; the first-order rules never do.
    converged = ""
    #: Bytes of each buffer an update works on at a time (a chunk): small enough for the
    #: chunk's intermediates to stay in the CPU cache, large enough for NumPy's per-call
    #: cost not to count. Trees smaller than a chunk are updated in one piece.
    chunk_bytes = 1 << 18
    #: True when the rule guarantees that a non-finite gradient element makes the same
    #: element of its step non-finite; then the step's finiteness check also vouches for
    #: the gradient's, and the gradient is looked at only when a step is refused.
    nonfinite_spreads = False
    #: True when the rule needs the whole processed gradient before the chunk loop (for
    #: sums over the tree, as Prodigy's): it is then in the gradient buffer when
    #: :meth:`_rule` is called, after noise, multipliers and clipping.
    whole_gradient = False
    #: True for rules that keep their own evaluation params (the schedule-free rules'
    #: average x): they take neither ``lookahead`` nor ``average``.
    own_evaluation_params = False
    #: True for rules that apply ``weight_decay`` inside their kernel (at the point where
    #: the gradient was taken); the engine's decoupled decay stage then stays off.
    own_weight_decay = False
    #: State buffers that hold values of the params themselves (a start point, an
    #: average): a warm start (``load_state_dict(strict=False)``) into an optimizer that
    #: has made updates would leave them describing the old params, so it is refused.
    param_copies = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        merged, compound = {}, {}
        for klass in reversed(cls.__mro__):
            merged.update(getattr(klass, "hyperparameters", None) or {})
            compound.update(getattr(klass, "compound_aliases", None) or {})
        cls._hypers = merged
        cls._aliases = {alias: (name, convert) for name, spec in merged.items()
                        for alias, convert in spec.aliases.items()}
        cls._compound = compound

    # -- construction -----------------------------------------------------
    def __init__(self, loss, params, monitors=(), monitor_gradients=False, **kwargs):
        call = type(self).__name__
        if loss is not None and not callable(loss):
            raise TypeError(f"{call}(loss=...): loss must be a callable loss(params, *batch) or None; "
                            f"got {type(loss).__name__}")
        if self.needs_loss and loss is None:
            raise TypeError(f"{call}(loss=None): {call} evaluates the loss itself "
                            "(Hessian-vector products), so it needs a loss function")
        if not isinstance(monitor_gradients, (bool, np.bool_)):
            raise TypeError(f"{call}(monitor_gradients={monitor_gradients!r}): must be True or False")
        self.loss = loss
        self.params = params
        self.layout = Layout(params, f"{call}(params)")
        self.monitors = parse_monitors(monitors, call)
        self.monitor_gradients = bool(monitor_gradients)
        self.hyper = {name: spec.default for name, spec in self._hypers.items()}
        self.explicit = set()
        self.run = None
        self.state = {}
        self._g = self.layout.zeros()   # the gradient buffer; scratch for the step
        self._g_views = self.layout.views(self._g)
        self._holds_g = self.layout.identity_check(self._g_views)
        self._g_handed_out = False      # gradient_buffer() was called (see _unaliased)
        self._updates = np.zeros((), np.int64)   # updates applied (an array: see get_updates)
        self._rng = np.random.default_rng()
        self._mult = None
        self._mask = None
        self._leaf_decay = None         # per-element weight decay when weight_decay is a dict
        self._accum = None         # accumulate > 1: the sum of the pending batch gradients
        self._accum_count = 0      # how many gradients it holds
        self._batch = ()
        self._plan = None          # what an update does; made afresh when the setup changes
        self._pairs = {}           # {name: (buffer, buffer)}: each state buffer and its spare
        self._parity = 0           # state[name] is _pairs[name][_parity]
        self._scratch = {}         # chunk-sized scratch buffers, by name
        self._traced = None        # ESGD: a traced gradient for Hessian-vector products
        self._arity_checked = set()  # batch lengths the loss and monitors were checked for
        self._calls = {verb: (f"{call}.{verb}", f"{call}.{verb}(grads)")
                       for verb in ("update", "apply", "get_updates")}
        self._calls["step"] = (f"{call}.step", f"{call}.step: gradient")
        self._vjp_of = (None, None)   # (loss, make_vjp(loss)), made once per loss
        self.last_learning_rate = None
        self._wrapped = False      # lookahead or averaging is on (see npdownhill.evaluation)
        self._commit_hyper(call, self.check_hyperparameters(call, kwargs), initial=True)

    def __repr__(self):
        changed = {k: v for k, v in self.hyper.items() if v is not self._hypers[k].default
                   and not (isinstance(v, float) and v == self._hypers[k].default)}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"

    # -- hyperparameters --------------------------------------------------
    def set_hyperparameters(self, _call=None, **kwargs):
        """Validate and set hyperparameters.

        A change takes effect from the next update. Where a change concerns
        state the algorithm has already built, it is applied to that state:
        turning momentum off discards the velocity and turning it on again
        starts from zero; each algorithm's docstring says what else it does
        (RProp rescales its step sizes, ADAGRAD shifts its accumulator).

        Parameters
        ----------
        **kwargs
            Hyperparameters by canonical name or alias.

        Raises
        ------
        TypeError
            An unknown keyword (the message suggests the closest known one,
            or says where a run option such as ``patience`` belongs), a value
            of the wrong type, or one hyperparameter given twice under two
            spellings.
        ValueError
            A value out of range. Nothing is changed when anything is refused.
        """
        call = _call or f"{type(self).__name__}.set_hyperparameters"
        self._commit_hyper(call, self.check_hyperparameters(call, kwargs))

    def check_hyperparameters(self, call, kwargs):
        """Resolve aliases and validate hyperparameters, changing nothing.

        Parameters
        ----------
        call : str
            The call that received them, for messages.
        kwargs : dict
            Keywords by canonical name or alias.

        Returns
        -------
        dict
            ``{canonical name: checked value}``.

        Raises
        ------
        TypeError, ValueError
            As :meth:`set_hyperparameters`.
        """
        hyper, spelled = {}, {}
        for key, value in kwargs.items():
            if key in self._compound:
                names = self._compound[key]
                if (isinstance(value, (str, bytes)) or not hasattr(value, "__len__")
                        or len(value) != len(names)):
                    raise TypeError(f"{call}({key}={value!r}): {key} must be a sequence of "
                                    f"{len(names)} numbers ({', '.join(names)})")
                pairs = [(name, key, self._hypers[name].validate(call, name, v))
                         for name, v in zip(names, value)]
            elif key in self._hypers:
                pairs = [(key, key, self._hypers[key].validate(call, key, value))]
            elif key in self._aliases:
                name, convert = self._aliases[key]
                pairs = [(name, key, self._hypers[name].validate(call, name, convert(call, key, value)))]
            elif key in RUN_OPTIONS:
                raise TypeError(f"{call}: {key!r} is an option of the training run, not a "
                                "hyperparameter of the optimizer: pass it to iterate() or "
                                "minimize()")
            else:
                known = (list(self._hypers) + list(self._aliases) + list(self._compound)
                         + list(RUN_OPTIONS))
                raise TypeError(f"{call}: unknown keyword argument {key!r}{H.suggest(key, known)}")
            for name, spelling, checked in pairs:
                if name in spelled:
                    raise TypeError(f"{call}: {name} given twice, as {spelled[name]!r} and "
                                    f"{spelling!r}")
                spelled[name] = spelling
                hyper[name] = checked
        return hyper

    def _commit_hyper(self, call, hyper, initial=False, adjust_state=True, explicit=True):
        """Set checked hyperparameters, then bring the state in line with them.

        ``adjust_state=False`` (when a state dict brings its own buffers)
        skips the algorithm's :meth:`_hyper_changed` adjustments.
        """
        merged = dict(self.hyper, **hyper)
        self._check_hyper(call, merged)
        mult, mask = P.multipliers(self.layout, merged["gradient_multipliers"] or {},
                                   merged["frozen"], call)
        # per-leaf rates (folded into the step mask) and weight decay (by name or pattern)
        mask = leafpatterns.rate_mask(self.layout, merged["learning_rate_multipliers"], mask, call)
        decay = leafpatterns.decay_vector(self.layout, merged["weight_decay"], call)
        old = self.hyper
        if "rng" in hyper:
            self._rng = np.random.default_rng(hyper["rng"])
        self.hyper = merged
        self._wrapped = E.active(merged)
        self._mult, self._mask, self._leaf_decay = mult, mask, decay
        if explicit:
            self.explicit.update(hyper)
            for name in hyper:
                inert, needs = _DEPENDENT.get(name, (None, None))
                if inert is not None and name in merged and inert(merged):
                    logger.warning("%s(%s=%r): has no effect unless %s; it is kept for when "
                                   "that is set", call, name, hyper[name], needs)
        self._sync_state()
        if not initial and adjust_state:
            changed = [k for k in hyper if not _same_value(old[k], merged[k])]
            if changed:
                self._hyper_changed(old, changed)

    @property
    def hyper(self):
        """The current hyperparameters by canonical name (a dict)."""
        return self._hyper

    @hyper.setter
    def hyper(self, value):
        self._hyper = value
        self._plan = None           # what an update does depends on them

    def _check_hyper(self, call, hyper):
        """Cross-checks between hyperparameters; subclasses extend it."""
        if hyper["accumulate"] > 1 and self.needs_loss:
            raise ValueError(f"{call}(accumulate={hyper['accumulate']}): {type(self).__name__} "
                             "evaluates the loss on each batch itself, so it cannot average "
                             "several batches' gradients into one update")
        E.check(self, call, hyper)

    def _hyper_changed(self, old, changed):
        """Adjust existing state after the hyperparameters ``changed`` (names) changed.

        ``old`` holds the previous values. Subclasses whose state depends on a
        hyperparameter beyond each update (RProp's step sizes, ADAGRAD's
        accumulator) override it; buffers that appear or disappear with a
        hyperparameter are handled by :meth:`_state_spec`.
        """

    def _scheduled(self, name, t):
        """The value of a (possibly scheduled) hyperparameter at step ``t``."""
        value = self.hyper[name]
        if not callable(value):
            return value
        got = value(t)
        return self._hypers[name].check(f"{type(self).__name__} {name} schedule at step {t}",
                                        name, got)

    # -- state ------------------------------------------------------------
    def _state_spec(self, hyper):
        """``{name: initial value}`` of the buffers that the hyperparameters ``hyper`` use.

        A number means a flat buffer of the layout filled with it; a
        :class:`Buffer` one of another shape; an array is copied (for scalar
        state). Subclasses extend it.
        """
        spec = {name: 0.0 for name in self.state_names}
        mu = hyper["momentum"]
        if callable(mu) or mu > 0:
            spec["velocity"] = 0.0
        spec.update(E.state_spec(hyper))      # lookahead's slow weights, the average
        return spec

    def _sync_state(self):
        """Allocate the buffers the hyperparameters now use (afresh when their shape
        changed); drop those they do not."""
        spec = self._state_spec(self.hyper)
        for name in [n for n in self.state if n not in spec]:
            del self.state[name]
        for name, init in spec.items():
            if name not in self.state or self.state[name].shape != self.buffer_shape(init):
                self.state[name] = self._new_buffer(init)
                if name in E.BUFFERS:         # the slow weights and the average start here
                    self.layout.read(self.state[name])
        self._pairs = {name: pair for name, pair in self._pairs.items()
                       if self.state.get(name) is pair[self._parity]}
        self._plan = None

    def buffer_shape(self, init):
        """The shape of the buffer a :meth:`_state_spec` entry describes."""
        if isinstance(init, (np.ndarray, Buffer)):
            return init.shape
        return (self.layout.size,)

    def _new_buffer(self, init):
        if isinstance(init, np.ndarray):
            return init.copy()
        if isinstance(init, Buffer):
            return np.full(init.shape, init.fill, dtype=init.dtype or self.layout.dtype)
        buf = self.layout.empty()
        buf.fill(init)
        return buf

    def _buffers(self):
        """Every array the optimizer holds for its updates, each once: the state and its
        spare buffers, the gradient buffer, the multipliers and mask, scratch."""
        held = [self._g, *self.state.values(), *self._scratch.values(), self._mult, self._mask,
                self._leaf_decay, self._accum]
        for pair in self._pairs.values():
            held.extend(pair)
        unique = {}
        for array in held:
            if array is not None:
                base = array if array.base is None else array.base
                unique[id(base)] = base
        return list(unique.values())

    @property
    def updates(self):
        """Number of updates applied so far (int)."""
        return int(self._updates)

    # -- gradients --------------------------------------------------------
    def _check_params(self, call):
        """Refuse to go on when a leaf of ``params`` was rebound to another array."""
        self.layout.check_bound(self.params, call)

    def _gather_grads(self, grads, where):
        """Copy a gradient tree into the flat gradient buffer, refusing non-finite values."""
        if self._g_handed_out and not self._holds_g(grads):
            grads = self._unaliased(grads, where)
        g = self.layout.gather(grads, self._g, where, self._g_views)
        self._check_gradient()
        return g

    def check_batch(self, n_arrays, call, data=None):
        """Check that the loss and the monitors can take ``params`` plus ``n_arrays`` arrays.

        Called before the first step with each batch length (and by the run
        for each dataset), so a loss whose signature does not fit the data
        is reported up front, not as Python's own ``TypeError`` from inside it.

        Parameters
        ----------
        n_arrays : int
            Arrays per batch.
        call : str
            The call, for messages.
        data : str, optional
            Which data gives the batch (``'train'``, ``'valid'``).

        Raises
        ------
        TypeError
            A function that cannot be called as ``fn(params, *batch)``; the
            message says how many arguments it takes and what it is given.
        """
        if self.loss is not None:
            check_arity(self.loss, n_arrays, call, "the loss", data)
        for name, fn in self.monitors:
            check_arity(fn, n_arrays, call, f"monitor {name!r}", data)

    def _loss_and_grads(self, batch, call, params=None):
        """Loss value (a float, maybe not finite) and gradient tree at ``params``
        (default: the current params), from one forward and one backward pass."""
        params = self.params if params is None else params
        loss, point = self.loss, params
        if not self.layout.plain:
            # autograd cannot trace other containers (namedtuples): differentiate with
            # respect to the list of leaves and rebuild the user's tree inside the loss
            layout = self.layout
            loss = self.differentiable_loss()
            point = layout.match(params, call)
        cached, trace = self._vjp_of
        if cached is not loss:
            trace = make_vjp(loss)
            self._vjp_of = (loss, trace)
        try:
            vjp, value = trace(point, *batch)
        except Exception as err:
            explained = explain_trace_error(err, self.loss, (params, *batch))
            if explained is None:
                raise
            raise explained from err
        value = check_loss_value(call, value)
        grads = vjp(vspace(value).ones())
        return float(value), grads if self.layout.plain else layout.tree_of(grads)

    def differentiable_loss(self):
        """The loss as autograd can differentiate it: itself for trees of dicts, lists and
        tuples; for other containers (namedtuples), a function of the list of leaves.

        Returns
        -------
        callable
            ``f(point, *batch)`` where ``point`` is the params tree, or its leaves
            as a list when the tree has other containers.
        """
        if self.layout.plain:
            return self.loss
        layout, user_loss = self.layout, self.loss
        return lambda leaves, *batch: user_loss(layout.tree_of(leaves), *batch)

    def _value_and_grad(self, batch, call):
        """Loss value and gradient tree at the current params; a non-finite loss is refused."""
        loss, grads = self._loss_and_grads(batch, call)
        if not math.isfinite(loss):
            self._value_and_grad_refused(loss)
        return loss, grads

    def _value_and_grad_refused(self, loss):
        raise NonFiniteError(f"{type(self).__name__}: the loss is {loss} at update "
                             f"{self.updates + 1}; nothing was applied", "loss", (), self.updates)

    def _needs_loss(self, method):
        if self.needs_loss and self.loss is None:
            raise TypeError(f"{type(self).__name__}.{method}: this algorithm needs the loss")

    # -- public update API ------------------------------------------------
    def step(self, *batch):
        """Take one gradient step on one batch.

        Parameters
        ----------
        *batch : arrays
            Passed to the loss as ``loss(params, *batch)``.

        Returns
        -------
        dict
            This batch's monitors, evaluated before the update: ``'loss'``
            first, then the user's monitors, ``grad(<leaf>)`` and
            ``grad_norm`` with ``monitor_gradients``, and ``learning_rate``.

        Raises
        ------
        TypeError
            The optimizer has no loss, or the loss cannot take ``params``
            plus this many arrays.
        ValueError
            A leaf of ``params`` was rebound to another array.
        NonFiniteError
            The loss, gradient or step is not finite (nothing is applied).
        """
        call, where = self._calls["step"]
        if self.loss is None:
            raise TypeError(f"{call}: this optimizer was built with loss=None; "
                            "use update/apply/get_updates with your own gradients")
        self._check_params(call)
        if len(batch) not in self._arity_checked:
            self.check_batch(len(batch), call)
            self._arity_checked.add(len(batch))
        try:
            loss, grads = self._loss_and_grads(batch, call)
            if not math.isfinite(loss):
                self._value_and_grad_refused(loss)
            monitors = {"loss": loss}
            if self.monitors:
                monitors.update(evaluate_monitors(self.monitors, self.params, batch))
            if self.monitor_gradients:
                monitors.update(self._gradient_norms(self._gather_grads(grads, where)))
                grads = _GATHERED
            elif self._plan is not None and (self._plan.one or self._plan.prepass):
                # autograd's gradient has the params' structure and shapes: gathered
                # without the checks a caller's tree needs (its finiteness is checked
                # in the update, or here when the update draws numbers first)
                try:
                    raw_concatenate(self.layout._flat(grads), 0, self._g)
                except Exception:      # anything unusual: the checked gather explains it
                    pass
                else:
                    if self._plan.prepass:
                        self._check_gradient()
                    grads = _GATHERED
            if self._accumulating():
                if not self._accumulate(grads, where):
                    monitors["learning_rate"] = self._pending_learning_rate()
                    return monitors
                grads = _GATHERED
            self._batch = batch
            flat, lr, plan, new = self._advance(grads, where, True)
        finally:
            self._traced = None
        self._conclude(plan, lr, flat, new)
        monitors["learning_rate"] = lr
        return monitors

    def update(self, grads, *batch):
        """Advance the state and return the steps to add, without touching the params.

        Parameters
        ----------
        grads : tree
            Gradients, a tree shaped like the params.
        *batch : arrays
            Only for algorithms that evaluate the loss themselves (ESGD).

        Returns
        -------
        tree
            The steps, shaped like the params: ``p + step`` is the new value.
            Freshly allocated each call. With ``lookahead`` or ``average``
            the slow weights or the average advance as if the caller adds
            the steps (at a lookahead sync the step takes the params to the
            slow weights, up to rounding).
        """
        call, where = self._calls["update"]
        self._needs_loss("update")
        self._check_params(call)
        if self._accumulating():
            if not self._accumulate(grads, where):
                return self.layout.unflatten(self.layout.zeros())
            grads = _GATHERED
        self._batch = batch
        step, lr, plan, _ = self._advance(grads, where)
        out = step.copy()
        self._commit(plan, lr)
        if self._wrapped:      # the step to where lookahead / the average put the params
            old = self.layout.read(self.layout.empty())
            new = old + out
            E.after_update(self._hyper, self.updates, old, new, self.state, out)
            np.subtract(new, old, out)
        return self.layout.unflatten(out)

    def apply(self, grads, *batch):
        """Advance the state and add the steps to the params in place.

        The fast path for loops that compute their own gradients: no
        allocation; the pipeline runs chunk by chunk, a fixed number of
        operations per chunk.

        Parameters
        ----------
        grads : tree
            Gradients, a tree shaped like the params.
        *batch : arrays
            Only for algorithms that evaluate the loss themselves (ESGD).

        Returns
        -------
        None
        """
        call, where = self._calls["apply"]
        if self.needs_loss and self.loss is None:
            self._needs_loss("apply")
        self._check_params(call)
        if self._accumulating():
            if not self._accumulate(grads, where):
                return
            grads = _GATHERED
        self._batch = batch
        flat, lr, plan, new = self._advance(grads, where, True)
        self._conclude(plan, lr, flat, new)

    def _take_step(self, g, batch):
        """Run the pipeline on the flat, checked gradient ``g``; add the step to the params."""
        if g is not self._g:
            np.copyto(self._g, g)
        if self._accumulating() and not self._accumulate(_GATHERED, "gradient"):
            return
        self._batch = batch
        try:
            flat, lr, plan, new = self._advance(_GATHERED, "gradient", True)
        finally:
            self._traced = None
        self._conclude(plan, lr, flat, new)

    def gradient_buffer(self):
        """A tree of views into the optimizer's own flat gradient buffer.

        For loops that compute their own gradients: write them into these
        arrays in place (``buf["w"][...] = ...``) and pass the same tree to
        :meth:`apply`, :meth:`update` or :meth:`get_updates`; the gradients
        are then used where they are, with no copy (torch's ``.grad`` works
        the same way). The buffer is overwritten by every update: the
        pipeline adds noise, multiplies and clips in place and then uses it
        as scratch (afterwards it holds neither the gradient nor the step),
        and :meth:`step` gathers autograd's gradients into it. A tree that
        puts these views at other leaves than their own is copied first, so
        that every gradient is read before the buffer is written.

        Returns
        -------
        tree
            Shaped like the params, leaves of the layout's dtype.

        Examples
        --------
        >>> import numpy as np, npdownhill as dh
        >>> params = dh.pack({"w": np.ones(3), "b": np.zeros(())})
        >>> opt = dh.SGD(None, params, learning_rate=0.5)
        >>> grads = opt.gradient_buffer()
        >>> grads["w"][...] = 2 * params["w"]; grads["b"][...] = 1.0
        >>> opt.apply(grads)
        >>> params["w"]
        array([0., 0., 0.])
        """
        self._g_handed_out = True
        return self.layout.tree_of(self._g_views)

    def get_updates(self, grads, *batch):
        """The Theano/Lasagne update list for one step, mutating no array.

        Parameters
        ----------
        grads : tree
            Gradients, a tree shaped like the params.
        *batch : arrays
            Only for algorithms that evaluate the loss themselves (ESGD).

        Returns
        -------
        list of (ndarray, ndarray)
            ``(array, new_value)`` pairs: every leaf of the user's params, every
            state buffer, and the update counter. Pass them to
            :func:`apply_updates` to perform the step. Only the optimizer's
            random generator advances (for gradient noise or ESGD).
        """
        call, where = self._calls["get_updates"]
        if self._accumulating():
            raise ValueError(f"{call}: gradient accumulation (accumulate="
                             f"{self._hyper['accumulate']}, {self._accum_count} gradients "
                             "pending) keeps a running sum that an update list cannot carry; "
                             "use apply() or update()")
        self._needs_loss("get_updates")
        self._check_params(call)
        self._batch = batch
        step, _, plan, _ = self._advance(grads, where)   # nothing committed
        new_state = plan.states[self._parity ^ 1]
        if self._wrapped:      # lookahead / the average, on copies
            old = self.layout.read(self.layout.empty())
            new = old + step
            new_state = dict(new_state, **{name: self.state[name].copy() for name in E.BUFFERS
                                           if name in self.state})
            E.after_update(self._hyper, self.updates + 1, old, new, new_state, np.empty_like(new))
            pairs = [(leaf, view.copy()) for leaf, view in zip(self.layout.arrays,
                                                               self.layout.views(new))]
        else:
            pairs = [(leaf, leaf + view.astype(leaf.dtype, copy=False))
                     for leaf, view in zip(self.layout.arrays, self.layout.views(step))]
        pairs += [(self.state[name], new_state[name].copy()) for name in new_state]
        counter = self._updates.copy()
        counter += 1
        pairs.append((self._updates, counter))
        return pairs

    # -- monitors ---------------------------------------------------------
    def score(self, *batch):
        """The loss and the monitors on one batch at the current params; no update.

        The current params are the arrays as they are: the trained params
        (wrap the call in :meth:`use_evaluation_params` to score the
        evaluation params, as :meth:`evaluate` and a run's validation do).

        Parameters
        ----------
        *batch : arrays
            Passed as ``loss(params, *batch)``.

        Returns
        -------
        dict
            ``'loss'`` first, then each monitor, as floats.
        """
        call = f"{type(self).__name__}.score"
        if self.loss is None:
            raise TypeError(f"{call}: this optimizer was built with loss=None; there is "
                            "nothing to evaluate")
        self._check_params(call)
        row = {"loss": float(check_loss_value(call, self.loss(self.params, *batch)))}
        row.update(evaluate_monitors(self.monitors, self.params, batch))
        return row

    def _gradient_norms(self, g):
        tmp = self._chunk_buffer("x", min(self.layout.size, self._chunk_elements()))
        sums = P.leaf_square_sums(g, self.layout, tmp)
        out = {f"grad({name})": float(math.sqrt(s)) for name, s in zip(self.layout.names, sums)}
        out["grad_norm"] = float(math.sqrt(sums.sum()))
        return out

    # -- parameters -------------------------------------------------------
    def set_params(self, targets="best"):
        """Write the best (or given) parameters into the user's arrays.

        Parameters
        ----------
        targets : 'best' or tree
            ``'best'``: the parameters of the best validation of the latest
            run. A tree shaped like the params: those values.

        Raises
        ------
        ValueError
            ``'best'`` before any validation, another string, a tree of
            another structure, or a leaf of ``params`` rebound to another array.
        """
        call = f"{type(self).__name__}.set_params"
        self._check_params(call)
        if isinstance(targets, str):
            if targets != "best":
                raise ValueError(f"{call}(targets={targets!r}): targets must be 'best' or a tree")
            if self.run is None or self.run.best is None:
                raise ValueError(f"{call}('best'): no best parameters yet (nothing validated)")
            self.layout.write(self.run.best)
            return
        flat = self.layout.gather(targets, self.layout.empty(), f"{call}(targets)")
        self.layout.write(flat)

    @property
    def best_params(self):
        """A tree (fresh copies) of the latest run's best parameters, or ``None``."""
        if self.run is None or self.run.best is None:
            return None
        return self.layout.unflatten(self.run.best.copy())

    @property
    def best_loss(self):
        """The latest run's best validation loss (``inf`` before any)."""
        return math.inf if self.run is None else self.run.state.best_loss

    @property
    def history(self):
        """The latest run's per-epoch records (a list of dicts; epoch 0 is the start)."""
        return [] if self.run is None else self.run.history

    def history_arrays(self):
        """The latest run's history as NumPy arrays, ready to plot.

        Returns
        -------
        dict of ndarray
            ``epoch`` (from 0, the start), ``updates``, ``time`` (seconds
            since the run started), ``validated`` (bool), then
            ``train.<monitor>`` and ``valid.<monitor>`` for each monitor; NaN
            where an epoch lacks a value (no training at epoch 0, no
            validation in most epochs).
        """
        return _run_layer().history_arrays(self.history)

    # -- downhill's run verbs (thin entry points into npdownhill.driver) ----
    def iterate(self, train=None, valid=None, max_updates=None, **kwargs):
        """Train epoch by epoch, yielding ``(train_monitors, valid_monitors)``.

        See :func:`npdownhill.driver.iterate` for every option.
        """
        return _run_layer().iterate(self, train, valid, max_updates=max_updates, **kwargs)

    def minimize(self, train=None, valid=None, **kwargs):
        """Run :meth:`iterate` to the end and return its result.

        Returns
        -------
        RunResult
            Unpacks as ``(train_monitors, valid_monitors)`` (downhill's
            contract) and carries the best validation, the history, the stop
            reason and the counts; see :class:`npdownhill.RunResult`.
        """
        return _run_layer().minimize(self, train, valid, **kwargs)

    def evaluate(self, dataset):
        """Batch-size-weighted means of the loss and monitors over a dataset.

        Parameters
        ----------
        dataset : Dataset, arrays or callable
            A :class:`~npdownhill.Dataset`, or anything it accepts (then
            batched by 32, in order). With ``None`` the loss takes only the params.

        Returns
        -------
        dict
            ``'loss'`` first, then the monitors. No update is made.
        """
        return _run_layer().evaluate(self, dataset)

    # -- state dicts ------------------------------------------------------
    def state_dict(self):
        """The engine's state: a plain dict of arrays, numbers and strings.

        Returns
        -------
        dict
            Algorithm name, the tree's layout, hyperparameters (schedules by
            description and state), update count, state buffers, the current
            parameters and the random generator's state. A run's own state
            (epochs, best parameters, history) is saved by its checkpoint.
        """
        return optimizer_state.encode(self)

    def load_state_dict(self, state, strict=True):
        """Restore a :meth:`state_dict`, including the user's parameter arrays.

        Parameters
        ----------
        state : dict
            A :meth:`state_dict` (or a run checkpoint's contents).
        strict : bool, default True
            ``True``: restore everything (parameters, state buffers, update
            count, hyperparameters, generator); the state must come from the
            same algorithm and the same tree. ``False``, for a warm start
            after the model changed: load the saved values of the leaves
            whose name and shape match, and nothing else -- the optimizer's
            own state, update count, hyperparameters and generator stay as
            they are (so training continues as a fresh optimization from the
            loaded values, as with torch's ``model.load_state_dict(...,
            strict=False)`` followed by a new optimizer). Any algorithm's
            state may be read; values of another float dtype are cast.

        Returns
        -------
        LoadResult
            ``(loaded, missing, unexpected, mismatched)``: lists of leaf
            names (with ``strict=True``, every leaf is loaded).

        Raises
        ------
        ValueError
            ``strict=True``: the dict is from another algorithm, or its tree
            has other leaf names, shapes or dtype (the message says what
            differs). Either way: not an npdownhill state, a damaged one, or
            a leaf of ``params`` rebound. Nothing is changed then.
        TypeError
            ``strict`` is not a bool, or ``state`` not a dict.

        Examples
        --------
        >>> import numpy as np, npdownhill as dh
        >>> old = dh.SGD(None, {"w": np.ones(3), "b": np.ones(())})
        >>> new = dh.Adam(None, {"w": np.zeros(3), "v": np.zeros(2)})
        >>> new.load_state_dict(old.state_dict(), strict=False)
        LoadResult(loaded=['w'], missing=['v'], unexpected=['b'], mismatched=[])
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"{where}(strict={strict!r}): strict must be True or False; "
                            f"got {type(strict).__name__}")
        self._check_params(where)
        if not strict:
            return optimizer_state.load_leaves(self, state, f"{where}(strict=False)")
        optimizer_state.apply(self, optimizer_state.decode(self, state, where), where)
        return optimizer_state.LoadResult(list(self.layout.names), [], [], [])

    def save_state(self, path):
        """Write :meth:`state_dict` to ``path`` as one ``.npz`` file, atomically."""
        save_npz(path, self.state_dict())

    def load_state(self, path, strict=True):
        """Read a file written by :meth:`save_state` (no pickle) and restore it.

        A run checkpoint can be read too: its optimizer part is restored.
        ``strict`` and the returned :class:`~npdownhill.optimizer_state.LoadResult`
        are those of :meth:`load_state_dict`.

        Raises
        ------
        ValueError
            The file is truncated, holds pickled objects, is not an
            npdownhill state, or does not fit this optimizer. Nothing changes.
        """
        return self.load_state_dict(load_npz(path), strict)


def _same_value(a, b):
    """Whether two hyperparameter values are the same (numbers by value, else identity)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:       # e.g. arrays or objects without a plain ==
        return False


def apply_updates(pairs):
    """Write ``(array, new_value)`` pairs, as returned by :meth:`Optimizer.get_updates`.

    All pairs are checked before anything is written.

    Parameters
    ----------
    pairs : iterable of (ndarray, array_like)

    Raises
    ------
    TypeError
        A target that is not a writeable ndarray or a pair that is not a pair.
    ValueError
        A new value whose shape differs from its target's.
    """
    pairs = list(pairs)
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"apply_updates: item {i} must be an (array, new_value) pair")
        target, value = pair
        if not isinstance(target, np.ndarray):
            raise TypeError(f"apply_updates: item {i}: target must be an ndarray; "
                            f"got {type(target).__name__}")
        if np.shape(value) != target.shape:
            raise ValueError(f"apply_updates: item {i}: new value has shape {np.shape(value)}; "
                             f"target has shape {target.shape}")
    for target, value in pairs:
        np.copyto(target, value, casting="same_kind")
