//! composefs in a private mount namespace, on the host's kernel: a
//! deployment's `.ostree.cfs` (written as ostree ≥ 2023.4 writes it, by
//! `rootstock-mkcfs`) mounted over the repository's objects, with and
//! without fs-verity, and what each policy refuses. Sysroots made by the
//! real `ostree` CLI.

mod common;

use common::{Fixture, PREPARE, have_root, report};
use rootstock_mkcfs::Options;

/// What the booted system would see, as `key=value` lines.
const REPORT: &str = r#"
S="$SYSROOT"
try() { if out=$("$@" 2>&1); then echo ok; else echo "fail: $out"; fi; }
echo "version=$(cat "$S/usr/share/testos/version" 2>&1)"
echo "usr_write=$(try touch "$S/usr/probe")"
echo "root_write=$(try touch "$S/probe")"
echo "etc_write=$(try sh -c "echo etc >> '$S/etc/probe'")"
echo "var_write=$(try sh -c "echo var >> '$S/var/probe'")"
echo "hostname=$(cat "$S/etc/hostname")"
echo "root_fs=$(awk -v s="$S" '$5==s { for (i=7; i<=NF; i++) if ($i=="-") print $(i+1) }' /proc/self/mountinfo | tail -1)"
echo "added=$([ -e "$S/added-after-image" ] && echo visible || echo hidden)"
echo "image_mounts=$(awk '$5 ~ /cfsroot-lower$/' /proc/self/mountinfo | wc -l)"
echo "booted_keys=$(tr '\0' '\n' <"$RUN/ostree-booted" | grep -E '^(composefs|root)' | sort | tr '\n' ' ')"
echo "volatile_root=$(readlink "$RUN/systemd/volatile-root")"
echo "phys_device=/dev/block/$(stat -c %Hd:%Ld "$PHYS")"
sed 's/^/state./' "$RUN/rootstock/state"
"#;

fn config(f: &Fixture, text: &str) {
    let path = f.dir.join("config/usr/lib/ostree/prepare-root.conf");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn boot(f: &Fixture) -> (std::collections::BTreeMap<String, String>, String) {
    f.reboot();
    let (ok, out, err) = f.boot(&format!("{PREPARE} || exit 1\n{REPORT}"));
    assert!(ok, "prepare-root failed:\n{err}\n{out}");
    (report(&out), err)
}

/// Replace a file by another with `contents` (a new inode, renamed over
/// it), as someone with the disk in hand would.
fn replace(path: &std::path::Path, contents: &str, verity: bool) {
    let tmp = path.with_extension("tampered");
    std::fs::write(&tmp, contents).unwrap();
    if verity {
        let file = std::fs::File::open(&tmp).unwrap();
        rootstock_sys::verity::enable(std::os::fd::AsFd::as_fd(&file)).unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
}

/// Can this kernel enable fs-verity on the fixture's ext4? Where it
/// cannot (CONFIG_FS_VERITY off, as on some CI hosts), the test says so and
/// passes: `qemu-tests/tests/composefs.rs` checks the same under Debian 13's
/// kernel, which has it.
fn fs_verity(f: &Fixture) -> bool {
    let probe = f.phys().join("verity-probe");
    std::fs::write(&probe, "probe").unwrap();
    let file = std::fs::File::open(&probe).unwrap();
    let r = rootstock_sys::verity::enable(std::os::fd::AsFd::as_fd(&file));
    drop(file);
    std::fs::remove_file(&probe).unwrap();
    match r {
        Ok(()) => true,
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOTTY => {
            eprintln!("skipping: this kernel has no fs-verity ({e}); the QEMU composefs scenario checks it");
            false
        }
        Err(e) => panic!("enabling fs-verity: {e}"),
    }
}

#[test]
fn composefs_root_is_the_image_read_only_with_etc_and_var_writable() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    f.write_composefs_image(0, &Options::default());
    // Written into the deployment's directory after its image: not in the root.
    std::fs::write(f.deploy_dir(0).join("added-after-image"), "").unwrap();
    config(&f, "[composefs]\nenabled = yes\n");
    let (r, _) = boot(&f);
    assert_eq!(r["version"], "2");
    assert_eq!(r["root_fs"], "overlay", "/ is the composefs overlay");
    assert!(r["usr_write"].contains("Read-only file system"), "{}", r["usr_write"]);
    assert!(r["root_write"].contains("Read-only file system"), "{}", r["root_write"]);
    assert_eq!(r["etc_write"], "ok");
    assert_eq!(r["var_write"], "ok");
    assert_eq!(r["hostname"], "testos", "/etc is the deployment's");
    assert_eq!(r["added"], "hidden", "the image's tree, not the directory's");
    assert_eq!(r["image_mounts"], "0", "the image's own mount is detached once the overlay holds it");
    assert_eq!(
        r["booted_keys"], "composefs composefs.verity root.transient root.transient-ro",
        "/run/ostree-booted says composefs"
    );
    assert!(std::fs::read_to_string(f.deploy_dir(0).join("etc/probe")).unwrap().contains("etc"));

    // maybe: the image when there is one, the plain tree when there is none.
    config(&f, "[composefs]\nenabled = maybe\n");
    assert_eq!(boot(&f).0["root_fs"], "overlay");
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(1)));
    let (r, _) = boot(&f);
    assert_eq!((r["version"].as_str(), r["added"].as_str()), ("1", "hidden"));
    assert_ne!(r["root_fs"], "overlay", "deployment 1 has no image: the plain tree");
    assert_eq!(r["booted_keys"], "root.transient");

    // An image the kernel cannot mount: refused (ostree too falls back only
    // when there is no image), the next deployment boots.
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    std::fs::write(f.deploy_dir(0).join(".ostree.cfs"), "not an erofs image").unwrap();
    let (r, err) = boot(&f);
    assert_eq!(r["version"], "1", "{err}");
    assert!(err.contains("mount the deployment's composefs image") && err.contains("EINVAL"), "{err}");
}

#[test]
fn verity_protects_every_object_and_the_image() {
    if !have_root() {
        return;
    }
    let f = Fixture::on_ext4_with_verity(2);
    if !fs_verity(&f) {
        return;
    }
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let verity = Options { enable_verity: true, ..Options::default() };
    f.write_composefs_image(0, &verity);
    f.write_composefs_image(1, &verity);
    config(&f, "[composefs]\nenabled = verity\n");
    let (r, _) = boot(&f);
    assert_eq!((r["version"].as_str(), r["root_fs"].as_str()), ("2", "overlay"));
    assert_eq!(r["volatile_root"], r["phys_device"], "systemd finds the disk behind the overlay");

    // An object replaced behind ostree's back, by a file without fs-verity
    // and by one with another digest: the root still mounts (as with
    // ostree), the file cannot be read; the others can.
    let object =
        rootstock_mkcfs::object_of(&f.phys(), &f.deploy_dir(0).join("usr/share/testos/version")).unwrap();
    for with_verity in [false, true] {
        replace(&object, "9\n", with_verity);
        let (r, _) = boot(&f);
        assert!(r["version"].contains("Input/output error"), "verity {with_verity}: {}", r["version"]);
        assert_eq!(r["hostname"], "testos");
    }

    // An image without fs-verity: refused, the next deployment boots and
    // the reason is said; under `yes` nothing is checked and it boots.
    f.write_composefs_image(0, &Options::default());
    let (r, err) = boot(&f);
    assert_eq!(r["version"], "1", "{err}");
    assert_eq!(r["state.reason"], "fallback");
    assert!(err.contains("mount the deployment's composefs image") && err.contains("ENODATA"), "{err}");
    config(&f, "[composefs]\nenabled = yes\n");
    let (r, _) = boot(&f);
    assert_eq!(r["root_fs"], "overlay");
    assert_eq!(r["state.index"], "0");
}

#[test]
fn transient_root_keeps_its_changes_in_run_until_reboot() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(1);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    f.write_composefs_image(0, &Options::default());
    config(&f, "[composefs]\nenabled = yes\n[root]\ntransient = true\n");
    let (r, _) = boot(&f);
    assert_eq!(r["usr_write"], "ok");
    assert_eq!(r["root_write"], "ok");
    assert!(f.dir.join("run/ostree/.private/root/upper/usr/probe").exists(), "the change is in /run");
    assert!(!f.deploy_dir(0).join("usr/probe").exists(), "and not on the disk");
    f.reboot();
    let probe = "[ -e \"$SYSROOT/usr/probe\" ] && echo kept || echo gone";
    let (ok, out, err) = f.boot(&format!("{PREPARE} || exit 1\n{probe}"));
    assert!(ok && out.contains("gone"), "a reboot forgets it: {out}{err}");

    config(&f, "[composefs]\nenabled = yes\n[root]\ntransient-ro = true\n");
    let (r, _) = boot(&f);
    assert!(r["usr_write"].contains("Read-only file system"), "{}", r["usr_write"]);
    assert_eq!(r["etc_write"], "ok");
}

#[test]
fn a_composefs_boot_is_counted_blessed_and_shown_as_booted() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.tries=3", f.ostree_arg(0)));
    f.write_composefs_image(0, &Options::default());
    let tool = "\"$ROOTSTOCK\" --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" --run-dir \"$RUN\"";
    let script = format!(
        "{PREPARE} || exit 1\n{} || exit 1\n{} --json",
        tool.replace("--sysroot", "bless --sysroot"),
        tool.replace("--sysroot", "status --sysroot"),
    );
    // `/` is an overlay, not the deployment's directory: the booted one is
    // found by its /etc, or, with a transient /etc, by /run/ostree-booted.
    for etc in ["", "[etc]\ntransient = true\n"] {
        config(&f, &format!("[composefs]\nenabled = yes\n{etc}"));
        f.reboot();
        let (ok, out, err) = f.boot(&script);
        assert!(ok, "{etc}: {err}\n{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let rows = v["deployments"].as_array().unwrap();
        let booted: Vec<u64> =
            rows.iter().filter(|r| r["booted"] == true).map(|r| r["index"].as_u64().unwrap()).collect();
        assert_eq!(booted, vec![0], "{etc}: {out}");
        assert_eq!(rows[0]["counting"]["state"], "good", "{etc}: blessed: {out}");
    }
}
