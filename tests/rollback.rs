//! `rootstock rollback --watch` (rootstock-rollback.service) in a private
//! mount namespace, on sysroots made by the real `ostree` CLI and booted by
//! `prepare-root` with boot counting: systemd is a stand-in `systemctl`
//! that reports a failed, hung or healthy boot and logs what it is told.
//! Under QEMU with the real systemd: qemu-tests/tests/trixie_rollback.rs.

mod common;

use std::collections::BTreeMap;

use common::{Fixture, PREPARE, have_root, report};

/// A `systemctl` that answers as systemd 257 does for a boot in the state
/// named by `$DIR/mode` (failed, hung, healthy), and logs its arguments.
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
d=$(dirname "$0")
echo "$*" >>"$d/systemctl.log"
mode=$(cat "$d/mode")
case "$*" in
is-system-running) echo running ;;
"show boot-complete.target -p ActiveState -p ActiveEnterTimestampMonotonic -p Requires -p Requisite -p BindsTo")
    case $mode in
    healthy) echo ActiveState=active; echo ActiveEnterTimestampMonotonic=21000000 ;;
    # reached, then stopped by a shutdown that is under way
    stopped) echo ActiveState=inactive; echo "ActiveEnterTimestampMonotonic=$(awk '{ printf "%d", $1 * 1000000 }' /proc/uptime)" ;;
    # reached by the userspace before a soft reboot (systemd keeps it)
    *) echo ActiveState=inactive; echo ActiveEnterTimestampMonotonic=1000 ;;
    esac
    echo "Requires=testos-health.service sysinit.target"
    echo "Requisite="
    echo "BindsTo=" ;;
list-jobs*)
    if [ "$mode" = hung ]; then
        echo "101 boot-complete.target start waiting"
        echo "102 testos-health.service start running"
    fi
    if [ "$mode" = kexec ]; then
        echo "201 kexec.target start waiting"
    fi ;;
list-units*)
    if [ "$mode" = failed ] || [ "$mode" = kexec ]; then
        echo "testos-health.service loaded failed failed The test OS's health check"
        echo "unrelated.service     loaded failed failed Something else"
    fi ;;
"show -p SoftRebootsCount --value") echo 0 ;;
esac
"#;

/// The booted system: `$N` for a soft reboot's new root, the host tool's
/// paths for this namespace, and `rollback`/`status` wrappers.
const BOOTED: &str = r#"
mount --make-rshared "$SYSROOT" || exit 98
N="$RUN/nextroot"
D=$(dirname "$CMDLINE")
paths() { echo --sysroot "$SYSROOT/sysroot" --run-dir "$RUN" --boot-id "$D/boot_id"; }
watch() { "$ROOTSTOCK" rollback --watch $(paths) --root "${ROOT:-$SYSROOT}" --nextroot "$N" --cmdline "$CMDLINE" \
    --config-root "$CONFIG_ROOT" --kernel-release "${KREL:-6.1.0-test}" --systemctl "$D/systemctl" \
    --boot "$SYSROOT/sysroot/boot" "$@"; }
history() { "$ROOTSTOCK" status --history --json $(paths) --root "${ROOT:-$SYSROOT}"; }
"#;

fn fixture(cmdline_extra: &str, mode: &str) -> Fixture {
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=2 {cmdline_extra}", f.ostree_arg(0)));
    let fake = f.dir.join("systemctl");
    std::fs::write(&fake, FAKE_SYSTEMCTL).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    std::fs::write(f.dir.join("mode"), mode).unwrap();
    std::fs::write(f.dir.join("boot_id"), "6b1d9a7e-0000-4000-8000-000000000001\n").unwrap();
    f
}

fn systemctl_log(f: &Fixture) -> String {
    std::fs::read_to_string(f.dir.join("systemctl.log")).unwrap_or_default()
}

/// The booted system runs `rootstock rollback --watch`, then prints its
/// history (`history=`, JSON on one line).
const WATCH: &str = "watch || exit 2\necho \"history=$(history | tr -d '\\n')\"\n";

/// Nothing was started: no soft reboot, kexec or reboot asked of systemd.
fn assert_nothing_started(f: &Fixture, what: &str) {
    let log = systemctl_log(f);
    assert!(!log.contains("--no-block"), "{what}: {log}");
}

/// The oldest record of the history a script printed (`history=`).
fn first_record(r: &BTreeMap<String, String>) -> serde_json::Value {
    json(&r["history"])["records"][0].clone()
}

/// Boot, run `script` in the booted system; its `key=value` lines, the
/// history (`history=` JSON on one line) and stderr.
fn run(f: &Fixture, script: &str) -> BTreeMap<String, String> {
    let full = format!("{PREPARE} || exit 1\n{BOOTED}\n{script}");
    let (ok, out, err) = f.boot(&full);
    assert!(ok, "{err}\n{out}");
    let mut r = report(&out);
    r.insert("stderr".into(), err);
    r
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_failed_health_check_marks_the_update_bad_and_soft_reboots_into_the_fallback() {
    if !have_root() {
        return;
    }
    let f = fixture("", "failed");
    let (b0, b1) = (f.marker_base(0), f.marker_base(1));
    let r = run(
        &f,
        r#"watch || exit 2
echo "next_version=$(cat "$N/usr/share/testos/version")"
echo "pending_reason=$(sed -n 's/^reason=//p' "$RUN/rootstock/soft-reboot")"
echo "pending_skipped=$(sed -n 's/^skipped=//p' "$RUN/rootstock/soft-reboot")"
echo "history=$(history | tr -d '\n')"
# The new userspace (what `systemctl soft-reboot` starts): healthy, blessed.
echo healthy >"$D/mode"
ROOT="$N" watch || exit 3
"$ROOTSTOCK" bless $(paths) --root "$N" || exit 4
echo "history_after=$(ROOT="$N" history | tr -d '\n')"
"#,
    );
    assert_eq!(r["next_version"], "1", "the previous deployment is laid out at /run/nextroot");
    assert_eq!(f.markers(), vec![b1.clone(), format!("{b0}+00-01")], "2 bad, 1 blessed");
    assert!(systemctl_log(&f).lines().any(|l| l == "--no-block soft-reboot"), "{}", systemctl_log(&f));
    assert_eq!(r["pending_reason"], "fallback");
    assert!(
        r["pending_skipped"]
            .contains("marked bad by rootstock rollback (a health check failed: testos-health.service)"),
        "only the failed unit boot-complete.target requires is named: {}",
        r["pending_skipped"]
    );
    let h = json(&r["history"]);
    let rec = &h["records"][0];
    assert_eq!(rec["verdict"], "bad-health-check", "{h}");
    assert_eq!(rec["units"], serde_json::json!(["testos-health.service"]));
    assert_eq!(rec["how"], "boot");
    assert_eq!(rec["reason"], "default");
    assert_eq!(rec["version"], "2");
    assert_eq!(rec["counting"], "indeterminate (1 left, 1 done)");
    assert_eq!(rec["boot_id"], "6b1d9a7e-0000-4000-8000-000000000001");
    assert!(rec["action"].as_str().unwrap().starts_with("soft reboot into testos/"), "{h}");

    let h = json(&r["history_after"]);
    assert_eq!(h["records"].as_array().unwrap().len(), 2, "{h}");
    let next = &h["records"][1];
    assert_eq!(next["version"], "1");
    assert_eq!(next["how"], "soft-reboot");
    assert_eq!(next["reason"], "fallback");
    assert_eq!(next["verdict"], "blessed");
    assert!(next["from"][0].as_str().unwrap().contains("a health check failed"), "{h}");
    assert_eq!(h["records"][0]["verdict"], "bad-health-check", "the first keeps its verdict");
}

#[test]
fn the_watchdog_rolls_back_a_boot_that_never_completes_and_names_what_was_still_starting() {
    if !have_root() {
        return;
    }
    // The kernel differs and kexec is not allowed: a full reboot.
    let f = fixture("rootstock.rollback-watchdog=2 rootstock.kexec=never", "hung");
    let b0 = f.marker_base(0);
    let t = std::time::Instant::now();
    let r = run(&f, &format!("KREL=9.9.9-other {WATCH}"));
    assert!(t.elapsed().as_secs() >= 2, "it waited for the watchdog");
    let rec = first_record(&r);
    assert_eq!(rec["verdict"], "bad-watchdog", "{rec}");
    assert_eq!(rec["units"], serde_json::json!(["testos-health.service"]));
    assert!(rec["action"].as_str().unwrap().starts_with("reboot into testos/"), "{rec}");
    assert!(systemctl_log(&f).lines().any(|l| l == "--no-block reboot"), "{}", systemctl_log(&f));
    assert_eq!(f.markers(), vec![format!("{b0}+00-01")]);
    assert!(r["stderr"].contains("not reached within 2 s"), "{}", r["stderr"]);
}

#[test]
fn a_healthy_boot_is_left_alone_and_blessed_and_mark_only_marks() {
    if !have_root() {
        return;
    }
    let f = fixture("", "healthy");
    let b0 = f.marker_base(0);
    let r = run(
        &f,
        "watch || exit 2\n\"$ROOTSTOCK\" bless $(paths) --root \"$SYSROOT\" || exit 3\n\
         echo \"history=$(history | tr -d '\\n')\"\n\
         echo failed >\"$D/mode\"\necho \"blessed_watch=$(watch 2>&1 | tr '\\n' ' ')\"\n",
    );
    assert_nothing_started(&f, "healthy");
    assert_eq!(f.markers(), vec![b0.clone()], "blessed");
    assert_eq!(first_record(&r)["verdict"], "blessed");
    assert!(
        r["blessed_watch"].contains("is not on probation (good): nothing to watch"),
        "a blessed deployment is never rolled back: {}",
        r["blessed_watch"]
    );

    // Reached, then stopped by a shutdown, or a kexec under way with a
    // unit failed: no verdict (a watcher that lagged behind must not take
    // the system going down for a failed health check).
    for mode in ["stopped", "kexec"] {
        let f = fixture("", mode);
        let b0 = f.marker_base(0);
        let r = run(&f, WATCH);
        assert_nothing_started(&f, mode);
        assert_eq!(f.markers(), vec![format!("{b0}+01-01")], "{mode}: counted, nothing else");
        assert_eq!(first_record(&r)["verdict"], "pending", "{mode}");
    }

    // rollback.action = mark: bad on disk, nothing started.
    let f = fixture("", "failed");
    f.set_config("[rollback]\naction = \"mark\"\n");
    let b0 = f.marker_base(0);
    let r = run(&f, WATCH);
    assert_nothing_started(&f, "mark");
    assert_eq!(f.markers(), vec![format!("{b0}+00-01")]);
    let rec = first_record(&r);
    assert!(rec["action"].as_str().unwrap().starts_with("none (rollback.action = mark)"), "{rec}");
}

#[test]
fn by_hand_dry_run_changes_nothing_and_off_records_only() {
    if !have_root() {
        return;
    }
    let f = fixture("rootstock.rollback=off", "failed");
    let b0 = f.marker_base(0);
    let r = run(
        &f,
        &format!(
            "echo \"dry=$(\"$ROOTSTOCK\" rollback --dry-run $(paths) --root \"$SYSROOT\" --kernel-release 6.1.0-test)\"\n{WATCH}"
        ),
    );
    assert!(
        r["dry"].starts_with(&format!("would mark {} bad (rolled back by hand)", b0.replacen('-', "/", 1)))
            && r["dry"].contains("by: soft reboot, then reboot"),
        "{}",
        r["dry"]
    );
    assert_eq!(f.markers(), vec![format!("{b0}+01-01")], "counted by the boot, nothing else");
    assert_nothing_started(&f, "off");
    assert_eq!(first_record(&r)["verdict"], "pending", "recorded, not judged");
}

/// An update whose entry systemd-boot counts (its `LoaderBootCountPath`,
/// a stand-in efivarfs; the ESP a directory), failing its health check:
/// rolled back as any other (rootstock counted no try, yet it is on
/// probation), and its entry marked bad on the ESP as systemd-bless-boot
/// would, so the boot loader's next boot goes to the fallback's entry.
#[test]
fn a_failing_update_the_boot_loader_counts_is_rolled_back_and_its_entry_marked_bad() {
    if !have_root() {
        return;
    }
    let f = fixture("", "failed");
    let (esp, efivars) = f.counted_by_the_boot_loader("ostree-2+1-1.conf", "ostree-1.conf");
    let entries = esp.join("loader/entries");
    let script = format!(
        "{PREPARE} --efivars '{}' || exit 1\n{BOOTED}\nwatch --esp '{}' || exit 2\n\
         echo \"next_version=$(cat \"$N/usr/share/testos/version\")\"\n",
        efivars.display(),
        esp.display()
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}\n{out}");
    let r = report(&out);
    assert_eq!(r["next_version"], "1", "rolled back: {err}");
    assert_eq!(f.markers(), vec![format!("{}+00-00", f.marker_base(0))], "bad, and no try counted: {err}");
    let mut names: Vec<String> =
        std::fs::read_dir(&entries).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ostree-1.conf", "ostree-2+0-1.conf"], "{err}");
    // systemd-bless-boot masked for the rest of the boot (the soft reboot's
    // userspace too): its `good` would rename the bad entry back.
    let mask = f.dir.join("run/systemd/system/systemd-bless-boot.service");
    assert_eq!(std::fs::read_link(&mask).unwrap(), std::path::Path::new("/dev/null"), "{err}");
}
