#!/bin/bash
# Benchmark: `rootstock mkinitramfs` (generic set, its default zstd) against
# Debian's initramfs-tools (`mkinitramfs`, MODULES=most, its default zstd)
# and dracut (`--no-hostonly --zstd`), for the same kernel (trixie's
# linux-image-6.12…-amd64) in the same Debian trixie chroot, interleaved.
# Prints wall time (median of RUNS) and image bytes per tool, and each
# tool's time as a ratio to initramfs-tools' (Debian's default).
# Needs root, network to Debian's mirror (initramfs-tools-core and
# dracut-core are installed into the chroot), the trixie tree and kernel
# package the QEMU tests cache (`qemu-tests/run installing_a_kernel` makes
# both), and `make static`. Usage: benches/mkinitramfs.sh [RUNS]
# (>benches/mkinitramfs.md)
set -euo pipefail
runs=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
host=${ROOTSTOCK_HOST_BIN:-$here/target/static/rootstock}
boot=${ROOTSTOCK_BOOT_BIN:-$here/target/static/rootstock-boot}
rootfs=$(find "$here/.cache/trixie" -maxdepth 1 -name 'debootstrap-*' -type d | head -n 1)
debs=$here/.cache/debs-trixie
kdeb=$(find "$debs" -name 'linux-image-6.12*-amd64_*.deb' | head -n 1)
base=$(find "$debs" -name 'linux-base_*.deb' | head -n 1)
for f in "$host" "$boot" "$rootfs" "$kdeb" "$base"; do
    [ -e "$f" ] || { echo "needs ${f:-the trixie tree and kernel package} (see the header)" >&2; exit 1; }
done
kver=$(basename "$kdeb" | sed 's/^linux-image-\(.*\)_.*_amd64\.deb$/\1/')
t=$(mktemp -d -p /dev/shm rootstock-mkinitramfs.XXXXXX)
trap 'rm -rf "$t"' EXIT
cp -a "$rootfs" "$t/root"
rm -f "$t/root/etc/resolv.conf" && cp /etc/resolv.conf "$t/root/etc/resolv.conf"
cp "$kdeb" "$base" "$t/root/tmp/"
install -m 0755 "$host" "$t/root/tmp/rootstock"
install -m 0755 "$boot" "$t/root/tmp/rootstock-boot"
mkdir "$t/root/tmp/lists" && cp "$here"/initramfs/*.list "$t/root/tmp/lists/"
export t runs kver
echo "mkinitramfs, $(date -u +%F): benches/mkinitramfs.sh $runs on $(nproc) cores, kernel $kver, load average $(cut -d' ' -f1 /proc/loadavg) at the start."
echo
# shellcheck disable=SC2016 # expanded by the inner shells
unshare -m --propagation private bash -c '
set -euo pipefail
for d in proc sys dev; do mount --rbind /$d "$t/root/$d"; mount --make-rslave "$t/root/$d"; done
chroot "$t/root" /bin/sh -ec "
  export DEBIAN_FRONTEND=noninteractive
  apt-get -qq update
  apt-get install -y -qq --no-install-recommends initramfs-tools-core dracut-core zstd >/dev/null
  dpkg -i /tmp/linux-base_*.deb >/dev/null && dpkg --force-depends -i /tmp/linux-image-*.deb >/dev/null 2>&1
  echo \"initramfs-tools-core \$(dpkg-query -W -f=\"\\\${Version}\" initramfs-tools-core), dracut-core \$(dpkg-query -W -f=\"\\\${Version}\" dracut-core)\"
"
run() { # NAME COMMAND...: seconds of one run
    local s e name=$1
    shift
    s=$(date +%s.%N)
    chroot "$t/root" "$@" >"$t/$name.log" 2>&1 || { echo "$name failed:" >&2; tail -n 20 "$t/$name.log" >&2; exit 1; }
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" "BEGIN { print e - s }"
}
declare -A times
for _ in $(seq "$runs"); do
    times[rootstock]+="$(run rootstock /tmp/rootstock mkinitramfs --kver "$kver" --list-dir /tmp/lists \
        --binary /tmp/rootstock-boot /tmp/rootstock.img) "
    times[initramfs-tools]+="$(run initramfs-tools mkinitramfs -o /tmp/initramfs-tools.img "$kver") "
    times[dracut]+="$(run dracut dracut --quiet --force --no-hostonly --zstd --kver "$kver" /tmp/dracut.img) "
done
median() { tr " " "\n" | grep . | sort -g | awk "{ v[NR] = \$1 } END { print v[int((NR + 1) / 2)] }"; }
it=$(echo "${times[initramfs-tools]}" | median)
echo
echo "| tool | median s | runs (s) | image bytes | time / initramfs-tools |"
echo "|---|---|---|---|---|"
for tool in rootstock initramfs-tools dracut; do
    m=$(echo "${times[$tool]}" | median)
    printf "| %s | %.2f | %s | %s | %.2f× |\n" "$tool" "$m" "$(echo "${times[$tool]}" | xargs printf "%.2f ")" \
        "$(stat -c %s "$t/root/tmp/$tool.img")" "$(awk -v m="$m" -v i="$it" "BEGIN { print m / i }")"
done
'
