"""privrec.sdk.privacy."""
