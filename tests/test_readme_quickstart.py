"""The Quick Start of the API the project was announced with, with only the import changed, runs and recommends."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

QUICK_START = textwrap.dedent(
    """
    from privrec import FederatedRecommendationSystem
    import numpy as np

    # Initialize system
    fed_system = FederatedRecommendationSystem(
        num_items=1000,
        embedding_dim=64,
        epsilon=1.0,  # Privacy budget
        num_clients=50
    )

    # Register clients (devices)
    clients = []
    for i in range(50):
        client = fed_system.register_client(f"device_{i:03d}")
        clients.append(client)

        # Simulate user interactions (stays on device!)
        for _ in range(np.random.randint(10, 50)):
            item_id = np.random.randint(0, 1000)
            rating = np.random.beta(8, 2)
            client.add_interaction(item_id, rating)

    # Run federated learning
    for round_num in range(5):
        participating = np.random.choice(clients, size=15, replace=False)
        participating_ids = [c.client_id for c in participating]
        fed_system.federated_round(participating_ids)

    # Get recommendations on-device
    recommendations = clients[0].get_recommendations(top_k=10)
    print(f"Top 10 Recommendations: {recommendations}")
    """
)


def test_quick_start_runs_and_prints_ten_unseen_items() -> None:
    proc = subprocess.run([sys.executable, "-c", QUICK_START], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"Top 10 Recommendations: \[([0-9, ]+)\]", proc.stdout)
    assert match is not None, proc.stdout
    ids = [int(x) for x in match.group(1).split(",")]
    assert len(ids) == 10
    assert len(set(ids)) == 10
    assert all(0 <= i < 1000 for i in ids)
