r"""
A curve fit with error bars
===========================

:func:`npdownhill.problems.damped_oscillator` samples a damped oscillation
:math:`y(t) = A e^{-t/\tau} \cos(\omega t + \phi) + c` with Gaussian noise of known
size. :func:`npdownhill.curve_fit` fits it like ``scipy.optimize.curve_fit`` (note the
order of the model's arguments: ``f(xdata, params)``), with the exact Jacobian from
autograd, and returns the parameters and their covariance;
:func:`npdownhill.standard_errors` turns the covariance into one error per parameter.
"""

# %%
# The data
# --------
import matplotlib.pyplot as plt
import numpy as np

import npdownhill as dh
from npdownhill.problems import damped_oscillator

NOISE = 0.15
t, y, truth, model = damped_oscillator(n=80, noise=NOISE, seed=2)
print("true parameters:", truth)

# %%
# The fit
# -------
# The noise is known, so ``sigma`` gives it and ``absolute_sigma=True`` takes the
# errors from it as they are (with the default ``False`` they are rescaled by the
# reduced chi-square, as in scipy).
p0 = {"A": np.array(1.0), "tau": np.array(2.0), "omega": np.array(2.3),
      "phi": np.array(0.0), "c": np.array(0.0)}
popt, pcov = dh.curve_fit(model, t, y, p0, sigma=np.full(t.size, NOISE), absolute_sigma=True)
errors = dh.standard_errors(pcov, popt)
for name in popt:
    pulls = (float(popt[name]) - truth[name]) / float(errors[name])
    print(f"{name:5s} = {float(popt[name]):7.4f} +- {float(errors[name]):.4f}   "
          f"(true {truth[name]:.2f}, {pulls:+.1f} sigma)")
residuals = (y - model(t, popt)) / NOISE
print(f"chi-square {np.sum(residuals ** 2):.1f} for {t.size - len(popt)} degrees of freedom")

# %%
# Data, fit and truth
# -------------------
# Each sample with its error bar (the noise's standard deviation), the fitted curve and
# the true one; below, the residuals in units of that error.
fine = np.linspace(t.min(), t.max(), 500)
fig, (ax, ax_res) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, height_ratios=[3, 1],
                                 layout="constrained")
ax.errorbar(t, y, yerr=NOISE, fmt="o", markersize=3, color="black", alpha=0.6,
            label="data")
ax.plot(fine, model(fine, popt), color="C1", label="fit")
ax.plot(fine, model(fine, truth), "--", color="C0", label="truth")
ax.set_ylabel("y")
ax.legend()
ax_res.axhline(0, color="gray")
ax_res.plot(t, residuals, "o", markersize=3, color="black")
ax_res.set_xlabel("t")
ax_res.set_ylabel("residual / sigma")

# %%
# The parameters with their error bars
# ------------------------------------
# Each fitted value minus the truth, with its standard error. If the errors are right,
# a bar covers zero two times in three on average (over many noise draws); with five
# parameters, two or three uncovered is nothing unusual.
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
names = list(popt)
ax.errorbar([float(popt[n]) - truth[n] for n in names], range(len(names)),
            xerr=[float(errors[n]) for n in names], fmt="o", capsize=4)
ax.axvline(0, color="gray", linestyle="--")
ax.set_yticks(range(len(names)), names)
ax.set_xlabel("fitted - true")

# %%
# The correlations between the parameters, from ``pcov`` (its rows and columns follow
# the leaves in order: A, tau, omega, phi, c):
sd = np.sqrt(np.diag(pcov))
print(np.array2string(pcov / np.outer(sd, sd), precision=2, suppress_small=True))

plt.show()
