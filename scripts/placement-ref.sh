#!/usr/bin/env bash
# Build the OpenStack Placement reference for the benchmarks (benchmarks/placement_ref.py)
# in its own virtualenv, never in .venv: Placement pins its own oslo.* dependencies.
#
#   scripts/placement-ref.sh            # creates .bench/placement-venv (idempotent)
#   PLACEMENT_VERSION=16.0.0 PYTHON=python3.11 scripts/placement-ref.sh
#
# The venv holds openstack-placement from PyPI and gunicorn (a pre-forking WSGI server
# that serves concurrent requests). The benchmark writes placement.conf, syncs the SQLite
# database with placement-manage and starts gunicorn itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PLACEMENT_VENV:-$ROOT/.bench/placement-venv}"
PLACEMENT_VERSION="${PLACEMENT_VERSION:-16.0.0}"
GUNICORN_VERSION="${GUNICORN_VERSION:-27.0.1}"
PYTHON="${PYTHON:-python3}"

if [[ -x "$VENV/bin/placement-manage" && -x "$VENV/bin/gunicorn" ]] \
    && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openstack-placement') != '$PLACEMENT_VERSION')" 2>/dev/null; then
    echo "placement reference ready: $VENV (openstack-placement $PLACEMENT_VERSION)"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "openstack-placement==$PLACEMENT_VERSION" "gunicorn==$GUNICORN_VERSION"
"$VENV/bin/python" -c "import placement.wsgi, gunicorn" >/dev/null  # api.py needs a config
echo "placement reference built: $VENV (openstack-placement $PLACEMENT_VERSION, gunicorn $GUNICORN_VERSION)"
