"""Where a model runs: Docker when an engine answers, otherwise a local child process."""
