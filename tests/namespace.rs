//! `rootstock prepare-root` in a private mount namespace, against sysroots
//! made by the real `ostree` CLI: what the booted deployment would see.

mod common;

use common::{Fixture, PREPARE, have_root, report};

/// Prints what the booted system would see, as `key=value` lines.
const REPORT: &str = r#"
S="$SYSROOT"
try() { if out=$("$@" 2>&1); then echo ok; else echo "fail: $out"; fi; }
echo "version=$(cat "$S/usr/share/testos/version")"
echo "os_release=$(grep VERSION_ID "$S/usr/lib/os-release")"
echo "usr_write=$(try touch "$S/usr/probe")"
echo "etc_write=$(try sh -c "echo etc >> '$S/etc/probe'")"
echo "var_write=$(try sh -c "echo var >> '$S/var/probe'")"
echo "sysroot_write=$(try touch "$S/sysroot/probe")"
echo "sysroot_is_phys=$([ "$(stat -c %d:%i "$S/sysroot")" = "$(stat -c %d:%i "$PHYS")" ] && echo yes || echo no)"
echo "ostree_booted=$([ -f "$RUN/ostree-booted" ] && echo yes || echo no)"
echo "mount_var_marker=$([ -f "$RUN/ostree/initramfs-mount-var" ] && echo yes || echo no)"
echo "mounts=$(awk -v s="$S" '$5==s || index($5, s"/")==1 {split($6, o, ","); print substr($5, length(s)+1) ":" o[1]}' /proc/self/mountinfo | LC_ALL=C sort | tr '\n' ' ')"
echo "staging_left=$([ -n "$(ls -A "$S.tmp" 2>/dev/null)" ] && echo yes || echo no)"
sed 's/^/state./' "$RUN/rootstock/state"
"#;

/// Prints `mounts=N`, the number of mounts at or below the sysroot.
const COUNT_MOUNTS: &str =
    r#"echo "mounts=$(awk -v s="$SYSROOT" '$5==s || index($5, s"/")==1' /proc/self/mountinfo | wc -l)""#;

fn boot_and_report(f: &Fixture) -> std::collections::BTreeMap<String, String> {
    let (ok, out, err) = f.boot(&format!("{PREPARE} || exit 1\n{REPORT}"));
    assert!(ok, "prepare-root failed:\n{err}\n{out}");
    report(&out)
}

#[test]
fn default_deployment_layout() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("root=LABEL=testroot rw ostree={} quiet", f.ostree_arg(0)));
    let r = boot_and_report(&f);
    assert_eq!(r["version"], "2", "index 0 is the newest deployment");
    assert_eq!(r["os_release"], "VERSION_ID=2");
    assert!(r["usr_write"].contains("Read-only file system"), "{}", r["usr_write"]);
    assert_eq!(r["etc_write"], "ok");
    assert_eq!(r["var_write"], "ok");
    assert_eq!(r["sysroot_write"], "ok", "sysroot is writable unless configured");
    assert_eq!(r["sysroot_is_phys"], "yes");
    assert_eq!(r["ostree_booted"], "yes");
    assert_eq!(r["mount_var_marker"], "yes");
    // The physical root's bind, the deployment moved over it, and its mounts.
    assert_eq!(r["mounts"], "/etc:rw /sysroot:rw /usr:ro /var:rw :rw :rw");
    assert_eq!(r["staging_left"], "no");
    assert_eq!(r["state.reason"], "default");
    assert_eq!(r["state.index"], "0");
    assert_eq!(r["state.init"], "/sbin/init");
    let dir = f.deploy_dir(0);
    assert_eq!(r["state.selected"], format!("testos/{}", dir.file_name().unwrap().to_str().unwrap()));
    // The file written through /var is in the stateroot's var on the physical root.
    let var_probe = f.phys().join("ostree/deploy/testos/var/probe");
    assert_eq!(std::fs::read_to_string(var_probe).unwrap(), "var\n");
}

#[test]
fn rollback_is_laid_out_when_requested_and_var_is_shared() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let (ok, _, err) = f.boot(&format!("{PREPARE} || exit 1\necho written-by-2 > \"$SYSROOT/var/marker\""));
    assert!(ok, "{err}");
    f.reboot();
    for choice in ["rollback", "1"] {
        f.set_cmdline(&format!("ostree={} rootstock.deployment={choice}", f.ostree_arg(0)));
        let (ok, out, err) =
            f.boot(&format!("{PREPARE} || exit 1\n{REPORT}\necho \"marker=$(cat \"$SYSROOT/var/marker\")\""));
        assert!(ok, "{err}");
        let r = report(&out);
        assert_eq!(r["version"], "1", "rootstock.deployment={choice}");
        assert_eq!(r["marker"], "written-by-2", "/var written in one deployment is seen by the other");
        assert_eq!(r["state.reason"], "manual");
        assert_eq!(r["state.index"], "1");
        assert!(r["usr_write"].contains("Read-only file system"));
        f.reboot();
    }
}

#[test]
fn etc_persists_across_reboots_of_the_same_deployment_only() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let (ok, _, err) = f.boot(&format!("{PREPARE} || exit 1\necho persisted > \"$SYSROOT/etc/motd\""));
    assert!(ok, "{err}");
    f.reboot();
    let (ok, out, err) = f.boot(&format!("{PREPARE} || exit 1\necho \"motd=$(cat \"$SYSROOT/etc/motd\")\""));
    assert!(ok, "{err}");
    assert_eq!(report(&out)["motd"], "persisted");
    f.reboot();
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(1)));
    let (ok, out, err) = f
        .boot(&format!("{PREPARE} || exit 1\n[ -e \"$SYSROOT/etc/motd\" ] && echo motd=yes || echo motd=no"));
    assert!(ok, "{err}");
    assert_eq!(report(&out)["motd"], "no", "each deployment has its own /etc");
}

#[test]
fn readonly_sysroot_keeps_etc_and_var_writable() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    f.set_config("[sysroot]\nreadonly = true\n");
    let r = boot_and_report(&f);
    assert!(r["sysroot_write"].contains("Read-only file system"), "{}", r["sysroot_write"]);
    assert!(r["usr_write"].contains("Read-only file system"));
    assert_eq!(r["etc_write"], "ok");
    assert_eq!(r["var_write"], "ok");
    assert_eq!(r["mounts"], "/etc:rw /sysroot:ro /usr:ro /var:rw :rw :rw");
}

#[test]
fn transient_etc_is_lost_at_reboot() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    f.set_config("[etc]\ntransient = true\n");
    let (ok, out, err) = f.boot(&format!(
        "{PREPARE} || exit 1\n{REPORT}\necho \"hostname=$(cat \"$SYSROOT/etc/hostname\")\"\necho x > \"$SYSROOT/etc/transient\""
    ));
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["etc_write"], "ok");
    assert_eq!(r["hostname"], "testos", "the deployment's /etc shows through the overlay");
    assert!(!f.deploy_dir(0).join("etc/transient").exists(), "writes do not reach the deployment");
    f.reboot();
    let (ok, out, err) =
        f.boot(&format!("{PREPARE} || exit 1\n[ -e \"$SYSROOT/etc/transient\" ] && echo t=yes || echo t=no"));
    assert!(ok, "{err}");
    assert_eq!(report(&out)["t"], "no");
}

#[test]
fn deployment_without_init_falls_back_to_the_next() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    std::fs::remove_file(f.deploy_dir(0).join("usr/sbin/init")).unwrap();
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let (ok, out, err) = f.boot(&format!("{PREPARE} || exit 1\n{REPORT}"));
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["version"], "1", "the rollback deployment is the one laid out");
    assert_eq!(r["state.reason"], "fallback");
    assert!(r["state.skipped"].contains("has no executable init"), "{}", r["state.skipped"]);
    assert!(err.contains("no executable init (tried /sbin/init, /usr/lib/systemd/systemd)"), "{err}");

    // With fallback off, nothing is mounted and the error says why.
    f.reboot();
    f.set_cmdline(&format!("ostree={} rootstock.fallback=off", f.ostree_arg(0)));
    let (ok, out, err) = f.boot(&format!("{PREPARE} && exit 1\n{COUNT_MOUNTS}"));
    assert!(ok, "prepare-root must fail: {out}\n{err}");
    assert_eq!(report(&out)["mounts"], "1", "only the physical root stays mounted");
    assert!(err.contains("no deployment could be laid out"), "{err}");
    assert!(err.contains("check the usr-merge symlinks"), "{err}");
}

#[test]
fn missing_sysroot_dir_is_explained() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    let d = f.deploy_dir(0);
    assert!(std::process::Command::new("chattr").arg("-i").arg(&d).status().unwrap().success());
    std::fs::remove_dir(d.join("sysroot")).unwrap();
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let (ok, _, err) = f.boot(PREPARE);
    assert!(!ok);
    assert!(err.contains("has no sysroot/ directory"), "{err}");
    assert!(err.contains("add an empty /sysroot to the OS tree before `ostree commit`"), "{err}");
}

#[test]
fn stale_ostree_arg_falls_back_to_the_default() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    // A boot.N that ostree has cleaned up (ostree#2283).
    let stale = f.ostree_arg(1).replace("/boot.0/", "/boot.7/").replace("/boot.1/", "/boot.7/");
    f.set_cmdline(&format!("ostree={stale}"));
    let (ok, out, err) = f.boot(&format!("{PREPARE} || exit 1\n{REPORT}"));
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["version"], "2");
    assert_eq!(r["state.reason"], "fallback");
    assert!(r["state.skipped"].contains("ENOENT"), "{}", r["state.skipped"]);
}

#[test]
fn escaping_ostree_arg_is_refused() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    let bootdir = std::fs::canonicalize(f.phys().join("ostree/boot.1")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../../..", bootdir.join("testos/escape")).unwrap();
    f.set_cmdline("ostree=/ostree/boot.1/testos/escape/0 rootstock.fallback=off");
    let (ok, _, err) = f.boot(PREPARE);
    assert!(!ok);
    assert!(err.contains("climbs out of the physical root (refused)"), "{err}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(1)));
    let script = format!(
        "before=$(cat /proc/self/mountinfo | wc -l)\n{PREPARE} --dry-run || exit 1\n\
         echo \"delta=$(( $(cat /proc/self/mountinfo | wc -l) - before ))\"\n\
         echo \"run_files=$(find \"$RUN\" -type f | wc -l)\""
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["delta"], "0");
    assert_eq!(r["run_files"], "0");
    let sysroot = f.dir.join("sysroot");
    let s = sysroot.display();
    let dir = f.deploy_dir(1);
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert!(
        out.contains(&format!(" 3. mount  {s}/ostree/deploy/testos/deploy/{name} -> {s}.tmp [MS_BIND]")),
        "{out}"
    );
    assert!(out.contains(&format!(" 5. mount  none -> {s}.tmp/usr [MS_REMOUNT|MS_BIND|MS_RDONLY]")), "{out}");
    assert!(out.contains(&format!(" 9. mount  {s}.tmp -> {s} [MS_MOVE]")), "{out}");
    // One writer of the markers at a time: the lock shows, around the plan.
    assert!(out.starts_with(&format!("    lock   - -> {s}/ostree [LOCK_EX, wait 30 s]\n")), "{out}");
    assert!(out.contains(&format!("    unlock - -> {s}/ostree [LOCK_UN]\n")), "{out}");
    assert!(out.contains("reason=default"), "{out}");
}

#[test]
fn sysroot_that_is_not_a_mount_point_is_refused() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let (ok, _, err) = f.boot(&format!("umount \"$SYSROOT\"\n{PREPARE}"));
    assert!(!ok);
    assert!(err.contains("is not a mount point: mount the physical root there first"), "{err}");
}

#[test]
fn a_failed_step_is_undone_and_named() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    // A read-only /run: every write step fails after the move onto the sysroot.
    let script = format!(
        "mount -t tmpfs -o ro none \"$RUN\"\n{PREPARE} && exit 1\n\
         {COUNT_MOUNTS}"
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{out}\n{err}");
    assert_eq!(report(&out)["mounts"], "1", "only the physical root is left mounted: {err}");
    assert!(err.contains("step 10 (write /run/ostree-booted) failed on"), "{err}");
    assert!(err.contains("EROFS 30 (Read-only file system)"), "{err}");
    assert!(err.contains("no deployment could be laid out"), "{err}");
}

#[test]
fn status_marks_the_booted_deployment() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(3);
    f.set_cmdline(&format!("ostree={} rootstock.deployment=2", f.ostree_arg(0)));
    let script = format!(
        "{PREPARE} || exit 1\n\"$ROOTSTOCK\" status --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" --run-dir \"$RUN\" --json\n\
         \"$ROOTSTOCK\" status --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" --run-dir \"$RUN\" >&2"
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["deployments"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let booted: Vec<u64> =
        rows.iter().filter(|r| r["booted"] == true).map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(booted, vec![2]);
    assert_eq!(rows[0]["default"], true);
    assert_eq!(rows[1]["rollback"], true);
    assert_eq!(rows[2]["version"], "1");
    assert_eq!(v["boot"]["reason"], "manual");
    let table_line = err.lines().find(|l| l.starts_with('*')).unwrap_or_default();
    assert!(table_line.contains("booted") && table_line.starts_with("* 2"), "{err}");
}

/// Write `config/PATH` (under `--config-root`).
fn config_file(f: &Fixture, path: &str, text: &str) {
    let p = f.dir.join("config").join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn ostrees_prepare_root_conf_is_read_etc_replacing_usr_lib_and_rootstock_conf_winning() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    // ostree's own file, in /usr/lib: /sysroot read-only.
    config_file(&f, "usr/lib/ostree/prepare-root.conf", "[sysroot]\nreadonly=true\n");
    let r = boot_and_report(&f);
    assert!(r["sysroot_write"].contains("Read-only file system"), "{}", r["sysroot_write"]);
    // /etc/ostree replaces /usr/lib/ostree wholesale: readonly is gone.
    f.reboot();
    config_file(&f, "etc/ostree/prepare-root.conf", "# admin's\n[etc]\ntransient=true\n");
    let r = boot_and_report(&f);
    assert_eq!(r["sysroot_write"], "ok", "the /usr/lib file is not read at all");
    assert!(r["mounts"].contains("/etc:rw"), "{}", r["mounts"]);
    // Where both files set a key, rootstock.conf wins.
    f.reboot();
    config_file(&f, "etc/ostree/prepare-root.conf", "[sysroot]\nreadonly=true\n");
    f.set_config("[sysroot]\nreadonly = false\n");
    let r = boot_and_report(&f);
    assert_eq!(r["sysroot_write"], "ok", "rootstock.conf's readonly = false wins");
}

#[test]
fn a_required_composefs_is_never_replaced_by_the_plain_tree() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    for mode in ["yes", "true", "verity", "signed"] {
        f.reboot();
        config_file(&f, "usr/lib/ostree/prepare-root.conf", &format!("[composefs]\nenabled = {mode}\n"));
        let (ok, out, err) = f.boot(&format!("{PREPARE} && exit 1\n{COUNT_MOUNTS}"));
        assert!(ok, "{mode}: prepare-root must fail:\n{out}\n{err}");
        assert_eq!(report(&out)["mounts"], "1", "{mode}: only the physical root stays mounted");
        assert!(err.contains("no deployment could be laid out"), "{mode}: {err}");
        let shown = if mode == "true" { "yes" } else { mode };
        let why = if mode == "signed" {
            // No key in the initramfs: each deployment refused for it.
            "the signing key"
        } else {
            "the deployment has no composefs image (.ostree.cfs)"
        };
        let summary = err.split("no deployment could be laid out").nth(1).unwrap_or_default();
        let refused = summary.lines().filter(|l| l.contains(&format!("composefs.enabled = {shown}: {why}")));
        assert_eq!(refused.count(), 2, "{mode}: both deployments refused, each saying why: {err}");
        assert!(!f.dir.join("run/rootstock/state").exists(), "{mode}: no state written");
    }
    // A deployment whose image cannot give a verified root (here: not
    // even an image, on a filesystem without fs-verity): refused, never
    // laid out plain.
    f.reboot();
    let d = f.deploy_dir(0);
    assert!(std::process::Command::new("chattr").arg("-i").arg(&d).status().unwrap().success());
    std::fs::write(d.join(".ostree.cfs"), "not mounted").unwrap();
    config_file(&f, "usr/lib/ostree/prepare-root.conf", "[composefs]\nenabled = verity\n");
    let (ok, out, err) = f.boot(&format!("{PREPARE} && exit 1\n{COUNT_MOUNTS}"));
    assert!(ok, "prepare-root must fail:\n{out}\n{err}");
    assert!(err.contains("mount the deployment's composefs image"), "{err}");
    // The kernel argument overrides the file, as ostree's does: `no`
    // boots the plain tree; under `maybe` the image is used, and one that
    // cannot be mounted is refused like any failed step (ostree falls back
    // only when there is no image): the rollback boots.
    for (arg, version) in [("no", "2"), ("maybe", "1")] {
        f.reboot();
        f.set_cmdline(&format!("ostree={} ostree.prepare-root.composefs={arg}", f.ostree_arg(0)));
        let (ok, out, err) = f.boot(&format!("{PREPARE} || exit 1\n{REPORT}"));
        assert!(ok, "{arg}: {err}");
        assert_eq!(report(&out)["version"], version, "{arg}: {err}");
    }
}

#[test]
fn a_transient_root_without_composefs_is_refused() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    for key in ["transient", "transient-ro"] {
        f.reboot();
        config_file(&f, "usr/lib/ostree/prepare-root.conf", &format!("[root]\n{key} = true\n"));
        let (ok, out, err) = f.boot(&format!("{PREPARE} && exit 1\n{COUNT_MOUNTS}"));
        assert!(ok, "{key}: prepare-root must fail:\n{out}\n{err}");
        assert_eq!(report(&out)["mounts"], "1");
        assert!(err.contains(&format!("root.{key} is set: a transient root needs composefs")), "{err}");
    }
}
