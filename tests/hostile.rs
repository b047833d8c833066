//! Hostile or damaged physical roots (issue 10), in a private mount
//! namespace against sysroots made by the real `ostree` CLI: symlinks where
//! rootstock mounts or deletes never reach outside the physical root.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::{Fixture, PREPARE, have_root, report};

/// Prints the version booted and every mount that is at, or shows, a
/// directory outside the physical root (`$OUTSIDE` and the test's
/// physical root are on the same tmpfs, so a bind from outside shows its
/// source in mountinfo's root field).
const AFTER: &str = r#"
echo "version=$(cat "$SYSROOT/usr/share/testos/version" 2>/dev/null)"
echo "outside_mounts=$(awk -v o="$OUTSIDE" -v b="/$(basename "$OUTSIDE")" 'index($5, o)==1 || index($4, b) {print $4 " " $5}' /proc/self/mountinfo | tr '\n' ' ')"
"#;

fn chattr_minus_i(p: &Path) {
    let _ = Command::new("chattr").arg("-i").arg(p).status();
}

fn boot_with_outside(f: &Fixture, outside: &Path, script: &str) -> (bool, String, String) {
    f.boot(&format!("OUTSIDE='{}'\n{script}", outside.display()))
}

/// A deployment's usr, etc, var or sysroot, or the stateroot's var, as a
/// symlink to a directory outside the physical root: the deployment is
/// skipped (the previous one boots), nothing is mounted outside.
#[test]
fn symlinked_mount_sources_never_mount_outside_the_root() {
    if !have_root() {
        return;
    }
    for name in ["usr", "etc", "var", "sysroot", "STATEROOT_VAR"] {
        let f = Fixture::new(2);
        f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
        let outside = f.dir.join("outside");
        std::fs::create_dir_all(outside.join("sbin")).unwrap();
        let d0 = f.deploy_dir(0);
        chattr_minus_i(&d0);
        let victim =
            if name == "STATEROOT_VAR" { f.phys().join("ostree/deploy/testos/var") } else { d0.join(name) };
        let moved = victim.with_file_name(format!("{name}.moved"));
        std::fs::rename(&victim, &moved).unwrap();
        symlink(&outside, &victim).unwrap();
        let (ok, out, err) = boot_with_outside(&f, &outside, &format!("{PREPARE}; echo rc=$?\n{AFTER}"));
        assert!(ok, "{name}: {err}");
        let r = report(&out);
        assert_eq!(r["outside_mounts"], "", "{name}: mounted outside the root:\n{err}");
        if name == "STATEROOT_VAR" {
            // Every deployment shares the stateroot's var: nothing boots.
            assert_ne!(r["rc"], "0", "{name}: {err}");
        } else {
            assert_eq!(r["rc"], "0", "{name}: {err}");
            assert_eq!(r["version"], "1", "{name}: the previous deployment boots instead");
        }
        assert!(err.contains("is a symlink"), "{name}: {err}");
    }
}

/// The physical root's /boot as a symlink out of the root: it is not bound.
#[test]
fn symlinked_physical_boot_is_not_bound() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    // The physical root's boot moved outside it, with its loader link, and
    // a symlink left in its place.
    let outside = f.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let boot = f.phys().join("boot");
    std::fs::rename(&boot, outside.join("boot")).unwrap();
    symlink(outside.join("boot"), &boot).unwrap();
    let d0 = f.deploy_dir(0);
    chattr_minus_i(&d0);
    std::fs::create_dir_all(d0.join("boot")).unwrap();
    let (_ok, out, err) = boot_with_outside(&f, &outside, &format!("{PREPARE}; echo rc=$?\n{AFTER}"));
    let r = report(&out);
    assert_eq!(r["outside_mounts"], "", "mounted outside the root:\n{err}");
}

fn entries(f: &Fixture) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(f.phys().join("boot/loader/entries"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `/ostree/rootstock -> ../boot/loader.N/entries`: prepare-root (counting
/// off and on) and bless delete nothing there; the entries survive.
#[test]
fn marker_dir_symlink_deletes_nothing_outside_it() {
    if !have_root() {
        return;
    }
    for (tries, cmd) in [("0", PREPARE), ("3", PREPARE), ("0", "")] {
        let f = Fixture::new(2);
        f.set_cmdline(&format!("ostree={} rootstock.tries={tries}", f.ostree_arg(0)));
        let before = entries(&f);
        assert_eq!(before.len(), 2);
        let loader = std::fs::read_link(f.phys().join("boot/loader")).unwrap();
        symlink(format!("../boot/{}/entries", loader.display()), f.phys().join("ostree/rootstock")).unwrap();
        let script = if cmd.is_empty() {
            format!(
                "{PREPARE} || exit 1\n\"$ROOTSTOCK\" bless --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\"; echo rc=$?"
            )
        } else {
            format!("{cmd}; echo rc=$?")
        };
        let (_ok, out, err) = f.boot(&script);
        assert_eq!(
            entries(&f),
            before,
            "tries={tries} {cmd:?}: the loader entries were changed:\n{err}\n{out}"
        );
        assert!(err.contains("not a symlink"), "tries={tries}: {err}");
        if cmd.is_empty() {
            assert_ne!(report(&out)["rc"], "0", "bless refuses a symlinked marker directory: {err}");
        } else {
            assert_eq!(report(&out)["rc"], "0", "the boot goes on without counting: {err}");
        }
        f.reboot();
    }
}

/// 500 stale markers: removed, and said in one line, not 500.
#[test]
fn stale_markers_are_logged_as_a_count() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let dir = f.phys().join("ostree/rootstock");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..500 {
        std::fs::write(dir.join(format!("testos-{i:064x}.0+01-02")), "").unwrap();
    }
    let (ok, _out, err) = f.boot(PREPARE);
    assert!(ok, "{err}");
    assert!(err.contains("removing 500 stale or duplicate marker(s)"), "{err}");
    assert!(err.lines().count() < 10, "one line per marker:\n{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

/// A duplicate marker that cannot be removed (immutable: EPERM) does not
/// stop `bless`: the kept marker is blessed, the duplicate stays.
#[test]
fn bless_works_when_a_duplicate_marker_cannot_be_removed() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=3", f.ostree_arg(0)));
    let (ok, _out, err) = f.boot(PREPARE);
    assert!(ok, "{err}");
    f.reboot();
    let dir = f.phys().join("ostree/rootstock");
    let b0 = format!("testos-{}", f.deploy_dir(0).file_name().unwrap().to_str().unwrap());
    assert!(dir.join(format!("{b0}+02-01")).exists(), "armed");
    // A duplicate with fewer tries left: kept; the armed one must go, and cannot.
    std::fs::write(dir.join(format!("{b0}+01-02")), "").unwrap();
    let stuck = dir.join(format!("{b0}+02-01"));
    assert!(Command::new("chattr").arg("+i").arg(&stuck).status().unwrap().success());
    let (_ok, out, err) = f.boot(&format!(
        "{PREPARE} || exit 1\n\"$ROOTSTOCK\" bless --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\"; echo rc=$?"
    ));
    chattr_minus_i(&stuck);
    assert_eq!(report(&out)["rc"], "0", "{err}");
    assert!(err.contains(&format!("{b0} is now good")), "{err}");
    assert!(dir.join(&b0).exists(), "{err}");
}

/// The run directory is written without following a symlink: `RUN/rootstock`
/// pointing elsewhere gets no `state`, and `RUN/ostree/transient-etc`
/// pointing elsewhere gets no `upper/` or `work/`. The step that would go
/// through the symlink fails with ELOOP, naming it; nothing is created
/// outside.
#[test]
fn symlinks_in_the_run_directory_are_never_followed_by_prepare_root() {
    if !have_root() {
        return;
    }
    for (link, transient) in [("rootstock", false), ("ostree/transient-etc", true)] {
        let f = Fixture::new(1);
        f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
        if transient {
            f.set_config("[etc]\ntransient = true\n");
        }
        let outside = f.dir.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let at = f.dir.join("run").join(link);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        symlink(&outside, &at).unwrap();
        let (ok, out, err) = f.boot(&format!("{PREPARE}; echo rc=$?\n"));
        assert!(ok, "{link}: {err}");
        let r = report(&out);
        assert_ne!(r["rc"], "0", "{link}: nothing boots through a hostile /run: {err}");
        assert!(err.contains("ELOOP"), "{link}: {err}");
        let left: Vec<_> = std::fs::read_dir(&outside).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{link}: written outside the run directory: {left:?}\n{err}");
    }
}
