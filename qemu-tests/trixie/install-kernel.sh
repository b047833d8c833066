#!/bin/bash
# Put a Debian kernel into an OS tree where ostree looks for it: replaces
# usr/lib/modules with KVER's vmlinuz, rootstock's initramfs INITRAMFS next
# to it, and the modules of modules.list with their dependencies (depmod by
# the tree's own kmod). Used by ostree-ready.sh, and for a commit of the
# same tree built for another kernel (qemu-tests/src/trixie.rs).
# Usage: install-kernel.sh TREE KERNEL_ROOT KVER INITRAMFS
# (KERNEL_ROOT: an unpacked linux-image package: boot/, lib/modules/)
set -euo pipefail
exec </dev/null
umask 022
die() { echo "install-kernel.sh: $*" >&2; exit 1; }
[ $# -eq 4 ] || die "usage: install-kernel.sh TREE KERNEL_ROOT KVER INITRAMFS"
here=$(dirname "$(readlink -f "$0")")
tree=$1 kroot=$(readlink -f "$2") kver=$3 initramfs=$(readlink -f "$4")
cd "$tree"
src=$kroot/lib/modules/$kver
moddir=usr/lib/modules/$kver
rm -rf usr/lib/modules && mkdir -p "$moddir"
cp "$kroot/boot/vmlinuz-$kver" "$moddir/vmlinuz"
cp "$initramfs" "$moddir/initramfs.img"
sed 's/#.*//' "$here/modules.list" | while read -r m; do
    [ -n "$m" ] || continue
    modprobe -d "$kroot" -S "$kver" --show-depends "$m" || die "module $m: not in $src"
done | awk '$1 == "insmod" { print $2 }' | sort -u | while read -r ko; do
    install -D -m 0644 "$ko" "$moddir/${ko#"$src"/}"
done
cp "$src"/modules.builtin "$src"/modules.builtin.modinfo "$src"/modules.order "$moddir/"
chroot . depmod "$kver"
