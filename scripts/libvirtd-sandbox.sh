#!/usr/bin/env bash
# A throwaway, fully private, root `libvirtd` (QEMU driver, software emulation) for the
# end-to-end test tier.
#
# Usage: scripts/libvirtd-sandbox.sh start|stop|status STATEDIR
#
#   start   starts the daemon (or reuses it when this STATEDIR's daemon is already running;
#           guests orphaned by a daemon that died are killed first), waits until the QEMU
#           driver answers, writes the URI to STATEDIR/uri and prints it:
#               qemu+unix:///system?socket=STATEDIR/run/libvirt-sock
#   stop    kills the guests (qemu processes) of this sandbox, then the daemon; idempotent.
#   status  exit 0 and print the URI if this STATEDIR's daemon is running, exit 1 otherwise.
#
# How it is isolated: libvirtd runs in a private mount namespace (unshare -m) in which
#   STATEDIR/etc   is bind-mounted on /etc/libvirt      (libvirtd.conf, qemu.conf)
#   STATEDIR/run   is bind-mounted on /run/libvirt      (sockets, domain status, pid files)
#   STATEDIR/lib   is bind-mounted on /var/lib/libvirt  (persistent domain XML, qemu dirs)
#   STATEDIR/cache is bind-mounted on /var/cache/libvirt (QEMU capabilities cache)
#   STATEDIR/log   is bind-mounted on /var/log/libvirt  (per-domain qemu logs)
# so it never reads or writes the system's libvirt directories, and several sandboxes (one
# per STATEDIR, each with its own host_uuid) can run side by side. The client socket lives
# in STATEDIR/run (mode 0700, root only, no TCP listener).
#
# Traps handled here (see also tests/e2e/realvirt.py):
#   * /dev/kvm exists but KVM is unusable on these machines. A root libvirtd that can open
#     /dev/kvm re-probes QEMU (seconds each, tens of seconds per define) on every capability
#     lookup. Inside the namespace /dev/kvm is replaced by an empty file bind-mounted
#     READ-ONLY: root ignores mode bits, so a mode-000 file alone is not enough, but
#     access(W_OK) on a read-only mount fails with EROFS, so libvirt sees KVM as unusable,
#     caches the TCG-only capabilities once and defines take milliseconds. Guests must use
#     <domain type='qemu'>.
#   * The Debian libvirtd resolves its compiled-in default QEMU user `libvirt-qemu` before it
#     reads qemu.conf and refuses to start without it; that user comes from
#     libvirt-daemon-system, which is not installed. If it is missing, copies of
#     /etc/passwd and /etc/group with the entry added are bind-mounted in the namespace only.
#   * qemu runs as root with security_driver="none" and dynamic_ownership=0: libvirt never
#     chowns/relabels the kernel, initrd or log files, and files under root-only directories
#     (e.g. pytest's /tmp/pytest-of-root) are usable. namespaces=[] (no private /dev per
#     guest), stdio_handler="file" (no virtlogd needed).
#   * cgroups are OFF by default (cgroup_controllers=[]): cgroupfs is global, and libvirt
#     names a guest's cgroup /machine/qemu-ID-NAME.libvirt-qemu, so two sandboxes running a
#     same-named guest with the same domain id (migration tests!) would share one cgroup.
#     Without cgroups getCPUStats() fails; info(), getAllDomainStats(), memoryStats() and
#     vcpus() still work. LIBVIRTD_SANDBOX_CGROUPS=1 turns them on.
#
# Environment: LIBVIRTD_SANDBOX_CGROUPS=1 (see above), LIBVIRTD_SANDBOX_DEBUG=1 (debug log in
# STATEDIR/libvirtd.log), LIBVIRTD_SANDBOX_PYTHON (a python with libvirt-python used for the
# readiness check when virsh is absent; default: the repo's .venv, then python3),
# LIBVIRTD_SANDBOX_TIMEOUT (seconds to wait for the daemon, default 90),
# LIBVIRTD_SANDBOX_CAPS_CACHE (a directory shared by all sandboxes that seeds and receives
# libvirt's QEMU capabilities cache; default REPO/.cache/libvirtd-sandbox-caps, empty to
# disable). The first probe of qemu-system-x86_64/-i386 costs ~4 s; a seeded daemon answers
# in ~0.2 s. libvirt re-validates the cache itself (QEMU/libvirt binary ctimes, kernel), so a
# stale seed only costs a re-probe.
# Needs root (mount namespaces). Missing apt packages are installed when run as root.
set -euo pipefail

die() { echo "libvirtd-sandbox: $*" >&2; exit 1; }
log() { echo "libvirtd-sandbox: $*" >&2; }

[[ $# -eq 2 ]] || die "usage: $0 start|stop|status STATEDIR"
ACTION=$1
[[ $ACTION == start || $ACTION == stop || $ACTION == status ]] \
    || die "usage: $0 start|stop|status STATEDIR"
[[ $(id -u) -eq 0 ]] || die "must run as root (it needs a private mount namespace)"

REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$2"
STATEDIR=$(cd "$2" && pwd -P)
# The path goes into a URI query and into AF_UNIX socket names (max 107 bytes).
[[ $STATEDIR =~ ^[A-Za-z0-9._/+-]+$ ]] \
    || die "STATEDIR must only contain [A-Za-z0-9._/+-]: $STATEDIR"
SOCKDIR="$STATEDIR/run"
SOCK="$SOCKDIR/libvirt-sock"
((${#SOCKDIR} + 20 <= 107)) || die "STATEDIR too long for unix socket paths: $STATEDIR"
URI="qemu+unix:///system?socket=$SOCK"
PIDFILE="$STATEDIR/libvirtd.pid"
LOGFILE="$STATEDIR/libvirtd.log"
TIMEOUT=${LIBVIRTD_SANDBOX_TIMEOUT:-90}
CAPS_SEED=${LIBVIRTD_SANDBOX_CAPS_CACHE-$REPO/.cache/libvirtd-sandbox-caps}
CAPS_DIR="$STATEDIR/cache/qemu/capabilities"

# --- process helpers ------------------------------------------------------------------------
daemon_pid() {  # prints the pid of this STATEDIR's libvirtd, fails if it is not running
    local pid
    [[ -s $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    # Must be a libvirtd started with our pid file (guards against pid reuse).
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == libvirtd ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--pid-file $PIDFILE " \
        || return 1
    echo "$pid"
}

ns_members() {  # pids of all processes inside this sandbox (libvirtd, its qemu guests)
    # A process belongs to the sandbox when its /run/libvirt is our STATEDIR/run (same
    # device and inode): immune to pid and namespace-id reuse, works without a pid file.
    local want own p
    want=$(stat -c %d:%i "$SOCKDIR" 2>/dev/null) || return 0
    own=$(readlink /proc/self/ns/mnt)
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/ns/mnt" 2>/dev/null) != "$own" ]] || continue
        [[ $(stat -L -c %d:%i "$p/root/run/libvirt" 2>/dev/null) == "$want" ]] || continue
        echo "${p#/proc/}"
    done
    return 0
}

alive() { [[ -d /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

wait_gone() {  # wait_gone SECONDS PID...: true when all are gone
    local deadline=$((SECONDS + $1)) p left
    shift
    while :; do
        left=0
        for p in "$@"; do alive "$p" && left=1; done
        ((left == 0)) && return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

find_python() {
    local py
    for py in "${LIBVIRTD_SANDBOX_PYTHON:-}" "$REPO/.venv/bin/python" python3; do
        [[ -n $py ]] || continue
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" -c 'import libvirt' >/dev/null 2>&1 && { echo "$py"; return 0; }
    done
    return 1
}

answers() {  # true when the daemon's QEMU driver answers a version query
    local py
    if command -v virsh >/dev/null 2>&1; then
        virsh -q -c "$URI" version >/dev/null 2>&1
    elif py=$(find_python); then
        "$py" - "$URI" >/dev/null 2>&1 <<'EOF'
import sys
import libvirt
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
conn = libvirt.open(sys.argv[1])
conn.getVersion()
conn.close()
EOF
    else
        # No libvirt client at all: settle for the socket accepting connections.
        python3 - "$SOCK" >/dev/null 2>&1 <<'EOF'
import socket
import sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
EOF
    fi
}

stop_sandbox() {
    local pid members=() guests=() p
    pid=$(daemon_pid) || pid=""
    mapfile -t members < <(ns_members)
    for p in "${members[@]}"; do
        [[ $p == "$pid" ]] || guests+=("$p")
    done
    # Guests first, while libvirtd still runs, so it notices and cleans up after them.
    if ((${#guests[@]})); then
        kill -TERM "${guests[@]}" 2>/dev/null || true
        wait_gone 10 "${guests[@]}" || { kill -KILL "${guests[@]}" 2>/dev/null || true; }
        wait_gone 5 "${guests[@]}" || true
    fi
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone 15 "$pid"; then
            log "libvirtd $pid ignored SIGTERM, killing it"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone 5 "$pid" || true
        fi
    fi
    # Stragglers left in the namespace (helpers, or guests of a daemon that died earlier).
    mapfile -t members < <(ns_members)
    if ((${#members[@]})); then
        kill -KILL "${members[@]}" 2>/dev/null || true
        wait_gone 5 "${members[@]}" || true
    fi
    rm -f "$PIDFILE" "$STATEDIR/uri"
}

# --- actions --------------------------------------------------------------------------------
# One start/stop at a time per STATEDIR (the daemon must not inherit fd 9: see `9>&-`).
exec 9>"$STATEDIR/.lock"
flock -w 300 9 || die "another $0 holds $STATEDIR/.lock"

case $ACTION in
    status)
        if daemon_pid >/dev/null && answers; then
            echo "$URI"
            exit 0
        fi
        exit 1
        ;;
    stop)
        stop_sandbox
        log "stopped ($STATEDIR)"
        exit 0
        ;;
esac

# start
if pid=$(daemon_pid); then
    deadline=$((SECONDS + TIMEOUT))
    until answers; do
        alive "$pid" || die "libvirtd $pid died; see $LOGFILE"
        ((SECONDS < deadline)) || die "libvirtd $pid does not answer on $URI"
        sleep 0.1
    done
    log "already running (pid $pid)"
    echo "$URI" >"$STATEDIR/uri"
    echo "$URI"
    exit 0
fi
# Not running: clear what a dead daemon may have left (guests, sockets, pid files).
stop_sandbox
rm -f "$SOCKDIR"/libvirt-sock* "$SOCKDIR"/libvirt-admin-sock

missing=()
for pkg in libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
fi
command -v libvirtd >/dev/null || die "libvirtd not found"
command -v unshare >/dev/null || die "unshare (util-linux) not found"

umask 022
mkdir -p "$STATEDIR"/{etc,run,lib,cache,log}
chmod 0700 "$STATEDIR/run"
if [[ -n $CAPS_SEED && -d $CAPS_SEED ]] && ! compgen -G "$CAPS_DIR/*.xml" >/dev/null; then
    mkdir -p "$CAPS_DIR"
    cp -p "$CAPS_SEED"/*.xml "$CAPS_DIR/" 2>/dev/null || true
fi
[[ -s $STATEDIR/host-uuid ]] || cat /proc/sys/kernel/random/uuid >"$STATEDIR/host-uuid"

if [[ ${LIBVIRTD_SANDBOX_DEBUG:-0} == 1 ]]; then
    log_settings="log_filters = \"1:qemu 1:libvirt 1:util.command 3:*\"
log_outputs = \"1:file:$LOGFILE\""
else
    log_settings="log_outputs = \"3:file:$LOGFILE\""
fi
cat >"$STATEDIR/etc/libvirtd.conf" <<EOF
# Generated by scripts/libvirtd-sandbox.sh; rewritten on every start.
unix_sock_dir = "$SOCKDIR"
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
listen_tls = 0
listen_tcp = 0
host_uuid = "$(<"$STATEDIR/host-uuid")"
$log_settings
EOF

if [[ ${LIBVIRTD_SANDBOX_CGROUPS:-0} == 1 ]]; then
    cgroups=""
else
    cgroups="cgroup_controllers = [ ]"
fi
cat >"$STATEDIR/etc/qemu.conf" <<EOF
# Generated by scripts/libvirtd-sandbox.sh; rewritten on every start.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
stdio_handler = "file"
$cgroups
EOF

# The compiled-in default QEMU user must resolve (see the header).
passwd_bind=0
if ! getent passwd libvirt-qemu >/dev/null || ! getent group libvirt-qemu >/dev/null; then
    id_=64055
    while getent passwd "$id_" >/dev/null || getent group "$id_" >/dev/null; do
        id_=$((id_ + 1))
    done
    cp /etc/passwd "$STATEDIR/passwd"
    cp /etc/group "$STATEDIR/group"
    getent passwd libvirt-qemu >/dev/null \
        || echo "libvirt-qemu:x:$id_:$id_:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin" \
            >>"$STATEDIR/passwd"
    getent group libvirt-qemu >/dev/null || echo "libvirt-qemu:x:$id_:" >>"$STATEDIR/group"
    passwd_bind=1
fi

kvm_bind=0
if [[ -e /dev/kvm ]]; then
    : >"$STATEDIR/kvm-blocker"
    chmod 0000 "$STATEDIR/kvm-blocker"
    kvm_bind=1
fi

# Bind-mount targets must exist; these are the package's own (here unused) directories.
mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt

t0=$(date +%s%N)
# shellcheck disable=SC2016  # expanded by the inner shell
unshare --mount --propagation private -- /bin/bash -euc '
    S=$1 passwd_bind=$2 kvm_bind=$3
    if [[ $passwd_bind == 1 ]]; then
        mount --bind "$S/passwd" /etc/passwd
        mount --bind "$S/group" /etc/group
    fi
    mount --bind "$S/etc" /etc/libvirt
    mount --bind "$S/run" /run/libvirt
    mount --bind "$S/lib" /var/lib/libvirt
    mount --bind "$S/cache" /var/cache/libvirt
    mount --bind "$S/log" /var/log/libvirt
    if [[ $kvm_bind == 1 ]]; then
        mount --bind "$S/kvm-blocker" /dev/kvm
        mount -o remount,bind,ro /dev/kvm
    fi
    exec libvirtd --daemon --config "$S/etc/libvirtd.conf" --pid-file "$S/libvirtd.pid"
' sandbox "$STATEDIR" "$passwd_bind" "$kvm_bind" \
    </dev/null >>"$STATEDIR/libvirtd.stdout" 2>&1 9>&- \
    || die "libvirtd failed to start; see $LOGFILE and $STATEDIR/libvirtd.stdout"

deadline=$((SECONDS + TIMEOUT))
until pid=$(daemon_pid); do
    ((SECONDS < deadline)) || die "no libvirtd pid file after ${TIMEOUT}s; see $LOGFILE"
    sleep 0.05
done
until answers; do
    alive "$pid" || { stop_sandbox; die "libvirtd $pid died during start-up; see $LOGFILE"; }
    ((SECONDS < deadline)) || { stop_sandbox; die "libvirtd does not answer on $URI"; }
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
if [[ -n $CAPS_SEED ]] && compgen -G "$CAPS_DIR/*.xml" >/dev/null; then
    # Publish the (possibly re-probed) cache for the next sandbox; rename keeps it atomic.
    mkdir -p "$CAPS_SEED"
    for f in "$CAPS_DIR"/*.xml; do
        name=${f##*/}
        if ! cmp -s "$f" "$CAPS_SEED/$name"; then
            cp -p "$f" "$CAPS_SEED/.$name.$$" && mv -f "$CAPS_SEED/.$name.$$" "$CAPS_SEED/$name"
        fi
    done
fi
log "libvirtd pid $pid answers after ${ms} ms on $URI"
echo "$URI" >"$STATEDIR/uri"
echo "$URI"
