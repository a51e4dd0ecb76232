#!/usr/bin/env bash
# Set up pipeforge in ./.venv and run one of its jobs.
#
#   ./bootstrap.sh demo   set up, then fit, test and list the iris example and serve it
#   ./bootstrap.sh test   set up (with PostgreSQL for the tests), then run the whole test suite
#
# Extra arguments after "test" go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtual environment in .venv"
        "$PYTHON" -m venv "$VENV"
    fi
    say "installing pipeforge and its dependencies"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT$1"
}

apt_install() {
    # Installs Debian packages the tests need, once; needs root (or sudo).
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian packages: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

setup_test_services() {
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        apt_install postgresql
    fi
}

demo() {
    setup_venv ""
    export PATH="$VENV/bin:$PATH"
    cd "$ROOT/examples/iris"
    export PIPEFORGE_CONFIG=config.py
    say "pf-fit  (trains the iris model and stores it in iris-model.db)"
    pf-fit
    say "pf-test (scores it on the held-out rows)"
    pf-test
    say "pf-list"
    pf-list
    local port="${PORT:-5000}"
    say "serving the iris model with gunicorn on http://127.0.0.1:$port (Ctrl-C stops it)"
    echo "Try it:  curl 'http://127.0.0.1:$port/predict?sepal%20length=6.3&sepal%20width=2.5&petal%20length=4.9&petal%20width=1.5'"
    exec gunicorn --workers 2 --bind "127.0.0.1:$port" --access-logfile - pipeforge.wsgi:app
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
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
