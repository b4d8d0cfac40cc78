"""privrec.sdk.federated."""
