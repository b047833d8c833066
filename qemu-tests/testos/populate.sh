#!/bin/sh
# TESTOS_POPULATE hook of tests/fixtures/make-sysroot.sh: turn the fixture's
# fake tree TREE into a bootable busybox OS, version N.
# Env: TESTOS_KERNEL (a vmlinuz), TESTOS_KVER, TESTOS_BUSYBOX (default /bin/busybox),
# TESTOS_INITRAMFS (optional). Without an initramfs in the tree, ostree 2022.7
# writes `init=.../ostree-prepare-root` into the BLS options (its no-initramfs
# mode), so a placeholder stands in: QEMU gets the initramfs under test by -initrd.
# TESTOS_KERNEL_N, TESTOS_KVER_N, TESTOS_INITRAMFS_N (N = the deployment's
# number) give deployment N a kernel of its own instead. ROOTSTOCK_HOST_BIN
# (optional): the static rootstock binary, installed as usr/bin/rootstock so
# the test OS can run `rootstock bless` and `rootstock status`.
set -eu
tree=$1 n=$2 here=$(dirname "$(readlink -f "$0")")
eval "own_kernel=\${TESTOS_KERNEL_$n:-}"
if [ -n "$own_kernel" ]; then
    eval "TESTOS_KVER=\${TESTOS_KVER_$n:?TESTOS_KVER_$n must go with TESTOS_KERNEL_$n}"
    eval "TESTOS_INITRAMFS=\${TESTOS_INITRAMFS_$n:-}"
    TESTOS_KERNEL=$own_kernel
fi
: "${TESTOS_KERNEL:?} ${TESTOS_KVER:?}"
bb=${TESTOS_BUSYBOX:-/bin/busybox}
cd "$tree"
rm -rf usr/lib/modules/* usr/sbin/init
mkdir -p dev proc sys run tmp "usr/lib/modules/$TESTOS_KVER"
install -m 0755 "$bb" usr/bin/busybox
# The applet list from the busybox itself; one of another architecture runs
# only where qemu-user's binfmt handler is registered, else the host's
# busybox (Debian's busybox-static of the same release: the same applets).
applets=$("$bb" --list 2>/dev/null) || applets=$(/bin/busybox --list)
for a in $applets; do
    case $a in busybox | init | linuxrc) ;; *) ln -s busybox "usr/bin/$a" ;; esac
done
install -m 0755 "$here/init" usr/sbin/init
if [ -n "${ROOTSTOCK_HOST_BIN:-}" ]; then
    install -m 0755 "$ROOTSTOCK_HOST_BIN" usr/bin/rootstock
fi
cp "$TESTOS_KERNEL" "usr/lib/modules/$TESTOS_KVER/vmlinuz"
if [ -n "${TESTOS_INITRAMFS:-}" ]; then
    cp "$TESTOS_INITRAMFS" "usr/lib/modules/$TESTOS_KVER/initramfs.img"
else
    echo "placeholder initramfs" >"usr/lib/modules/$TESTOS_KVER/initramfs.img"
fi
