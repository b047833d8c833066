//! Boot counting in a private mount namespace, against sysroots made by the
//! real `ostree` CLI: unblessed boots fall back, blessed ones are never
//! counted again, the failed deployment stays skipped.

mod common;

use std::collections::BTreeMap;

use common::{Fixture, PREPARE, have_root, report};

/// Boot once: prepare-root, then report the version booted and the state.
fn boot(f: &Fixture, extra: &str) -> BTreeMap<String, String> {
    let script = format!(
        "{PREPARE} || exit 1\n{extra}\necho \"version=$(cat \"$SYSROOT/usr/share/testos/version\")\"\n\
         sed 's/^/state./' \"$RUN/rootstock/state\""
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "boot failed:\n{err}\n{out}");
    f.reboot();
    let mut r = report(&out);
    r.insert("stderr".into(), err);
    r
}

const BLESS: &str = "\"$ROOTSTOCK\" bless --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" || exit 1";

#[test]
fn unblessed_default_falls_back_after_its_tries_and_stays_skipped() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=2", f.ostree_arg(0)));
    let b0 = f.marker_base(0);

    let r = boot(&f, "");
    assert_eq!(r["version"], "2");
    assert_eq!(r["state.counting"], "indeterminate (1 left, 1 done)");
    assert_eq!(f.markers(), vec![format!("{b0}+01-01")]);

    let r = boot(&f, "");
    assert_eq!(r["version"], "2", "the last try still boots it");
    assert_eq!(f.markers(), vec![format!("{b0}+00-02")]);

    for _ in 0..2 {
        let r = boot(&f, "");
        assert_eq!(r["version"], "1", "the previous deployment boots instead");
        assert_eq!(r["state.reason"], "fallback");
        assert!(r["state.skipped"].contains("marked bad by boot counting (bad (2 tries failed))"), "{r:?}");
        assert_eq!(f.markers(), vec![format!("{b0}+00-02")], "the counter never moves again");
    }
}

#[test]
fn blessed_deployment_is_never_counted_again() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=1", f.ostree_arg(0)));
    let b0 = f.marker_base(0);
    let r = boot(&f, BLESS);
    assert_eq!(r["version"], "2");
    assert!(r["stderr"].contains(&format!("{b0} is now good")), "{}", r["stderr"]);
    assert_eq!(f.markers(), vec![b0.clone()]);
    for _ in 0..3 {
        let r = boot(&f, "");
        assert_eq!(r["version"], "2");
        assert_eq!(r["state.counting"], "good");
        assert_eq!(f.markers(), vec![b0.clone()]);
    }
    // Status shows it; --bad makes the next boot fall back.
    let (ok, out, err) = f.boot(&format!(
        "{PREPARE} || exit 1\n\"$ROOTSTOCK\" status --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" --run-dir \"$RUN\" --json\n\
         \"$ROOTSTOCK\" bless --bad --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" || exit 1"
    ));
    assert!(ok, "{err}");
    f.reboot();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deployments"][0]["counting"]["state"], "good");
    assert_eq!(v["deployments"][1]["counting"]["state"], "never");
    assert_eq!(f.markers(), vec![format!("{b0}+00-00")]);
    let r = boot(&f, "");
    assert_eq!(r["version"], "1");
    assert_eq!(r["state.reason"], "fallback");
}

#[test]
fn manual_choice_counts_nothing_and_ignores_a_bad_mark() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    let b1 = f.marker_base(1);
    std::fs::create_dir_all(f.phys().join("ostree/rootstock")).unwrap();
    std::fs::write(f.phys().join(format!("ostree/rootstock/{b1}+00-03")), "").unwrap();
    f.set_cmdline(&format!("ostree={} rootstock.tries=3 rootstock.deployment=1", f.ostree_arg(0)));
    let r = boot(&f, "");
    assert_eq!(r["version"], "1");
    assert_eq!(r["state.reason"], "manual");
    assert_eq!(f.markers(), vec![format!("{b1}+00-03")]);
}

#[test]
fn every_deployment_bad_still_boots_the_requested_one() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    std::fs::create_dir_all(f.phys().join("ostree/rootstock")).unwrap();
    for i in 0..2 {
        std::fs::write(f.phys().join(format!("ostree/rootstock/{}+00-03", f.marker_base(i))), "").unwrap();
    }
    f.set_cmdline(&format!("ostree={} rootstock.tries=3", f.ostree_arg(0)));
    let r = boot(&f, "");
    assert_eq!(r["version"], "2");
    assert!(r["stderr"].contains("every bootable deployment is marked bad: booting"), "{}", r["stderr"]);
}

#[test]
fn stale_and_duplicate_markers_are_repaired() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    let b0 = f.marker_base(0);
    let dir = f.phys().join("ostree/rootstock");
    std::fs::create_dir_all(&dir).unwrap();
    let gone = format!("testos-{}.0+01-01", "e".repeat(64));
    for name in [gone.as_str(), &format!("{b0}+02-01"), &format!("{b0}+01-02")] {
        std::fs::write(dir.join(name), "").unwrap();
    }
    f.set_cmdline(&format!("ostree={} rootstock.tries=3", f.ostree_arg(0)));
    let r = boot(&f, "");
    assert_eq!(r["version"], "2");
    // The duplicate with more tries left and the deleted deployment's marker
    // are gone; the kept one (1 left) took this attempt.
    assert_eq!(f.markers(), vec![format!("{b0}+00-03")]);
}

#[test]
fn a_read_only_physical_root_is_written_and_left_read_only() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=3", f.ostree_arg(0)));
    let script = format!(
        "mount -o remount,bind,ro \"$SYSROOT\" || exit 1\n{PREPARE} || exit 1\n\
         echo \"sysroot_opts=$(awk -v s=\"$SYSROOT\" '$5==s {{print $6; exit}}' /proc/self/mountinfo)\""
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}");
    assert!(err.contains("is read-only: remounting it read-write for the change"), "{err}");
    assert_eq!(f.markers(), vec![format!("{}+02-01", f.marker_base(0))]);
    assert!(report(&out)["sysroot_opts"].starts_with("ro"), "{out}");
}

/// An entry systemd-boot counts (its `LoaderBootCountPath` EFI variable,
/// here a file in a stand-in efivarfs; the ESP a directory): rootstock
/// counts nothing, and `bless` renames the ESP's entry as
/// systemd-bless-boot would. When rootstock falls back from that entry's
/// deployment, systemd-bless-boot is masked for the boot and `bless`
/// leaves the entry alone: the fallback's success must not bless it.
#[test]
fn an_entry_systemd_boot_counts_is_blessed_on_the_esp_only_by_its_own_deployment() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=3", f.ostree_arg(0)));
    let (esp, efivars) = f.counted_by_the_boot_loader("ostree-2+1-1.conf", "ostree-1+2.conf");
    let entries = esp.join("loader/entries");
    let script = format!(
        "{PREPARE} --efivars '{}' || exit 1\n\
         \"$ROOTSTOCK\" bless --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" --run-dir \"$RUN\" --esp '{}' || exit 1\n\
         echo \"version=$(cat \"$SYSROOT/usr/share/testos/version\")\"\n\
         echo \"mask=$(readlink \"$RUN/systemd/system/systemd-bless-boot.service\")\"\n\
         sed 's/^/state./' \"$RUN/rootstock/state\"",
        efivars.display(),
        esp.display()
    );
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(&entries)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}\n{out}");
    f.reboot();
    let r = report(&out);
    assert_eq!(r["version"], "2");
    assert_eq!(r["state.loader_entry"], "/loader/entries/ostree-2+1-1.conf");
    assert_eq!(r["mask"], "");
    // No try counted by rootstock: its only marker is the blessing's.
    assert_eq!(f.markers(), vec![f.marker_base(0)], "{err}");
    assert_eq!(names(), ["ostree-1+2.conf", "ostree-2.conf"], "{err}");

    // The same try again, but deployment 0 cannot boot: rootstock falls back.
    std::fs::rename(entries.join("ostree-2.conf"), entries.join("ostree-2+1-1.conf")).unwrap();
    let init = f.deploy_dir(0).join("usr/sbin/init");
    std::fs::remove_file(&init).unwrap();
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}\n{out}");
    f.reboot();
    let r = report(&out);
    assert_eq!((r["version"].as_str(), r["state.reason"].as_str()), ("1", "fallback"), "{err}");
    assert!(!r.contains_key("state.loader_entry"), "{r:?}");
    assert_eq!(r["mask"], "/dev/null", "systemd-bless-boot masked for the boot");
    assert_eq!(names(), ["ostree-1+2.conf", "ostree-2+1-1.conf"], "the failed entry is not blessed: {err}");
}
