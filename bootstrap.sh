#!/usr/bin/env bash
# Set up pipeforge in ./.venv and run one of its jobs.
#
#   ./bootstrap.sh demo   set up, then fit, test and list the iris example and serve it
#   ./bootstrap.sh test   set up (with the test services: PostgreSQL, Redis, Chromium, R, podman),
#                         then run the whole test suite
#
# Extra arguments after "test" go to pytest. Settings from the environment:
#   PYTHON (python3), VENV (./.venv), PORT (5000, demo), EXAMPLE_DIR (examples/iris, demo)
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtual environment in .venv"
        "$PYTHON" -m venv "$VENV"
    fi
    say "installing pipeforge and its dependencies (log: $VENV/pip.log)"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -e "$ROOT$1" &&
           # An editable install leaves the package uncompiled, and with
           # PYTHONDONTWRITEBYTECODE set every script start compiled it again
           # (20 ms of pf-admin's 0.3 s): compile it now, as pip does for wheels.
           "$VENV/bin/python" -m compileall -q "$ROOT/pipeforge" "$ROOT/palladium"; } >"$VENV/pip.log" 2>&1; then
        tail -n 30 "$VENV/pip.log" >&2
        say "installing failed; the whole log is in $VENV/pip.log"
        exit 1
    fi
}

apt_install() {
    # Installs Debian packages the tests need, once; needs root (or sudo).
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian packages: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Debian packages the tests run for real: each service (or tool) and the package that brings it.
TEST_PACKAGES=(
    "/usr/lib/postgresql/*/bin/postgres:postgresql"
    "/usr/bin/redis-server:redis-server"
    "/usr/bin/chromium:chromium"
    "/usr/bin/chromedriver:chromium-driver"
    "/usr/bin/Rscript:r-base-core"
    "/usr/lib/R/site-library/randomForest:r-cran-randomforest"
    "/usr/bin/podman:podman"
    "/usr/sbin/runc:runc"
    "/usr/sbin/debootstrap:debootstrap"
)

setup_test_services() {
    local missing=() entry
    for entry in "${TEST_PACKAGES[@]}"; do
        # shellcheck disable=SC2086  # the path may be a glob
        ls ${entry%%:*} >/dev/null 2>&1 || missing+=("${entry##*:}")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

demo() {
    setup_venv "[fast]"
    export PATH="$VENV/bin:$PATH"
    cd "${EXAMPLE_DIR:-$ROOT/examples/iris}"
    export PIPEFORGE_CONFIG=config.py
    say "pf-fit  (trains the iris model and stores it in iris-model.db)"
    pf-fit
    say "pf-test (scores it on the held-out rows)"
    pf-test
    say "pf-list"
    pf-list
    local port="${PORT:-5000}"
    say "serving the iris model with pf-serve on http://127.0.0.1:$port (Ctrl-C stops it)"
    echo "Try it:  curl 'http://127.0.0.1:$port/predict?sepal%20length=6.3&sepal%20width=2.5&petal%20length=4.9&petal%20width=1.5'"
    # granian (the [fast] extra), or gunicorn with the request limits of pipeforge's images
    exec pf-serve --workers 2 --bind "127.0.0.1:$port"
}

run_tests() {
    setup_test_services
    setup_venv "[test]"
    say "running the test suite"
    cd "$ROOT"
    exec "$VENV/bin/python" -m pytest "$@"
}

case "${1:-}" in
    demo) demo ;;
    test) shift; run_tests "$@" ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
