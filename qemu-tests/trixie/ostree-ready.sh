#!/bin/bash
# Turn a debootstrapped Debian trixie tree (TREE, a copy: it is changed in
# place) into the tree of an OSTree commit that boots through rootstock with
# systemd as init: the layout a real OSTree OS has, nothing taken from the
# build host, the Debian kernel with the modules a QEMU guest needs,
# rootstock's initramfs, rootstock (bless) and the test OS's report unit.
# Usage: ostree-ready.sh TREE
# Env: TRIXIE_KERNEL_ROOT (an unpacked linux-image package: boot/,
# lib/modules/), TRIXIE_KVER, TRIXIE_INITRAMFS (rootstock's initramfs),
# TRIXIE_ROOTSTOCK (the static binary), TRIXIE_BLESS_UNIT and
# TRIXIE_ROLLBACK_UNIT (systemd/rootstock-{bless,rollback}.service).
# Or TRIXIE_PACKAGED=1 and none of them: rootstock's package and a kernel
# package are installed in TREE already, the kernel moved to
# usr/lib/modules/KVER/vmlinuz and rootstock's hook made initramfs.img
# beside it (qemu-tests/src/packaged.rs).
set -euo pipefail
exec </dev/null
umask 022
die() { echo "ostree-ready.sh: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: ostree-ready.sh TREE"
tree=$1 here=$(dirname "$(readlink -f "$0")")
packaged=${TRIXIE_PACKAGED:-}
if [ -z "$packaged" ]; then
    kroot=${TRIXIE_KERNEL_ROOT:?} kver=${TRIXIE_KVER:?}
    initramfs=${TRIXIE_INITRAMFS:?} rootstock=${TRIXIE_ROOTSTOCK:?} bless=${TRIXIE_BLESS_UNIT:?}
    rollback=${TRIXIE_ROLLBACK_UNIT:?}
fi
cd "$tree"
[ -f usr/lib/os-release ] || die "$tree has no usr/lib/os-release (systemd's switch-root refuses it)"
if [ ! -d etc ] || [ -e usr/etc ]; then die "$tree must have etc/ and no usr/etc/ (prepared twice?)"; fi
# usr-merged (trixie always is): every program lives under /usr.
for d in bin sbin lib lib64; do
    [ -L $d ] || die "$d is not a symlink into usr/: the tree is not usr-merged"
done

# Nothing from the build host: debootstrap copies its hostname and
# resolv.conf. An empty machine-id: each machine makes its own at boot, and
# it is not a "first boot" (which would run systemd-firstboot and preset-all).
echo trixie-ostree >etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\ttrixie-ostree\n::1\tlocalhost ip6-localhost ip6-loopback\n' >etc/hosts
rm -f etc/resolv.conf var/lib/dbus/machine-id
: >etc/machine-id
# systemd-firstboot must never prompt on the console: locale, timezone and
# keymap are set, root has an (empty: a throw-away VM) password, and the unit
# is masked anyway.
echo LANG=C.UTF-8 >etc/locale.conf
echo KEYMAP=us >etc/vconsole.conf
if [ -e usr/share/zoneinfo/Etc/UTC ]; then
    ln -sfn ../usr/share/zoneinfo/Etc/UTC etc/localtime
    echo Etc/UTC >etc/timezone
else
    rm -f etc/localtime # UTC
fi
sed -i 's/^root:[^:]*:/root::/' etc/shadow
ln -sfn /dev/null etc/systemd/system/systemd-firstboot.service

# rootstock in the OS: the static binary (status, bless, rollback), its
# bless and rollback units enabled; the test OS's report, health check
# (required by boot-complete.target) and boot-complete marker units enabled.
if [ -z "$packaged" ]; then
    install -D -m 0755 "$rootstock" usr/bin/rootstock
    install -D -m 0644 "$bless" usr/lib/systemd/system/rootstock-bless.service
    install -D -m 0644 "$rollback" usr/lib/systemd/system/rootstock-rollback.service
else
    [ -x usr/bin/rootstock ] || die "TRIXIE_PACKAGED: rootstock's package is not installed in $tree"
    ls usr/lib/modules/*/vmlinuz usr/lib/modules/*/initramfs.img >/dev/null ||
        die "TRIXIE_PACKAGED: no usr/lib/modules/KVER/{vmlinuz,initramfs.img} in $tree"
fi
for u in testos-report.service testos-health.service testos-complete.service; do
    install -m 0644 "$here/$u" usr/lib/systemd/system/$u
done
for f in testos-report testos-soft-reboot testos-rollback testos-health; do
    install -D -m 0755 "$here/$f" usr/libexec/$f
done
mkdir -p etc/systemd/system/multi-user.target.wants etc/systemd/system/boot-complete.target.requires
for u in rootstock-bless.service rootstock-rollback.service testos-report.service testos-complete.service; do
    ln -sfn "/usr/lib/systemd/system/$u" "etc/systemd/system/multi-user.target.wants/$u"
done
ln -sfn /usr/lib/systemd/system/testos-health.service etc/systemd/system/boot-complete.target.requires/

# The kernel where ostree looks for it, its modules and rootstock's initramfs.
[ -n "$packaged" ] || "$here/install-kernel.sh" . "$kroot" "$kver" "$initramfs"

# OSTree's layout. /etc lives in /usr/etc (ostree merges it into each
# deployment's /etc); /var is empty (the stateroot's /var is shared and
# tmpfiles.d recreates what is needed in it); the mount points of the API
# filesystems are empty, with no device nodes; /sysroot is where the physical
# root is mounted; the top-level directories that hold state are symlinks
# into /var (or /run), as in every OSTree OS.
mv etc usr/etc
rm -rf var dev proc sys run tmp boot
mkdir -m 0755 var dev proc sys run boot sysroot
mkdir -m 1777 tmp
ln -s sysroot/ostree ostree
for d in home srv opt mnt; do rm -rf "$d" && ln -s "var/$d" "$d"; done
rm -rf root && ln -s var/roothome root
rm -rf media && ln -s run/media media
rm -rf usr/local && ln -s ../var/usrlocal usr/local
cat >usr/lib/tmpfiles.d/ostree-layout.conf <<'EOF'
# The targets of the OSTree layout's symlinks (/home -> var/home, ...).
d /var/home 0755 root root -
d /var/roothome 0700 root root -
d /var/srv 0755 root root -
d /var/opt 0755 root root -
d /var/mnt 0755 root root -
d /var/usrlocal 0755 root root -
d /var/usrlocal/bin 0755 root root -
d /var/usrlocal/sbin 0755 root root -
d /run/media 0755 root root -
EOF
# tmpfiles.d lines for /home, /srv and /root would find symlinks (and fail
# the unit): point them at the symlinks' targets.
sed -i -E \
    -e 's#^([^#[:space:]]+[[:space:]]+)/home([/[:space:]]|$)#\1/var/home\2#' \
    -e 's#^([^#[:space:]]+[[:space:]]+)/srv([/[:space:]]|$)#\1/var/srv\2#' \
    -e 's#^([^#[:space:]]+[[:space:]]+)/root([/[:space:]]|$)#\1/var/roothome\2#' \
    usr/lib/tmpfiles.d/*.conf
if grep -Eq '^[^#[:space:]]+[[:space:]]+/(home|srv|root)([/[:space:]]|$)' usr/lib/tmpfiles.d/*.conf; then
    die "tmpfiles.d still names /home, /srv or /root"
fi
# No device node, FIFO or socket anywhere (ostree commit refuses them).
find . -xdev \( -type b -o -type c -o -type p -o -type s \) -delete
