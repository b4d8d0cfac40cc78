# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial
#
# From a public data set to a private, offline recommendation in eight steps, each explained and run for
# real. This page is the executed notebook of `privrec tutorial --quick`: the same functions
# ([`privrec.tutorial`](../api/compat/)) produce the terminal version, and every number below was computed
# when this site was built. Run it yourself with
#
# ```bash
# privrec tutorial          # waits for Enter between steps; add --quick for the smaller model
# ```
#
# or open this file (`docs/tutorial.py`, a jupytext notebook) in Jupyter. It needs
# `privrec[train,export,runtime,server]` and MovieLens-100K (`privrec data fetch`; the first step fetches it
# if missing).

# %%
import tempfile
from pathlib import Path

from privrec import tutorial

# The quick configuration (d = 32, at most 12 epochs): what the documentation build runs.
ctx = tutorial.TutorialContext.create(Path(tempfile.mkdtemp(prefix="privrec-tutorial-")), quick=True)

# %% [markdown]
# ## 1. The data

# %%
tutorial.show(tutorial.run_step(ctx, "data"))

# %% [markdown]
# ## 2. The model, trained centrally

# %%
tutorial.show(tutorial.run_step(ctx, "central"))

# %% [markdown]
# ## 3. Rebuilding the user vector on the device

# %%
tutorial.show(tutorial.run_step(ctx, "reconstruct"))

# %% [markdown]
# ## 4. int8 and pruning

# %%
tutorial.show(tutorial.run_step(ctx, "compress"))

# %% [markdown]
# ## 5. One signed bundle, three formats, verified

# %%
tutorial.show(tutorial.run_step(ctx, "export"))

# %% [markdown]
# ## 6. A federated round: DP and secure aggregation

# %%
tutorial.show(tutorial.run_step(ctx, "federated"))

# %% [markdown]
# ## 7. What the server saw, kept and spent

# %%
tutorial.show(tutorial.run_step(ctx, "server"))

# %% [markdown]
# ## 8. A recommendation, offline

# %%
tutorial.show(tutorial.run_step(ctx, "offline"))

# %% [markdown]
# ## Next
#
# [Concepts](../concepts/) explains what each step guarantees and what it does not; the
# [Production guide](../production/) what running it for real users takes; the [Benchmarks](../benchmarks/)
# what we measured at scale.
