#!/bin/sh
# systemd generator in the initramfs. For a commit without an initramfs,
# `ostree admin deploy` names ostree's own prepare-root as init=
# (init=/ostree/boot.N/.../usr/lib/ostree/ostree-prepare-root), and systemd's
# switch root would run it in the deployment. rootstock has done its job:
# switch root into the deployment's own init instead (/sbin/init; systemd
# re-executes itself when that is systemd). The last init= wins, as for
# the kernel. ROOTSTOCK_CMDLINE replaces /proc/cmdline (tests).
out=${1:-/run/systemd/generator}
found=
set -f # words of the command line, never globbed
# shellcheck disable=SC2013 # words, not lines
for arg in $(cat "${ROOTSTOCK_CMDLINE:-/proc/cmdline}"); do
    case $arg in
        init=*/usr/lib/ostree/ostree-prepare-root) found=${arg#init=} ;;
        init=*) found= ;;
    esac
done
[ -n "$found" ] || exit 0
mkdir -p "$out/initrd-switch-root.service.d" || exit 1
cat >"$out/initrd-switch-root.service.d/50-rootstock-init.conf" <<CONF
# rootstock: init=$found is ostree's prepare-root, whose job rootstock did.
[Service]
ExecStart=
ExecStart=systemctl --no-block switch-root /sysroot /sbin/init
CONF
