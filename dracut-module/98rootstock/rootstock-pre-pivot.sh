#!/bin/sh
# rootstock in a dracut initramfs without systemd (pre-pivot hook, sourced by
# dracut): lay out the OSTree deployment on $NEWROOT before dracut switches root.
# shellcheck source=/dev/null
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

if [ -n "$(getarg ostree=)" ]; then
    /usr/lib/rootstock/rootstock-boot prepare-root "${NEWROOT:-/sysroot}" \
        || die "rootstock prepare-root failed: see the messages above"
fi
