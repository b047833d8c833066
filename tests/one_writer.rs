//! One writer at a time: eight and more copies of every command that writes
//! (`prepare-soft-reboot`, its `--reset`, `bless`, the boot's counting,
//! `mkinitramfs`), and mixed pairs, run at once against one physical root
//! made by the real `ostree` CLI, in a private mount namespace. Whatever the
//! order the lock gives them, there is one consistent outcome: one layout,
//! one try spent per prepared boot, a valid marker.

mod common;

use std::collections::BTreeMap;

use common::{Fixture, PREPARE, have_root, report};

/// Copies of each command run at once.
const COPIES: usize = 8;

/// After the boot: everything shared as systemd makes it; `soft` runs
/// prepare-soft-reboot, `bless` blesses the running deployment; `many N
/// CMD...` runs N copies of CMD at once and reports how many exited 0 as
/// `ok=` and their stderr as `err.I=`.
const TOOLS: &str = r#"
mount --make-rshared "$SYSROOT" || exit 98
N="$RUN/nextroot"
soft() { "$ROOTSTOCK" prepare-soft-reboot --sysroot "$SYSROOT/sysroot" --run-dir "$RUN" --nextroot "$N" \
    --cmdline "$CMDLINE" --boot "$SYSROOT/sysroot/boot" --config-root "$CONFIG_ROOT" --kernel-release 6.1.0-test "$@"; }
bless() { "$ROOTSTOCK" bless --sysroot "$SYSROOT/sysroot" --root "$SYSROOT"; }
ERRS=$(mktemp -d)
many() {
    n=$1; shift
    i=0; pids=""
    while [ $i -lt $n ]; do "$@" 2>"$ERRS/$TAG.$i" & pids="$pids $!"; i=$((i + 1)); done
    ok=0; for p in $pids; do wait $p && ok=$((ok + 1)); done
    echo "$TAG.ok=$ok"
}
layout() { awk -v s="$N" '$5==s || index($5, s"/")==1 {print substr($5, length(s)+1)}' /proc/self/mountinfo | LC_ALL=C sort | tr '\n' ' '; }
"#;

/// Boot (the rollback, by hand: never counted), then run `script`.
fn run(f: &Fixture, script: &str) -> BTreeMap<String, String> {
    let full = format!(
        "{PREPARE} || exit 1\n{TOOLS}\n{script}\nfor e in \"$ERRS\"/*; do echo \"err.${{e##*/}}=$(tr '\\n' '|' < \"$e\")\"; done\n"
    );
    let (ok, out, err) = f.boot(&full);
    assert!(ok, "{err}\n{out}");
    let mut r = report(&out);
    r.insert("stderr".into(), err);
    r
}

/// Every copy's stderr, for a failed assertion.
fn errs(r: &BTreeMap<String, String>) -> String {
    r.iter().filter(|(k, _)| k.starts_with("err.")).map(|(k, v)| format!("{k}: {v}\n")).collect()
}

#[test]
fn eight_soft_reboots_at_once_leave_one_layout_and_spend_one_try() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.deployment=1 rootstock.tries=5", f.ostree_arg(0)));
    let r = run(
        &f,
        &format!(
            "TAG=soft; many {COPIES} soft\necho \"layout=$(layout)\"\nTAG=reset; many {COPIES} soft --reset\necho \"after=$(layout)\""
        ),
    );
    let e = errs(&r);
    assert_eq!(r["soft.ok"], COPIES.to_string(), "every copy waits its turn: {e}");
    assert_eq!(r["layout"], "/etc /sysroot /usr /var", "one layout, not several: {e}");
    // Seven resets found nothing more to do; one detached it and gave the try back.
    assert_eq!(r["reset.ok"], COPIES.to_string(), "{e}");
    let detached = r.iter().filter(|(k, v)| k.starts_with("err.reset.") && v.contains("detached")).count();
    let nothing = r
        .iter()
        .filter(|(k, v)| k.starts_with("err.reset.") && v.contains("no soft reboot was prepared"))
        .count();
    assert_eq!((detached, nothing), (1, COPIES - 1), "{e}");
    assert_eq!(r["after"], "", "nothing left mounted: {e}");
    assert_eq!(f.markers(), Vec::<String>::new(), "the unused soft reboot's try is given back");
}

#[test]
fn eight_soft_reboots_then_one_boot_count_one_try() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.deployment=1 rootstock.tries=5", f.ostree_arg(0)));
    let r = run(&f, &format!("TAG=soft; many {COPIES} soft\necho \"layout=$(layout)\""));
    assert_eq!(r["soft.ok"], COPIES.to_string(), "{}", errs(&r));
    assert_eq!(r["layout"], "/etc /sysroot /usr /var");
    // Eight preparations of one soft reboot: one try spent, not eight.
    assert_eq!(f.markers(), vec![format!("{}+04-01", f.marker_base(0))]);
}

#[test]
fn eight_blesses_at_once_leave_one_good_marker() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    // Boot the default, counted: it has a marker to bless.
    f.set_cmdline(&format!("ostree={} rootstock.tries=3", f.ostree_arg(0)));
    let r = run(&f, &format!("TAG=bless; many {COPIES} bless"));
    assert_eq!(r["bless.ok"], COPIES.to_string(), "{}", errs(&r));
    assert_eq!(f.markers(), vec![f.marker_base(0)], "blessed once, one marker");
}

#[test]
fn blessing_while_soft_reboots_are_prepared_keeps_both_right() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    // The rollback boots counted (tries by config); the default is prepared.
    f.set_cmdline(&format!("ostree={} rootstock.deployment=1 rootstock.tries=3", f.ostree_arg(0)));
    let r = run(
        &f,
        &format!(
            "TAG=soft; many {COPIES} soft & TAG=bless; many {COPIES} bless & wait\necho \"layout=$(layout)\"\n\
             TAG=reset2; many 2 soft --reset\necho \"after=$(layout)\""
        ),
    );
    let e = errs(&r);
    assert_eq!((r["soft.ok"].as_str(), r["bless.ok"].as_str()), ("8", "8"), "{e}");
    assert_eq!(r["layout"], "/etc /sysroot /usr /var", "{e}");
    assert_eq!(r["reset2.ok"], "2", "{e}");
    assert_eq!(r["after"], "", "{e}");
    // The running rollback blessed; the default's try given back by the reset.
    let mut want = vec![f.marker_base(1)];
    want.sort();
    assert_eq!(f.markers(), want, "{e}");
}

#[test]
fn eight_boots_at_once_count_eight_tries() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=10", f.ostree_arg(0)));
    // Eight prepare-roots, each in a mount namespace of its own with the
    // physical root at a mount point of its own: one disk, eight boots.
    let one = r#"one() { d=$(mktemp -d); mkdir "$d/s" "$d/r"; unshare -m --propagation private sh -c \
        'mount --bind "$PHYS" "$0/s" && "$ROOTSTOCK_BOOT" prepare-root --cmdline "$CMDLINE" --run-dir "$0/r" --config-root "$CONFIG_ROOT" "$0/s"' "$d"; }"#;
    let full = format!(
        "{TOOLS}\n{one}\nTAG=boot; many {COPIES} one\nfor e in \"$ERRS\"/*; do echo \"err.${{e##*/}}=$(tr '\\n' '|' < \"$e\")\"; done\n"
    );
    let (ok, out, err) = f.boot(&full);
    assert!(ok, "{err}\n{out}");
    let r = report(&out);
    assert_eq!(r["boot.ok"], COPIES.to_string(), "{}", errs(&r));
    assert_eq!(f.markers(), vec![format!("{}+02-08", f.marker_base(0))], "{}", errs(&r));
}

#[test]
fn eight_initramfs_writes_at_once_leave_one_whole_file() {
    let t = std::env::temp_dir().join(format!("rootstock-one-writer-{}", std::process::id()));
    let kmods = t.join("modules/1.0");
    std::fs::create_dir_all(&kmods).unwrap();
    for f in ["modules.builtin", "modules.order"] {
        std::fs::write(kmods.join(f), "").unwrap();
    }
    let out = t.join("out/initramfs.img");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let children: Vec<std::process::Child> = (0..COPIES)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_rootstock"))
                .args(["mkinitramfs", "--kver", "1.0", "--modules", "none", "--compress", "none"])
                .args(["--firmware-dir", "none", "--binary", "/bin/true", "--modules-dir"])
                .arg(t.join("modules"))
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<std::process::Output> =
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let names: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["initramfs.img"], "no temporary file left");
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"070701"), "a whole newc archive");
    assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"), "a whole newc archive");
    std::fs::remove_dir_all(&t).unwrap();
}
