#!/bin/bash
# dracut module: rootstock lays out the OSTree deployment on /sysroot.
# Opt-in (`--add rootstock` or add_dracutmodules+=" rootstock "). It replaces
# ostree's own module when both are included: its sorted name (98rootstock
# after 98ostree) makes this install() run last, and it masks ostree's unit
# (systemd) or removes any ostree pre-pivot hook (no systemd; Debian's ostree
# module installs only its unit, which nothing starts there), so exactly one
# of them lays out the deployment.

# moddir, initdir, dracutsysrootdir, systemdsystemunitdir, SYSTEMCTL come from dracut;
# hostonly is read by instmods.
# shellcheck disable=SC2154,SC2034

# The boot program to install: /usr/lib/rootstock/rootstock-boot (where the
# rootstock package puts it), or the file ROOTSTOCK_BOOT_BIN names (from the
# environment or dracut.conf: e.g. a build of the checkout; the QEMU tests in
# qemu-tests/src/dracut.rs use it). Like every file dracut installs, a path
# in the system the image is for: relative to --sysroot (dracutsysrootdir).
# The image always has it at /usr/lib/rootstock/rootstock-boot.
rootstock_boot_src() {
    printf '%s\n' "${ROOTSTOCK_BOOT_BIN:-/usr/lib/rootstock/rootstock-boot}"
}

# The ELF machine (e_machine) of FILE as a name (x86_64, aarch64, or
# "machine N"); nothing when FILE is not a little-endian ELF file.
elf_machine() {
    local magic machine
    magic=$(od -An -tx1 -N6 "$1" 2>/dev/null | tr -d ' \n')
    [[ $magic == 7f454c46??01 ]] || return 0
    machine=$(od -An -tu1 -j18 -N2 "$1" | awk '{ print $1 + 256 * $2 }')
    case $machine in
        62) echo x86_64 ;;
        183) echo aarch64 ;;
        *) echo "machine $machine" ;;
    esac
}

# The machine the image's kernel is built for: that of one of its modules
# (srcmods, from dracut: /lib/modules/KVER or --kmoddir). Nothing when the
# kernel has no uncompressed module to read.
kernel_machine() {
    local ko
    ko=$(find "${srcmods-}" -name '*.ko' -type f -print -quit 2>/dev/null)
    [ -n "$ko" ] && elf_machine "$ko"
}

check() {
    local src bin_machine kernel
    src=$(rootstock_boot_src)
    if ! [[ -f ${dracutsysrootdir-}$src && -x ${dracutsysrootdir-}$src ]]; then
        dinfo "dracut module 'rootstock' will not be installed, because ${dracutsysrootdir-}$src is missing"
        return 1
    fi
    # PID 1's program must run on the image's machine: an arm64 image gets
    # the arm64 build (what the arm64 package installs, or ROOTSTOCK_BOOT_BIN).
    bin_machine=$(elf_machine "${dracutsysrootdir-}$src")
    kernel=$(kernel_machine)
    if [[ -n $bin_machine && -n $kernel && $bin_machine != "$kernel" ]]; then
        derror "dracut module 'rootstock' cannot be installed: ${dracutsysrootdir-}$src is built for $bin_machine, the kernel's modules (${srcmods-}) for $kernel; set ROOTSTOCK_BOOT_BIN to a rootstock-boot built for $kernel"
        return 1
    fi
    return 255
}

depends() {
    return 0
}

installkernel() {
    # [etc] transient = true mounts /etc as an overlay; composefs mounts the
    # deployment's EROFS image (through a loop device before Linux 6.12)
    # under an overlay. systemd's initramfs loads them when mounted.
    hostonly='' instmods overlay erofs loop
}

install() {
    # inst, not inst_simple: dracut 059's inst_simple checks the source
    # outside --sysroot.
    inst "$(rootstock_boot_src)" /usr/lib/rootstock/rootstock-boot || return 1
    local conf keypath
    # rootstock's config, and ostree's (prepare-root.conf and the composefs
    # signing key, as ostree's own module copies them).
    for conf in /usr/lib/rootstock/rootstock.conf /etc/rootstock/rootstock.conf \
        /usr/lib/ostree/prepare-root.conf /etc/ostree/prepare-root.conf; do
        [ -e "${dracutsysrootdir-}$conf" ] && inst_simple "$conf"
    done
    keypath=$(sed -n 's/^[[:space:]]*keypath[[:space:]]*=[[:space:]]*//p' \
        "${dracutsysrootdir-}"/etc/ostree/prepare-root.conf 2>/dev/null \
        || sed -n 's/^[[:space:]]*keypath[[:space:]]*=[[:space:]]*//p' \
            "${dracutsysrootdir-}"/usr/lib/ostree/prepare-root.conf 2>/dev/null)
    keypath=${keypath:-/etc/ostree/initramfs-root-binding.key}
    [ -e "${dracutsysrootdir-}$keypath" ] && inst_simple "$keypath"
    if dracut_module_included systemd; then
        inst_simple "$moddir/rootstock-prepare-root.service" \
            "$systemdsystemunitdir/rootstock-prepare-root.service"
        $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target rootstock-prepare-root.service
        inst_script "$moddir/rootstock-generator.sh" "$systemdutildir/system-generators/rootstock-generator"
        if dracut_module_included ostree; then
            $SYSTEMCTL -q --root "$initdir" mask ostree-prepare-root.service
        fi
    else
        inst_hook pre-pivot 50 "$moddir/rootstock-pre-pivot.sh"
        if dracut_module_included ostree; then
            rm -f "$initdir"/lib/dracut/hooks/pre-pivot/*ostree*.sh
        fi
    fi
}
