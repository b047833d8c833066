#!/bin/bash
# Benchmark: one `prepare-root` on an OSTree sysroot, rootstock against Debian's
# ostree-prepare-root (the baseline), alternating, in the same chroot and mount
# namespace. Prints per-tool median/mean in ms and the ratio. Needs root,
# ostree-boot, and the static binary (`make static`). Usage: prepare-root.sh [RUNS]
# (the figures docs/benchmarks.md explains: >benches/prepare-root.md)
set -euo pipefail
runs=${1:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${ROOTSTOCK_BOOT_BIN:-$here/target/static/rootstock-boot}
[ -x "$bin" ] || { echo "needs $bin (make static)" >&2; exit 1; }
baseline=/usr/lib/ostree/ostree-prepare-root
[ -x "$baseline" ] || { echo "needs $baseline (apt-get install ostree-boot)" >&2; exit 1; }
t=$(mktemp -d -p /dev/shm rootstock-bench.XXXXXX)
trap 'chattr -i "$t"/phys/ostree/deploy/*/deploy/*.0 2>/dev/null; rm -rf "$t"' EXIT
"$here/tests/fixtures/make-sysroot.sh" "$t/phys" 2 >/dev/null
arg=$(sed -n 's/^options .*\(ostree=[^ ]*\).*/\1/p' "$t"/phys/boot/loader/entries/ostree-2-*.conf)
echo "root=LABEL=testroot rw $arg" >"$t/cmdline"
cp "$bin" "$t/rootstock"
export t runs
echo "prepare-root, $(date -u +%F): benches/prepare-root.sh $runs on $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg) at the start."
echo
echo '```'
# shellcheck disable=SC2016 # expanded by the inner bash
unshare -m --propagation private bash -c '
set -euo pipefail
r=$t/root; mkdir -p "$r"; mount -t tmpfs none "$r"
mkdir -p "$r"/{usr,proc,sysroot,run,dev,etc}; ln -s usr/lib "$r/lib"; ln -s usr/lib64 "$r/lib64"; ln -s usr/bin "$r/bin"
mount --bind /usr "$r/usr"; mount -t proc proc "$r/proc"; mount --bind "$t/cmdline" "$r/proc/cmdline"
cp "$t/rootstock" "$r/rootstock"
one() {  # prints the wall time of one run in microseconds
  mount --bind "$t/phys" "$r/sysroot"; rm -rf "$r"/run/* "$r/sysroot.tmp"
  local a=$EPOCHREALTIME; chroot "$r" "$@" >/dev/null 2>&1; local b=$EPOCHREALTIME
  [ -e "$r/run/ostree-booted" ] || { echo "run failed: $*" >&2; exit 1; }
  umount -R "$r/sysroot"; umount -R "$r/sysroot" 2>/dev/null || true
  echo $(( (${b/./} - ${a/./}) ))
}
for i in $(seq "$runs"); do
  echo "rootstock $(one /rootstock prepare-root /sysroot)"
  echo "ostree-prepare-root $(one /usr/lib/ostree/ostree-prepare-root /sysroot)"
done' | awk '
{ v[$1][++n[$1]] = $2; s[$1] += $2 }
END {
  for (k in n) { m = asort(v[k], w); med[k] = (m % 2) ? w[(m+1)/2] : (w[m/2] + w[m/2+1]) / 2
    printf "%-20s runs=%d median=%.2f ms mean=%.2f ms\n", k, m, med[k]/1000, s[k]/m/1000 }
  printf "ratio rootstock/ostree-prepare-root (median): %.2f\n", med["rootstock"] / med["ostree-prepare-root"] }'
echo "rootstock binary: $(stat -c %s "$bin") bytes"
echo '```'
