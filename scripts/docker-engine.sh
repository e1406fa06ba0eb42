# Start a Docker engine for the tests when none answers, and stop only what was started here.
# Sourced by ./dev; ENVIRONMENT notes: no systemd, so dockerd is started by hand as root.

ENGINE_DIR="${ENGINE_DIR:-$ROOT/.cache/dockerd}"
STARTED_DOCKERD=""

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

engine_up() {
    if engine_answers; then say "Docker engine already running"; return 0; fi
    if [ "$(id -u)" != 0 ]; then say "not root: cannot start a Docker engine"; return 1; fi
    command -v dockerd >/dev/null || apt_install docker.io || return 1
    mkdir -p "$ENGINE_DIR"
    say "starting dockerd (log: $ENGINE_DIR/dockerd.log)"
    dockerd >"$ENGINE_DIR/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 1 60); do
        engine_answers && { say "Docker engine $(docker version --format '{{.Server.Version}}') is up"; return 0; }
        kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
        sleep 0.5
    done
    say "dockerd did not come up; last lines of its log:"; tail -5 "$ENGINE_DIR/dockerd.log" || true
    engine_down
    return 1
}

engine_down() {
    [ -n "$STARTED_DOCKERD" ] || return 0
    say "stopping the dockerd started for the tests"
    kill "$STARTED_DOCKERD" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$STARTED_DOCKERD" 2>/dev/null || true
    STARTED_DOCKERD=""
}
