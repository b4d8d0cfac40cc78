"""privrec.sdk.secagg."""
