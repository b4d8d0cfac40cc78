"""privrec.sdk.data."""
