"""Exceptions raised by npdownhill."""

__all__ = ["NonFiniteError"]


class NonFiniteError(FloatingPointError):
    """A loss, gradient or step was NaN or infinite; nothing was applied.

    Raised before the offending update reaches the parameters. When it comes
    out of ``iterate`` / ``minimize`` the best parameters found so far have
    already been put back into the caller's arrays.

    Parameters
    ----------
    message : str
        The full message.
    what : {'loss', 'gradient', 'step'}
        Which quantity was non-finite.
    leaves : list of str
        Names of the param-tree leaves whose gradient (or step) held
        non-finite values (empty for a non-finite loss).
    update : int
        The number of updates applied before the failing one.
    epoch : int or None
        The training epoch, when raised by the driver.

    Attributes
    ----------
    what, leaves, update, epoch
        As given.
    """

    def __init__(self, message, what, leaves=(), update=0, epoch=None):
        super().__init__(message)
        self.what = what
        self.leaves = list(leaves)
        self.update = update
        self.epoch = epoch
