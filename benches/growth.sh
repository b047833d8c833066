#!/bin/bash
# Growth: how rootstock's cost grows with the size of what it reads.
#  - `prepare-root` (rootstock-boot, boot counting on) and Debian's
#    ostree-prepare-root against the number of deployments (1, 2, 10, 100,
#    1000, all of one commit, as repeated `ostree admin deploy --retain`
#    leaves them) and of stale boot-counting markers (markers of deployments
#    that are gone: 0, or as many as there are deployments);
#  - `rootstock status --json` the same;
#  - `rootstock mkinitramfs` for the QEMU set against the generic set, with
#    and without compression.
# Prints a Markdown table per part (median of RUNS runs, wall time).
# Needs root, ostree, ostree-boot, `make static`, the Debian kernel in
# .cache/kernel (qemu-tests fetch it). Usage: benches/growth.sh [RUNS] [COUNTS...]
# (the figures docs/benchmarks.md explains: >benches/growth.md)
set -euo pipefail
runs=${1:-20}
shift || true
counts=("${@:-1 2 10 100 1000}")
read -r -a counts <<<"${counts[*]}"
here=$(cd "$(dirname "$0")/.." && pwd)
boot=${ROOTSTOCK_BOOT_BIN:-$here/target/static/rootstock-boot}
host=${ROOTSTOCK_HOST_BIN:-$here/target/static/rootstock}
baseline=/usr/lib/ostree/ostree-prepare-root
for f in "$boot" "$host" "$baseline"; do [ -x "$f" ] || { echo "needs $f (make static; apt-get install ostree-boot)" >&2; exit 1; }; done
t=$(mktemp -d -p /dev/shm rootstock-growth.XXXXXX)
cleanup() {
    chattr -i "$t"/*/ostree/deploy/*/deploy/* 2>/dev/null || true
    rm -rf "$t"
}
trap cleanup EXIT
"$here/tests/fixtures/make-sysroot.sh" "$t/base" 1 >/dev/null
cp "$boot" "$t/rootstock-boot"

# grow DIR N STALE: the base sysroot with N deployments of its one commit
# (serials 0..N-1, BLS versions 1..N, the last the default) and STALE
# markers of deployments that no longer exist. Prints the default's ostree=.
grow() {
    local dir=$1 n=$2 stale=$3
    cp -a "$t/base" "$dir"
    chattr -i "$dir"/ostree/deploy/testos/deploy/*.0 2>/dev/null || true
    local dep entry bootlink bootdir csum i
    dep=$(ls -d "$dir"/ostree/deploy/testos/deploy/*.0)
    csum=${dep##*/}
    csum=${csum%.0}
    entry=$(ls "$dir"/boot/loader/entries/*.conf)
    bootlink=$(sed -n 's/^options .*ostree=\([^ ]*\).*/\1/p' "$entry")
    bootdir=$dir/ostree/$(readlink "$dir/ostree/$(echo "$bootlink" | cut -d/ -f3)")/$(echo "$bootlink" | cut -d/ -f4-5)
    for ((i = 1; i < n; i++)); do
        cp -al "$dep" "$dir/ostree/deploy/testos/deploy/$csum.$i"
        cp "$dep.origin" "$dir/ostree/deploy/testos/deploy/$csum.$i.origin"
        ln -s "../../../deploy/testos/deploy/$csum.$i" "$bootdir/$i"
        sed -e "s|^version .*|version $((i + 1))|" -e "s|^title .*|title TestOS (ostree:$i)|" \
            -e "s|ostree=${bootlink}|ostree=${bootlink%/0}/$i|" "$entry" \
            >"$dir/boot/loader/entries/ostree-$((i + 1))-testos.conf"
    done
    mkdir -p "$dir/ostree/rootstock"
    for ((i = 0; i < stale; i++)); do
        : >"$dir/ostree/rootstock/testos-$(printf '%064x' "$i").0+00-03"
    done
    echo "${bootlink%/0}/$((n - 1))"
}

median() { sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m / 1000 }'; }

# prepare-root in a chroot (a tmpfs root with the host's /usr, a fake
# /proc/cmdline) of a private mount namespace, as benches/prepare-root.sh.
# Prints "tool N STALE microseconds" per run.
prepare_root_runs() {
    local phys=$1 n=$2 stale=$3 ostree=$4
    echo "root=LABEL=testroot rw ostree=$ostree rootstock.tries=3" >"$t/cmdline"
    cp -a "$phys/ostree/rootstock" "$t/markers.pristine"
    export t runs phys n stale
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare -m --propagation private bash -c '
    set -euo pipefail
    r=$t/root; mkdir -p "$r"; mount -t tmpfs none "$r"
    mkdir -p "$r"/{usr,proc,sysroot,run,dev,etc}; ln -s usr/lib "$r/lib"; ln -s usr/lib64 "$r/lib64"; ln -s usr/bin "$r/bin"
    mount --bind /usr "$r/usr"; mount -t proc proc "$r/proc"; mount --bind "$t/cmdline" "$r/proc/cmdline"
    cp "$t/rootstock-boot" "$r/rootstock"
    one() {
      rm -rf "$phys/ostree/rootstock"; cp -a "$t/markers.pristine" "$phys/ostree/rootstock"
      mount --bind "$phys" "$r/sysroot"; rm -rf "$r"/run/* "$r/sysroot.tmp"
      local a=$EPOCHREALTIME; chroot "$r" "$@" >/dev/null 2>&1; local b=$EPOCHREALTIME
      [ -e "$r/run/ostree-booted" ] || { echo "run failed: $*" >&2; exit 1; }
      umount -R "$r/sysroot"; umount -R "$r/sysroot" 2>/dev/null || true
      echo $(( (${b/./} - ${a/./}) ))
    }
    for i in $(seq "$runs"); do
      echo "rootstock $n $stale $(one /rootstock prepare-root /sysroot)"
      echo "ostree-prepare-root $n $stale $(one /usr/lib/ostree/ostree-prepare-root /sysroot)"
    done'
    rm -rf "$t/markers.pristine"
}

status_runs() {
    local phys=$1 n=$2 stale=$3 i a b
    for ((i = 0; i < runs; i++)); do
        a=$EPOCHREALTIME
        "$host" status --json --sysroot "$phys" --root / --run-dir "$t" >/dev/null
        b=$EPOCHREALTIME
        echo "status $n $stale $((${b/./} - ${a/./}))"
    done
}

results=$t/results
: >"$results"
for n in "${counts[@]}"; do
    for stale in 0 "$n"; do
        phys=$t/phys-$n-$stale
        ostree=$(grow "$phys" "$n" "$stale")
        prepare_root_runs "$phys" "$n" "$stale" "$ostree" >>"$results"
        status_runs "$phys" "$n" "$stale" >>"$results"
        chattr -i "$phys"/ostree/deploy/*/deploy/* 2>/dev/null || true
        rm -rf "$phys"
    done
done

echo "Growth, $(date -u +%F): benches/growth.sh $runs ${counts[*]} on $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg) at the end."
echo
echo "prepare-root and status, median of $runs runs (ms), by deployments and stale markers:"
echo
echo "| deployments | stale markers | rootstock prepare-root | ostree-prepare-root | rootstock status --json |"
echo "|---|---|---|---|---|"
for n in "${counts[@]}"; do
    for stale in 0 "$n"; do
        [ "$stale" = 0 ] || [ "$n" != 0 ] || continue
        cells=()
        for tool in rootstock ostree-prepare-root status; do
            cells+=("$(awk -v k="$tool" -v n="$n" -v s="$stale" '$1 == k && $2 == n && $3 == s { print $4 }' "$results" | median)")
        done
        echo "| $n | $stale | ${cells[0]} | ${cells[1]} | ${cells[2]} |"
    done
done

# mkinitramfs: the QEMU set against the generic set.
kdir=$(find "$here/.cache/kernel/" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort | tail -1)
if [ -n "$kdir" ]; then
    kver=$(ls "$kdir/lib/modules")
    echo
    echo "rootstock mkinitramfs, kernel $kver, median of 3 runs (s):"
    echo
    echo "| module set | modules | archive bytes | --compress none | default ($(
        "$host" mkinitramfs --modules-dir "$kdir/lib/modules" --kver "$kver" --modules none \
            --binary "$boot" "$t/probe.img" | sed -n 's/^compression \([a-z]*\):.*/\1/p'
    )) |"
    echo "|---|---|---|---|---|"
    for set in qemu generic; do
        for c in none default; do
            for i in 1 2 3; do
                args=()
                [ "$c" = default ] || args=(--compress "$c")
                a=$EPOCHREALTIME
                out=$("$host" mkinitramfs --modules-dir "$kdir/lib/modules" --kver "$kver" --modules "$set" \
                    --list-dir "$here/initramfs" --binary "$boot" "${args[@]}" "$t/$set.img")
                b=$EPOCHREALTIME
                echo "$set $c $(( (${b/./} - ${a/./}) / 1000 ))" >>"$t/mk"
                echo "$out" >"$t/mk-$set-$c.out"
            done
        done
        mods=$(sed -n 's/.*, \([0-9]*\) modules$/\1/p' "$t/mk-$set-none.out")
        bytes=$(sed -n 's/^[^ ]*: \([0-9]*\) bytes.*/\1/p' "$t/mk-$set-none.out")
        none=$(awk -v s="$set" '$1 == s && $2 == "none" { print $3 }' "$t/mk" | median)
        def=$(awk -v s="$set" '$1 == s && $2 == "default" { print $3 }' "$t/mk" | median)
        echo "| $set | $mods | $bytes | $none | $def |"
    done
fi
