#!/usr/bin/env bash
# Builds the tiny guest used by the real-libvirt end-to-end tier, from Debian packages only:
#   OUTDIR/vmlinuz     the newest Debian linux-image-6.1.0-*-amd64 kernel (direct kernel boot)
#   OUTDIR/initrd.img  a ~1 MB busybox-static initramfs (cpio newc, gzip) whose /init mounts
#                      proc/sys/dev, prints GOVCLOUD-GUEST-BOOTED on the console and then idles.
# Boot with kernel cmdline "console=ttyS0" and >= 96 MiB of guest RAM.
#
# Usage: scripts/build-tiny-guest.sh OUTDIR
# Idempotent: does nothing when both outputs already exist (delete them to rebuild).
# Missing apt packages (busybox-static, cpio) are installed when run as root.
# Prints the two output paths (kernel, then initrd) on stdout; progress goes to stderr.
set -euo pipefail

MARKER="GOVCLOUD-GUEST-BOOTED"

die() { echo "build-tiny-guest: $*" >&2; exit 1; }
log() { echo "build-tiny-guest: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: $0 OUTDIR"
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
KERNEL="$OUTDIR/vmlinuz"
INITRD="$OUTDIR/initrd.img"

if [[ -s $KERNEL && -s $INITRD ]]; then
    log "cached: $KERNEL $INITRD"
    printf '%s\n%s\n' "$KERNEL" "$INITRD"
    exit 0
fi

# Serialise concurrent builds into the same OUTDIR, then re-check the cache.
exec 9>"$OUTDIR/.build.lock"
flock 9
if [[ -s $KERNEL && -s $INITRD ]]; then
    printf '%s\n%s\n' "$KERNEL" "$INITRD"
    exit 0
fi

apt_updated=0
apt_update() {
    if ((apt_updated == 0)); then
        log "apt-get update"
        apt-get update -qq >&2
        apt_updated=1
    fi
}

# --- tools ----------------------------------------------------------------------------------
missing=()
for pkg in busybox-static cpio gzip; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing apt packages ${missing[*]} (re-run as root to install)"
    apt_update
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
fi
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found (package busybox-static)"
# The guest has no shared libraries: insist on the static build.
if LC_ALL=C ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked; install busybox-static"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tiny-guest.XXXXXX")
trap 'rm -rf "$WORK" "$KERNEL.tmp.$$" "$INITRD.tmp.$$"' EXIT

# --- kernel ---------------------------------------------------------------------------------
# Newest linux-image-6.1.0-N-amd64 that apt can actually download (has a Filename).
newest_kernel_pkg() {
    local name
    for name in $(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null \
                  | grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -rV); do
        if apt-cache show "$name" 2>/dev/null | grep -q '^Filename:'; then
            echo "$name"
            return 0
        fi
    done
    return 1
}

download_kernel_deb() {  # download_kernel_deb DIR: newest kernel .deb into DIR, prints path
    local dir=$1 pkg debs
    pkg=$(newest_kernel_pkg) || return 1
    log "downloading $pkg"
    (cd "$dir" && apt-get download -qq "$pkg" >&2) || return 1
    debs=("$dir"/*.deb)
    [[ -f ${debs[0]} ]] || return 1
    echo "${debs[0]}"
}

if [[ ! -s $KERNEL ]]; then
    mkdir -p "$WORK/deb"
    # apt-get download as root drops to the _apt user when it can: let it write here.
    if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
        chmod 0755 "$WORK"
        chown _apt "$WORK/deb"
    fi
    # Missing or stale apt lists (fresh CI machine, superseded kernel): update, then retry.
    deb=$(download_kernel_deb "$WORK/deb") || {
        [[ $(id -u) -eq 0 ]] || die "cannot download linux-image-6.1.0-*-amd64 (not root)"
        apt_update
        deb=$(download_kernel_deb "$WORK/deb") \
            || die "cannot download linux-image-6.1.0-*-amd64 from apt"
    }
    # Same result as `dpkg-deb -x` + picking boot/vmlinuz-*, but tar stops at the first match
    # (the 4th member) instead of unpacking ~400 MB of modules: 0.1 s instead of ~6 s.
    # dpkg-deb then dies of SIGPIPE, hence no pipefail here; the result is checked below.
    mkdir -p "$WORK/kernel"
    set +o pipefail
    dpkg-deb --fsys-tarfile "$deb" 2>/dev/null \
        | tar -x -C "$WORK/kernel" --occurrence=1 --wildcards './boot/vmlinuz-*' || true
    set -o pipefail
    vmlinuzes=("$WORK"/kernel/boot/vmlinuz-*)
    if [[ ! -s ${vmlinuzes[0]} ]]; then
        dpkg-deb -x "$deb" "$WORK/kernel"
        vmlinuzes=("$WORK"/kernel/boot/vmlinuz-*)
    fi
    vmlinuz=${vmlinuzes[0]}
    [[ -s $vmlinuz ]] || die "no boot/vmlinuz-* in $deb"
    install -m 0644 "$vmlinuz" "$KERNEL.tmp.$$"
    mv -f "$KERNEL.tmp.$$" "$KERNEL"
    log "kernel $(basename "$vmlinuz") -> $KERNEL"
fi

# --- initramfs ------------------------------------------------------------------------------
if [[ ! -s $INITRD ]]; then
    root="$WORK/root"
    mkdir -p "$root"/{bin,dev,proc,sys,tmp,run}
    install -m 0755 "$BUSYBOX" "$root/bin/busybox"
    for applet in sh mount mkdir echo sleep cat poweroff; do
        ln -s busybox "$root/bin/$applet"
    done
    # The kernel opens /dev/console for init before /init runs; the node can only be made as
    # root. Without it /init mounts devtmpfs and re-opens the console itself.
    if [[ $(id -u) -eq 0 ]]; then
        mknod -m 600 "$root/dev/console" c 5 1
        mknod -m 666 "$root/dev/null" c 1 3
    fi
    cat >"$root/init" <<EOF
#!/bin/busybox sh
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin 2>/dev/null
echo "$MARKER"
while :; do sleep 3600; done
EOF
    chmod 0755 "$root/init"
    (cd "$root" && find . -print0 | LC_ALL=C sort -z \
        | cpio --null -o -H newc --owner 0:0 --quiet) | gzip -9n >"$INITRD.tmp.$$"
    chmod 0644 "$INITRD.tmp.$$"
    mv -f "$INITRD.tmp.$$" "$INITRD"
    log "initramfs ($(stat -c %s "$INITRD") bytes) -> $INITRD"
fi

printf '%s\n%s\n' "$KERNEL" "$INITRD"
