# The restore stage. Its rules append their final outputs to FINAL_TARGETS (see common.smk).
