"""Where a bundled model runs: a Docker container, or a child process of the studio."""
