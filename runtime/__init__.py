"""privrec.runtime: the on-device reference runtime (bundle loading, scoring, fine-tuning, local store, rounds over HTTP)."""
