"""pytest plugin (entry point ``pytest11: fuzzgrad``); imports torch and JAX only when it runs."""
