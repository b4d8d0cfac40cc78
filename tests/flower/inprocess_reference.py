"""privrec's in-process simulation for the Flower tests, run by the reference environment's Python.

Flower's environment holds the device and server path only (no torch), so the vectorised simulation the
Flower run is compared against runs here, in a subprocess of ``privrec[train]``'s Python (``.venv``)::

    python tests/flower/inprocess_reference.py SPEC_JSON OUT_NPZ

SPEC_JSON: ``{"federated": FederatedConfig.to_dict(), "users": U, "items": I, "rank": R, "data_seed": S,
"seed": s}``. OUT_NPZ gets the final item table and bias, the initial item table, the train and held-out
users, and ε.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np


def main(spec_path: str, out_path: str) -> None:
    from privrec.sdk.data import heldout_users, leave_one_out, synthetic_interactions
    from privrec.sdk.federated.config import FederatedConfig
    from privrec.sdk.federated.simulate import simulate_federated
    from privrec.sdk.privacy import PrivacyWarning

    spec = json.loads(Path(spec_path).read_text())
    fc = FederatedConfig.from_dict(spec["federated"])
    split = leave_one_out(synthetic_interactions(spec["users"], spec["items"], rank=spec["rank"], seed=spec["data_seed"]))
    train, held = heldout_users(split.num_users, fraction=fc.heldout_fraction, seed=fc.heldout_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        sim = simulate_federated(split, fc, train_users=train, heldout_users=held, seed=spec["seed"], progress=False)
    start = sim.layout.item_model(sim.layout.init(init_std=fc.init_std, seed=spec["seed"]))
    np.savez(out_path, item_embedding=sim.items.item_embedding, item_bias=sim.items.item_bias,
             initial_item_embedding=start.item_embedding, train_users=sim.train_users,
             heldout_users=sim.heldout_users, epsilon=np.float64(sim.ledger.epsilon))


if __name__ == "__main__":
    main(*sys.argv[1:3])
