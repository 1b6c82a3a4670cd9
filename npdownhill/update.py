r"""The update of an optimizer: the gradient pipeline run chunk by chunk.

:class:`ChunkedUpdate` is the part of :class:`~npdownhill.Optimizer` that
turns a flat gradient into a step and new state. Each update runs this
pipeline on the flat gradient ``g`` (DESIGN.md section 3)::

    raw gradient            from autograd (``step``) or from the caller
    -> noise                g += N(0, sigma_t^2),  sigma_t = scale / (1 + t)^(decay / 2)
    -> multipliers          g *= m_leaf  (0 for frozen leaves)
    -> clipping             elementwise, per-leaf norm, then global norm / callable
    -> the rule             u = rule(g)             "the amount it would subtract"
    -> momentum             v = mu v - u;  step = v            (classical)
                                           step = mu v - u     (Nesterov)
    -> weight decay         step -= lr * weight_decay * p      (decoupled; per leaf if a dict)
    -> per-leaf rates       step *= c_leaf  (learning_rate_multipliers; 0 for frozen leaves)
    -> step                 p += step

The update runs chunk by chunk (``chunk_bytes`` of each buffer at a time,
along leaves), every stage a fixed number of NumPy operations with ``out=``
on the chunk, so that its intermediates stay in the CPU cache and no update
allocates a full-size temporary; a tree smaller than a chunk is one chunk,
whatever its number of leaves (:meth:`ChunkedUpdate._advance_one`). What
needs the whole gradient first (noise draws, norms, a clipping callable, a
Hessian-vector product, a rule's sums over the tree) runs before the chunk
loop (:meth:`ChunkedUpdate._prepare`). The new state goes into the second
buffer of each state variable and is swapped in only when every chunk's step
is finite (:meth:`ChunkedUpdate._commit`), and the step is added to the
params only then; except with weight decay, which reads each chunk's params
anyway: there ``apply`` and ``step`` move the params chunk by chunk, keep
each chunk's old params in its part of the gradient buffer (free by then)
and put them back if a later chunk is refused or the loop is interrupted
(not when a gradient is another leaf's params, which would be read moved).
Either way a refused update changes nothing, without copying the state. With
``accumulate=k`` the gradients of ``k`` calls are averaged into one update
first.

What is done once per change of hyperparameters or buffers (the chunks,
the stages in use, the views of every buffer) is kept in a :class:`_Plan`.
"""

import math

import numpy as np

from . import evaluation as E
from . import pipeline as P
from .errors import NonFiniteError
from .tree import raw_concatenate, raw_dot

__all__ = ["ChunkedUpdate"]

#: ``_advance(_GATHERED, ...)``: the checked gradient is already in the gradient buffer.
_GATHERED = object()

#: ``_advance`` returned this for ``new``: the loop moved the params already.
_MOVED = "moved"


class _Plan:
    """What an update does until the hyperparameters or the state buffers change:
    the chunks, the stages in use, and every view the update loop works on
    (made by :meth:`Optimizer._make_plan`)."""

    __slots__ = ("chunk_bytes", "n", "spans", "longest", "g", "x", "y", "ones", "states", "rows",
                 "velocity", "nesterov", "mult", "mask", "max_elem", "params", "reread",
                 "new_params", "in_velocity", "prepass", "check", "adders", "constants",
                 "engine_constants", "one", "decay", "owners")



class ChunkedUpdate:
    """The update machinery of :class:`~npdownhill.Optimizer` (a mixin: it works on
    the optimizer's layout, hyperparameters, state buffers and scratch).

    Subclasses implement :meth:`_rule`; the rest is the engine's.
    """

    # -- the update rule --------------------------------------------------
    def _rule(self, t, lr, new):
        """The kernel of update ``t``: what the algorithm does to one chunk.

        Called once per update, after the stages before the rule; computes
        what depends only on ``t`` and the hyperparameters and returns
        ``kernel(g, u, tmp, *state)``, which the update loop calls on every
        chunk. The kernel writes into ``u`` the algorithm's step, the
        negative of the amount it would subtract (``-lr g`` for SGD), and
        the new state: ``state`` holds, for each flat state buffer of the
        algorithm (those of the layout's size, in the state's order, without
        the velocity of momentum), its chunk before the update and the chunk
        to write its new value into, ``m, m_new, v, v_new, ...``. ``g`` is
        read only; ``tmp`` is scratch; all are distinct arrays of one length.

        Parameters
        ----------
        t : int
            The update number, starting at 1.
        lr : float
            The learning rate for this update.
        new : dict of ndarray
            The buffers the new state goes into, by name. State of another
            shape (NAdam's scalar product) is read from ``self.state`` and
            written here directly.

        Returns
        -------
        callable
        """
        raise NotImplementedError(f"{type(self).__name__} does not define an update rule")

    def _decay_lr(self, lr):
        """The rate that multiplies ``weight_decay`` in this update: the learning rate
        (Prodigy scales it by its estimate; called after :meth:`_rule`)."""
        return lr

    def _chunk_elements(self):
        """Elements per chunk: :attr:`chunk_bytes` of the layout's dtype."""
        return max(1, int(self.chunk_bytes) // self.layout.dtype.itemsize)

    def _chunk_buffer(self, name, length, dtype=None):
        """A scratch buffer of ``length`` elements, kept under ``name`` between updates."""
        dtype = self.layout.dtype if dtype is None else np.dtype(dtype)
        buf = self._scratch.get(name)
        if buf is None or buf.size != length or buf.dtype != dtype:
            buf = self._scratch[name] = np.empty(length, dtype)
            if name == "ones":
                buf.fill(1)
        return buf

    def _make_plan(self):
        """Fix what the next updates do: the chunks, the stages in use, every view.

        Made at the first update after the hyperparameters or the state
        buffers changed. Allocates the spare state buffers (the new state of
        an update goes there and is swapped in when the update succeeds) and
        the chunk-sized scratch buffers.
        """
        layout, h = self.layout, self._hyper
        spans = layout.chunks(self._chunk_elements())
        n = len(spans)
        longest = max(stop - start for start, stop, *_ in spans)

        def cut(buf):
            if buf is None:
                return None
            return [buf] if n == 1 else [buf[start:stop] for start, stop, *_ in spans]

        def chunks_of(buf):                  # a chunk-sized buffer, cut to each chunk's length
            return [buf] if n == 1 else [buf[:stop - start] for start, stop, *_ in spans]

        plan = _Plan()
        plan.chunk_bytes, plan.n, plan.spans, plan.longest = self.chunk_bytes, n, spans, longest
        plan.g = cut(self._g)
        plan.x = chunks_of(self._chunk_buffer("x", longest))
        plan.y = chunks_of(self._chunk_buffer("y", longest))
        plan.ones = chunks_of(self._chunk_buffer("ones", longest))
        # every state buffer and its spare; the current one is pair[parity]
        pairs = {}
        for name, buf in self.state.items():
            if name in E.BUFFERS:   # advanced after a committed update: no spare
                continue
            pair = self._pairs.get(name)
            if pair is None or pair[self._parity] is not buf:
                spare = np.empty_like(buf)
                pair = (buf, spare) if self._parity == 0 else (spare, buf)
            pairs[name] = pair
        self._pairs = pairs
        plan.states = [{name: pair[k] for name, pair in pairs.items()} for k in (0, 1)]
        flat = [name for name, buf in self.state.items()
                if name != "velocity" and name not in E.BUFFERS and buf.shape == (layout.size,)]
        views = [{name: cut(plan.states[k][name]) for name in list(flat) + ["velocity"]
                  if name in plan.states[k]} for k in (0, 1)]
        plan.rows = [[tuple(view for name in flat for view in (views[k][name][c], views[1 - k][name][c]))
                      for c in range(n)] for k in (0, 1)]
        momentum = "velocity" in self.state
        plan.velocity = [list(zip(views[k]["velocity"], views[1 - k]["velocity"])) if momentum
                         else None for k in (0, 1)]
        plan.nesterov = bool(h["nesterov"])
        plan.mult, plan.mask = cut(self._mult), cut(self._mask)
        plan.max_elem = h["max_gradient_elem"]
        # weight decay: one factor for every leaf, or one per element (plan.decay); off
        # here for rules that apply it in their kernel (own_weight_decay)
        own = self.own_weight_decay
        plan.decay = None if own else cut(self._leaf_decay)
        wd = h["weight_decay"]
        decays = not own and (plan.decay is not None if isinstance(wd, dict) else bool(wd))
        plan.params, plan.reread = self._param_chunks(spans) if decays else (None, None)
        plan.in_velocity = momentum and not plan.nesterov and plan.params is None and plan.mask is None
        # with weight decay reading each chunk's params anyway (as one flat view each),
        # the loop can move them too (apply and step: see _advance)
        plan.new_params = (plan.params is not None and plan.reread is None
                           and all(p.__class__ is np.ndarray for p in plan.params))
        # the memory of the params (each array and what it is a view of), to tell
        # gradients that are the params of other leaves (_reads_other_params)
        plan.owners = ({id(a) for a in layout.arrays}
                       | {id(a.base) for a in layout.arrays if a.base is not None})
        # what needs the whole gradient before the chunk loop: its finiteness before any
        # noise is drawn, norms over a leaf or the tree, a callable, a Hessian product
        plan.prepass = bool(h["gradient_noise_scale"] or h["max_gradient_norm"]
                            or h["clip_gradients"] is not None or self.needs_loss
                            or self.whole_gradient)
        # without the rule's guarantee that a non-finite gradient element gives a
        # non-finite step (or with elementwise clipping, which can make it finite), each
        # chunk's gradient is checked before it is used
        plan.check = not self.nonfinite_spreads or bool(plan.max_elem)
        plan.adders = {}
        plan.constants, plan.engine_constants = [], []
        plan.one = n == 1 and not plan.prepass
        self._plan = plan
        return plan

    def _constants(self, *values, held=None):
        """The numbers as 0-d arrays of the layout's dtype, for the rule's kernel.

        NumPy takes a 0-d array operand about twice as fast as a Python float
        (no conversion on every call), and computes the same: a Python float
        meets a flat buffer as that buffer's dtype. The arrays belong to the
        plan and are overwritten at the next update.
        """
        held = self._plan.constants if held is None else held
        if len(held) != len(values):
            if len(held) < len(values):
                held.extend(np.zeros((), self.layout.dtype)
                            for _ in range(len(values) - len(held)))
            for array, value in zip(held, values):
                array[()] = value
            return held[:len(values)]
        for array, value in zip(held, values):
            array[()] = value
        return held

    def _flat_params(self, spans):
        """The params of each chunk as one flat view of the user's arrays, or ``None``
        if a chunk has none (several leaves of a tree that is not packed, or a piece
        of a strided leaf)."""
        layout = self.layout
        if layout.packed is not None:
            return [layout.packed[start:stop] for start, stop, *_ in spans]
        out = []
        for start, stop, first, last, lo, hi in spans:
            leaf = layout.arrays[first]
            if last - first > 1 or not leaf.flags.c_contiguous:
                return None
            out.append(leaf.reshape(-1) if lo is None else leaf.reshape(-1)[lo:hi])
        return out

    def _param_chunks(self, spans):
        """The params of each chunk, for weight decay: a flat view, or the leaves to
        gather; and the flat buffer to read all the params into first, or ``None``."""
        layout = self.layout
        flat = self._flat_params(spans)
        if flat is not None:
            return flat, None
        out = []
        for start, stop, first, last, lo, hi in spans:
            leaves = layout.arrays[first:last]
            if lo is not None:               # a piece of one large leaf
                if not leaves[0].flags.c_contiguous:
                    # no flat view of a strided leaf: read all the params each update
                    whole = self._chunk_buffer("params", layout.size)
                    return [whole[a:b] for a, b, *_ in spans], whole
                out.append(leaves[0].reshape(-1)[lo:hi])
            elif len(leaves) == 1 and leaves[0].flags.c_contiguous:
                out.append(leaves[0].reshape(-1))
            elif all(leaf.flags.c_contiguous for leaf in leaves):
                out.append([leaf.reshape(-1) for leaf in leaves])   # flat views, to gather
            else:
                whole = self._chunk_buffer("params", layout.size)
                return [whole[a:b] for a, b, *_ in spans], whole
        return out, None

    def _sources(self, grads, where, plan):
        """Each chunk's gradient, read where the caller's arrays hold it.

        A chunk inside one contiguous leaf of the layout's dtype is a view of
        that array; otherwise a list of the leaves (or a piece of a copy) to
        gather into scratch.
        """
        values = self.layout.leaves_of(grads, where)
        dtype, mine = self.layout.dtype, self._g
        flats, out = {}, []
        for start, stop, first, last, lo, hi in plan.spans:
            if last - first > 1:
                out.append([np.ravel(v) for v in values[first:last]])
                continue
            flat = flats.get(first)
            if flat is None:
                v = values[first]
                if (type(v) is np.ndarray and v.dtype == dtype and v.flags.c_contiguous
                        and v.base is not mine):
                    flat = v.reshape(-1)
                else:                         # gathered (and cast) into scratch
                    flat = [np.ravel(v)]
                flats[first] = flat
            if flat.__class__ is list:
                out.append(flat if lo is None else [flat[0][lo:hi]])
            else:
                out.append(flat if lo is None else flat[lo:hi])
        return out, values

    def _reads_other_params(self, plan, values):
        """Whether a gradient leaf is a params array, or a view of one's memory, other
        than its own leaf: a loop that moves the params chunk by chunk could then
        change a gradient before reading it (``{"a": params["b"], ...}``)."""
        owners = plan.owners
        for value, own in zip(values, self.layout.arrays):
            if value is own:
                continue
            base = getattr(value, "base", None)
            if id(value) in owners or (base is not None and id(base) in owners):
                return True
        return False

    def _unaliased(self, grads, where):
        """``grads`` with each leaf that is a view of the gradient buffer, other than
        the buffer's own view for that leaf, replaced by a copy.

        The update writes into the gradient buffer while it reads the gradients
        (gathering them there, then using it as scratch), so a leaf that reads
        another leaf's part of the buffer (``{"a": buf["b"], "b": buf["a"]}``)
        would be read after it was overwritten. Only checked once
        :meth:`gradient_buffer` has handed the buffer out.
        """
        values = self.layout.leaves_of(grads, where)
        mine = self._g
        foreign = [getattr(v, "base", None) is mine and v is not own
                   for v, own in zip(values, self._g_views)]
        if not any(foreign):
            return grads
        return self.layout.tree_of([np.array(v) if copy else v
                                    for v, copy in zip(values, foreign)])

    def _advance(self, grads, where, new_params=False):
        """Run one update's pipeline, committing nothing; return ``(flat, lr, plan, new)``.

        ``grads`` is a gradient tree (``where`` names it in messages) or
        ``_GATHERED`` when the checked gradient is already in the gradient
        buffer. Every stage runs chunk by chunk; the new state goes into the
        spare buffers and the step into the flat buffer ``flat``, and
        :meth:`_commit` swaps the new state in. ``new_params`` says that the
        caller moves the params with the result: with weight decay the loop
        then moves them itself (``flat`` is None and ``new`` is ``_MOVED``):
        chunk by chunk as it goes, the params of the chunks moved put back if
        the update is refused or interrupted; or, on a tree of one chunk, at
        once after the whole step is checked. Raises :class:`NonFiniteError` if the gradient or the
        step is not finite, with nothing changed (but random numbers drawn
        stay drawn).
        """
        plan = self._plan
        if plan is None or plan.chunk_bytes != self.chunk_bytes:
            plan = self._make_plan()
        h = self._hyper
        t = int(self._updates)
        lr = h["learning_rate"]
        if callable(lr):
            lr = self._scheduled("learning_rate", t)
        mu = h["momentum"]
        if callable(mu):
            mu = self._scheduled("momentum", t)
        if plan.one:
            return self._advance_one(plan, grads, where, new_params, h, t, lr, mu)
        # each chunk's gradient: in the gradient buffer ("ours": stages work in place
        # there), or read from the caller's arrays where they are
        ours, checked = True, grads is _GATHERED
        if checked or self._holds_g(grads):
            pass
        else:
            if self._g_handed_out:
                grads = self._unaliased(grads, where)
            if plan.n == 1 or plan.prepass:
                self.layout.gather(grads, self._g, where)
            else:
                ours = False
                src, values = self._sources(grads, where, plan)
        mult, max_elem, check = plan.mult, plan.max_elem, plan.check
        if plan.prepass:
            if not checked:
                self._check_gradient()
            self._prepare(plan, t)
            mult, max_elem, check = None, 0, False
        # with weight decay (which reads each chunk's params anyway) the loop moves the
        # params, chunk by chunk, as soon as a chunk's step is known to be finite, and
        # keeps their old values in the gradient buffer (free by then) to put back if a
        # later chunk is refused: no pass over the params after the loop. (Without
        # weight decay that costs more than it saves: the step is added after the loop.)
        targets = (plan.params if new_params and plan.new_params and not self._wrapped
                   else None)
        if targets is not None and not ours and self._reads_other_params(plan, values):
            targets = None     # the gradients are (views of) other leaves' params
        if ours or targets is not None:   # the rule writes into scratch
            u_, t_, s_ = plan.x, plan.y, plan.g
            if ours:
                src = plan.g
        else:          # the rule writes straight into the buffer
            u_, t_, s_ = plan.g, plan.x, plan.y
        parity = self._parity
        kernel = self._rule(t + 1, lr, plan.states[parity ^ 1])
        rows, velocity, params, mask = plan.rows[parity], plan.velocity[parity], plan.params, plan.mask
        decay = plan.decay
        if velocity is not None:
            nesterov, in_velocity = plan.nesterov, plan.in_velocity
        if velocity is not None or params is not None:
            # the decay factor: lr * wd, or lr alone when plan.decay holds each leaf's wd
            # (_decay_lr: the rate that multiplies the decay, Prodigy's d * lr)
            decay_lr = self._decay_lr(lr)
            decay_factor = decay_lr if plan.decay is not None else decay_lr * h["weight_decay"]
            mu, factor = self._constants(mu, decay_factor, held=plan.engine_constants)
        if params is not None and plan.reread is not None:
            self.layout.read(plan.reread)
        store = ours and plan.n > 1 and not plan.in_velocity and targets is None
        ones, dot, isfinite = plan.ones, raw_dot, math.isfinite
        bad, moved = None, 0
        try:
            for c in range(plan.n):
                g = src[c]
                if g.__class__ is list:           # gather the chunk's leaves (casting="same_kind")
                    g = raw_concatenate(g, 0, s_[c])
                if check and not (isfinite(dot(g, ones[c])) or P.finite(g)):
                    bad = self._record(bad, plan, c, g, None)
                    continue
                # per-leaf multipliers (0 for frozen leaves), elementwise clipping
                if mult is not None:
                    g = np.multiply(g, mult[c], s_[c])
                if max_elem:
                    g = np.clip(g, -max_elem, max_elem, out=s_[c])
                # the rule: u = its step, the new state into the spare buffers
                u, tmp = u_[c], t_[c]
                kernel(g, u, tmp, *rows[c])
                # momentum: v = mu v + u; step = v (classical) or mu v + u (Nesterov)
                if velocity is not None:
                    old, new = velocity[c]
                    np.multiply(old, mu, new)
                    np.add(new, u, new)
                    if nesterov:
                        np.add(np.multiply(new, mu, tmp), u, u)
                    elif in_velocity:
                        u = new
                    else:
                        np.copyto(u, new)
                # decoupled weight decay: step -= lr * wd * p
                if params is not None:
                    p = params[c]
                    if p.__class__ is list:
                        p = raw_concatenate(p, 0, tmp)
                    if decay is None:
                        np.subtract(u, np.multiply(p, factor, tmp), u)
                    else:        # per leaf: step -= lr * wd_leaf * p
                        np.multiply(p, decay[c], tmp)
                        np.subtract(u, np.multiply(tmp, factor, tmp), u)
                if mask is not None:
                    np.multiply(u, mask[c], u)    # frozen leaves never move
                # the step's finiteness (a sum: NaN and inf propagate; an exact look if it
                # overflowed)
                if not (isfinite(dot(u, ones[c])) or P.finite(u)):
                    bad = self._record(bad, plan, c, g, u)
                elif targets is not None:
                    if bad is None:               # p += step, the old p kept
                        p = targets[c]
                        np.copyto(plan.g[c], p)
                        np.add(p, u, p)
                        moved = c + 1
                elif store:
                    np.copyto(plan.g[c], u)
            if bad is not None:
                self._refuse(bad, t)
        except BaseException:
            # a refused step, an error or an interrupt: the params moved so far go back
            for c in range(moved):
                np.copyto(targets[c], plan.g[c], casting="same_kind")
            raise
        if targets is not None:
            return None, lr, plan, _MOVED
        if plan.in_velocity:
            return plan.states[parity ^ 1]["velocity"], lr, plan, False
        if ours and plan.n == 1:
            return plan.x[0], lr, plan, False
        return self._g, lr, plan, False

    def _advance_one(self, plan, grads, where, new_params, h, t, lr, mu):
        """:meth:`_advance` for a tree that is one chunk and needs no pass before the
        rule: the same stages in the same order, without the chunk loop."""
        g = self._g
        if grads is not _GATHERED and not self._holds_g(grads):
            if self._g_handed_out:
                grads = self._unaliased(grads, where)
            self.layout.gather(grads, g, where)
        u, tmp, ones = plan.x[0], plan.y[0], plan.ones[0]
        if plan.check and not (math.isfinite(raw_dot(g, ones)) or P.finite(g)):
            self._refuse(self._record(None, plan, 0, g, None), t)
        if plan.mult is not None:
            np.multiply(g, plan.mult[0], g)
        if plan.max_elem:
            np.clip(g, -plan.max_elem, plan.max_elem, out=g)
        parity = self._parity
        self._rule(t + 1, lr, plan.states[parity ^ 1])(g, u, tmp, *plan.rows[parity][0])
        velocity, params, flat = plan.velocity[parity], plan.params, u
        if velocity is not None or params is not None:
            # the decay factor: lr * wd, or lr alone when plan.decay holds each leaf's wd
            # (_decay_lr: the rate that multiplies the decay, Prodigy's d * lr)
            decay_lr = self._decay_lr(lr)
            decay_factor = decay_lr if plan.decay is not None else decay_lr * h["weight_decay"]
            mu, factor = self._constants(mu, decay_factor, held=plan.engine_constants)
        if velocity is not None:
            old, new = velocity[0]
            np.multiply(old, mu, new)
            np.add(new, u, new)
            if plan.nesterov:
                np.add(np.multiply(new, mu, tmp), u, u)
            elif plan.in_velocity:
                u = flat = new
            else:
                np.copyto(u, new)
        if params is not None:
            p = params[0]
            if p.__class__ is list:
                p = raw_concatenate(p, 0, tmp)
            elif plan.reread is not None:
                p = self.layout.read(plan.reread)
            if plan.decay is None:
                np.subtract(u, np.multiply(p, factor, tmp), u)
            else:            # per leaf: step -= lr * wd_leaf * p
                np.multiply(p, plan.decay[0], tmp)
                np.subtract(u, np.multiply(tmp, factor, tmp), u)
        if plan.mask is not None:
            np.multiply(u, plan.mask[0], u)
        if not (math.isfinite(raw_dot(u, ones)) or P.finite(u)):
            self._refuse(self._record(None, plan, 0, g, u), t)
        if new_params and plan.new_params and not self._wrapped:
            np.add(p, u, p)      # the whole step is checked: the params move at once
            return None, lr, plan, _MOVED
        return flat, lr, plan, False

    def _commit(self, plan, lr):
        """Swap in the new state of the update :meth:`_advance` computed; count it."""
        self._parity ^= 1
        self.state.update(plan.states[self._parity])
        self._updates[()] += 1
        self._accum_count = 0           # the pending gradients went into this update
        self.last_learning_rate = lr

    def _conclude(self, plan, lr, flat, new):
        """Commit the update :meth:`_advance` computed and move the params: add the step
        (unless ``new`` says the update moved them), then advance lookahead or the
        average if set."""
        self._commit(plan, lr)
        if new is _MOVED:
            return
        if self._wrapped:
            self._place(plan, flat)
        else:
            self._add(plan, flat)

    def _add(self, plan, flat):
        """Add the flat step ``flat`` to the params in place."""
        add = plan.adders.get(id(flat))
        if add is None:
            add = plan.adders[id(flat)] = self.layout.adder(flat)
        add()

    # -- gradient accumulation (accumulate = k) ---------------------------
    def _accumulating(self):
        """Whether gradients go through the pending sum (``accumulate > 1`` or a sum pending)."""
        return self._accum_count > 0 or self._hyper["accumulate"] > 1

    def _accumulation_buffer(self):
        if self._accum is None:
            self._accum = self.layout.empty()
        return self._accum

    def _accumulate(self, grads, where):
        """Add a gradient to the pending sum; True when it completes an update.

        The gradient is gathered into the gradient buffer and checked (a
        non-finite one is refused before it joins the sum). With ``n``
        gradients now pending and ``n < accumulate``, it joins the sum
        :math:`S \leftarrow S + g` and False is returned. Otherwise the mean
        :math:`\bar g = (S + g) / n` is written into the gradient buffer and
        True is returned; the sum itself is cleared by :meth:`_commit`, so
        an update refused after this leaves it as it was.
        """
        if grads is _GATHERED:
            self._check_gradient()
        else:
            self._gather_grads(grads, where)
        n = self._accum_count + 1
        if n < self._hyper["accumulate"]:
            total = self._accumulation_buffer()
            if n == 1:
                np.copyto(total, self._g)
            else:
                np.add(total, self._g, total)
            self._accum_count = n
            return False
        if n > 1:
            np.add(self._accum, self._g, self._g)
            np.divide(self._g, n, self._g)
        return True

    def _pending_learning_rate(self):
        """The learning rate the pending update will use (for monitors)."""
        lr = self._hyper["learning_rate"]
        return self._scheduled("learning_rate", int(self._updates)) if callable(lr) else lr

    def _place(self, plan, flat):
        """:meth:`_add` the step, then advance lookahead or the average on the new params."""
        layout, t = self.layout, int(self._updates)
        tmp = self._chunk_buffer("evaluation_tmp", layout.size)
        old = layout.read(tmp) if t == 1 else None       # lookahead's start (tmp is free till then)
        self._add(plan, flat)
        params = layout.read(self._chunk_buffer("evaluation_new", layout.size))
        if E.after_update(self._hyper, t, old, params, self.state, tmp):
            layout.write(params)                          # the fast weights restart at the slow

    def _check_gradient(self):
        """Refuse a non-finite gradient in the gradient buffer before anything is drawn."""
        if not P.finite(self._g):
            leaves = self._nonfinite_leaves(self._g)
            raise NonFiniteError(
                f"{type(self).__name__}: non-finite gradient in {P.leaf_list(leaves)} at update "
                f"{self.updates + 1}; nothing was applied", "gradient", leaves, self.updates)

    def _prepare(self, plan, t):
        """The stages before the rule on the whole gradient buffer: noise, multipliers,
        clipping (for the norms and the callable that need the whole gradient)."""
        h, g = self._hyper, self._g
        # noise: g += N(0, sigma^2) with sigma = scale / (1 + t)^(decay / 2)
        if h["gradient_noise_scale"]:
            sigma = h["gradient_noise_scale"] / (1.0 + t) ** (h["gradient_noise_decay"] / 2)
            for chunk, noise in zip(plan.g, plan.x):
                self._normal(noise)
                np.multiply(noise, sigma, noise)
                np.add(chunk, noise, chunk)
        # per-leaf multipliers; frozen leaves get 0
        if self._mult is not None:
            np.multiply(g, self._mult, g)
        # clipping: elementwise, per leaf, then the whole tree
        if h["max_gradient_elem"] or h["max_gradient_norm"] or h["clip_gradients"] is not None:
            P.clip(g, self.layout, h["max_gradient_elem"], h["max_gradient_norm"],
                   h["clip_gradients"], self._scratch["x"],
                   f"{type(self).__name__}(clip_gradients=...) result", plan.spans)

    def _record(self, bad, plan, c, g, u):
        """Note where chunk ``c``'s gradient, or if it is finite its step ``u``, is not."""
        if bad is None:
            bad = (np.zeros(self.layout.size, bool), np.zeros(self.layout.size, bool))
        start, stop = plan.spans[c][:2]
        if u is None or not P.finite(g):
            bad[0][start:stop] |= ~np.isfinite(g)
        else:
            bad[1][start:stop] |= ~np.isfinite(u)
        return bad

    def _refuse(self, bad, t):
        """Raise the :class:`NonFiniteError` for what :meth:`_record` noted."""
        name = type(self).__name__
        nonfinite_gradient, nonfinite_step = bad
        if nonfinite_gradient.any():
            leaves = self._marked_leaves(nonfinite_gradient)
            raise NonFiniteError(
                f"{name}: non-finite gradient in {P.leaf_list(leaves)} at update "
                f"{self.updates + 1}; nothing was applied", "gradient", leaves, self.updates)
        leaves = self._marked_leaves(nonfinite_step)
        raise NonFiniteError(
            f"{name}: update {t + 1} produced a non-finite step in {P.leaf_list(leaves)} "
            "although the gradient was finite; nothing was applied", "step", leaves, t)

    def _marked_leaves(self, mask):
        return [name for name, view in zip(self.layout.names, self.layout.views(mask)) if view.any()]

    def _normal(self, out):
        """Fill the flat ``out`` with standard normal draws from the optimizer's generator.

        The draws are always float64 (then cast, a chunk at a time), so a
        seed gives the same numbers whatever the dtype of the params.
        """
        if out.dtype == np.float64:
            self._rng.standard_normal(out=out)
            return
        # the draws go through the bytes of the scratch buffer y, which is free whenever
        # numbers are drawn (before the rule's kernel runs)
        spare = self._scratch.get("y")
        if spare is not None and spare.nbytes >= 8 and not np.may_share_memory(spare, out):
            draws = spare.view(np.uint8)[:spare.nbytes - spare.nbytes % 8].view(np.float64)
        else:
            draws = self._chunk_buffer("normal64", min(out.size, self._chunk_elements()),
                                       np.float64)
        for start in range(0, out.size, draws.size):
            part = draws[:min(draws.size, out.size - start)]
            self._rng.standard_normal(out=part)
            np.copyto(out[start:start + part.size], part, casting="same_kind")

    def _nonfinite_leaves(self, flat):
        bad = [not np.isfinite(view).all() for view in self.layout.views(flat)]
        return [name for name, b in zip(self.layout.names, bad) if b]
