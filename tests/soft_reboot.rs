//! `rootstock prepare-soft-reboot` in a private mount namespace, from a
//! system booted by `prepare-root` on a sysroot made by the real `ostree`
//! CLI, with every mount made shared first as systemd makes them: what the
//! userspace that `systemctl soft-reboot` starts in `/run/nextroot` sees.

mod common;

use common::{Fixture, PREPARE, have_root, report};

/// After the boot (`PREPARE`, as the command line says), make everything
/// shared as systemd does, write to /var; `soft` runs prepare-soft-reboot.
const BOOTED: &str = r#"
mount --make-rshared "$SYSROOT" || exit 98
echo before-soft-reboot > "$SYSROOT/var/soft-probe"
N="$RUN/nextroot"
soft() { "$ROOTSTOCK" prepare-soft-reboot --sysroot "$SYSROOT/sysroot" --run-dir "$RUN" --nextroot "$N" \
    --cmdline "$CMDLINE" --boot "$SYSROOT/sysroot/boot" --config-root "$CONFIG_ROOT" --kernel-release "${KREL:-6.1.0-test}" "$@"; }
"#;

/// What the next userspace would see at `$N`, as `key=value` lines.
const NEXT: &str = r#"
try() { if out=$("$@" 2>&1); then echo ok; else echo "fail: $out"; fi; }
below() { awk -v s="$1" '$5==s || index($5, s"/")==1' /proc/self/mountinfo; }
echo "version=$(cat "$N/usr/share/testos/version")"
echo "usr_write=$(try touch "$N/usr/probe")"
echo "etc_write=$(try sh -c "echo etc >> '$N/etc/probe'")"
echo "var_probe=$(cat "$N/var/soft-probe")"
echo "sysroot_is_phys=$([ "$(stat -c %d:%i "$N/sysroot")" = "$(stat -c %d:%i "$PHYS")" ] && echo yes || echo no)"
echo "next_mounts=$(below "$N" | awk -v s="$N" '{split($6, o, ","); print substr($5, length(s)+1) ":" o[1]}' | LC_ALL=C sort | tr '\n' ' ')"
# mountinfo's optional fields name a peer group (shared:N) or a master (master:N)
echo "next_shared=$(below "$N" | awk '{for (i = 7; $i != "-"; i++) if ($i ~ /^(shared|master):/) n++} END {print n + 0}')"
# nothing propagated into the running system's physical root
echo "phys_mounts=$(below "$SYSROOT/sysroot" | wc -l)"
echo "pending_reason=$(sed -n 's/^reason=//p' "$RUN/rootstock/soft-reboot")"
echo "running_reason=$(sed -n 's/^reason=//p' "$RUN/rootstock/state")"
echo "ostree_booted=$([ -f "$RUN/ostree-booted" ] && echo yes || echo no)"
"#;

#[test]
fn the_default_is_laid_out_at_nextroot_as_at_boot() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.deployment=1", f.ostree_arg(0)));
    let script = format!(
        "{PREPARE} || exit 1\n{BOOTED}\nsoft || exit 2\n{NEXT}\n\
         echo \"status_running=$(\"$ROOTSTOCK\" status --sysroot \"$SYSROOT/sysroot\" --root \"$SYSROOT\" --run-dir \"$RUN\" | grep -c 'prepared for')\"\n\
         echo \"status_next=$(\"$ROOTSTOCK\" status --sysroot \"$SYSROOT/sysroot\" --root \"$N\" --run-dir \"$RUN\" | sed -n 's/^this boot: //p')\"\n"
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}\n{out}");
    let r = report(&out);
    assert_eq!(r["version"], "2", "the default deployment, not the running rollback");
    assert!(r["usr_write"].contains("Read-only file system"), "{}", r["usr_write"]);
    assert_eq!(r["etc_write"], "ok");
    assert_eq!(r["var_probe"], "before-soft-reboot", "the stateroot's /var");
    assert_eq!(r["sysroot_is_phys"], "yes");
    assert_eq!(r["next_mounts"], "/etc:rw /sysroot:rw /usr:ro /var:rw :rw");
    assert_eq!(r["next_shared"], "0", "every mount below the new root is private");
    assert_eq!(r["phys_mounts"], "1", "nothing propagated below the running /sysroot");
    assert_eq!(r["pending_reason"], "soft-reboot");
    assert_eq!(r["running_reason"], "manual", "the running system's state stays");
    assert_eq!(r["ostree_booted"], "yes");
    assert_eq!(r["status_running"], "1", "status shows the prepared soft reboot");
    let id = f.deploy_dir(0).file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r["status_next"].starts_with(&format!("testos/{id} (soft-reboot; requested prepare-soft-reboot")),
        "{}",
        r["status_next"]
    );
}

#[test]
fn running_it_twice_is_safe_and_reset_undoes_it() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.deployment=1", f.ostree_arg(0)));
    let script = format!(
        "{PREPARE} || exit 1\n{BOOTED}\nsoft || exit 2\nsoft rollback || exit 3\n{NEXT}\nsoft --reset || exit 4\n\
         echo \"after_reset=$(awk -v s=\"$N\" '$5==s || index($5, s\"/\")==1' /proc/self/mountinfo | wc -l)\"\n\
         echo \"pending_left=$([ -e \"$RUN/rootstock/soft-reboot\" ] && echo yes || echo no)\"\n\
         soft --reset || exit 5\n"
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}\n{out}");
    let r = report(&out);
    assert_eq!(r["version"], "1", "the second preparation (rollback) replaced the first");
    assert_eq!(r["next_mounts"], "/etc:rw /sysroot:rw /usr:ro /var:rw :rw", "one layout, not two");
    assert_eq!(r["after_reset"], "0");
    assert_eq!(r["pending_left"], "no");
    assert!(err.contains("no soft reboot was prepared"), "{err}");
}

#[test]
fn a_deployment_for_another_kernel_is_refused_with_what_to_do() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={}", f.ostree_arg(0)));
    let script = format!(
        "{PREPARE} || exit 1\n{BOOTED}\nKREL=6.12.99-other soft; echo \"status=$?\"\n\
         echo \"next_mounts=$(awk -v s=\"$N\" '$5==s' /proc/self/mountinfo | wc -l)\"\n"
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}\n{out}");
    let r = report(&out);
    assert_eq!(r["status"], "1");
    assert_eq!(r["next_mounts"], "0");
    assert!(
        err.contains("has no modules for the running kernel 6.12.99-other (it was built for 6.1.0-test)")
            && err.contains("--kexec")
            && err.contains("systemctl kexec"),
        "{err}"
    );
}

/// `prepare-soft-reboot` only ever detaches what it laid out: `--nextroot`
/// naming the physical root or a parent of it is refused before anything
/// is done; something else mounted at the next root is refused, not laid
/// over; `--reset` with nothing prepared detaches nothing, whatever
/// `--nextroot` names (an unrelated tmpfs, the running root itself).
#[test]
fn it_never_detaches_what_it_did_not_lay_out() {
    if !have_root() {
        return;
    }
    let f = Fixture::new(2);
    f.set_cmdline(&format!("ostree={} rootstock.deployment=1", f.ostree_arg(0)));
    let script = format!(
        "{PREPARE} || exit 1\n{BOOTED}\n\
         soft_at() {{ at=$1; shift; \"$ROOTSTOCK\" prepare-soft-reboot --sysroot \"$SYSROOT/sysroot\" --run-dir \"$RUN\" --nextroot \"$at\" \
             --cmdline \"$CMDLINE\" --boot \"$SYSROOT/sysroot/boot\" --config-root \"$CONFIG_ROOT\" --kernel-release 6.1.0-test \"$@\"; }}\n\
         count() {{ awk -v s=\"$1\" '$5==s || index($5, s\"/\")==1' /proc/self/mountinfo | wc -l; }}\n\
         before=$(count \"$SYSROOT\")\n\
         soft_at \"$SYSROOT/sysroot\"; echo \"phys_rc=$?\"\n\
         soft_at \"$SYSROOT\"; echo \"parent_rc=$?\"\n\
         echo \"root_intact=$([ \"$(count \"$SYSROOT\")\" = \"$before\" ] && echo yes || echo no)\"\n\
         soft_at \"$SYSROOT\" --reset; echo \"reset_root_rc=$?\"\n\
         echo \"root_intact_after_reset=$([ \"$(count \"$SYSROOT\")\" = \"$before\" ] && echo yes || echo no)\"\n\
         mkdir -p \"$RUN/other\" && mount -t tmpfs other \"$RUN/other\" || exit 3\n\
         soft_at \"$RUN/other\" --reset; echo \"reset_other_rc=$?\"\n\
         echo \"other_mounted=$(count \"$RUN/other\")\"\n\
         mkdir -p \"$N\" && mount -t tmpfs foreign \"$N\" || exit 4\n\
         soft; echo \"foreign_rc=$?\"\n\
         echo \"foreign_mounted=$(count \"$N\")\"\n\
         echo \"pending=$([ -e \"$RUN/rootstock/soft-reboot\" ] && echo yes || echo no)\"\n"
    );
    let (ok, out, err) = f.boot(&script);
    assert!(ok, "{err}\n{out}");
    let r = report(&out);
    assert_eq!((r["phys_rc"].as_str(), r["parent_rc"].as_str()), ("1", "1"), "{err}");
    assert!(err.contains("it must be a directory under the run directory"), "{err}");
    assert_eq!(r["root_intact"], "yes", "{err}");
    assert_eq!(r["reset_root_rc"], "0", "{err}");
    assert_eq!(r["root_intact_after_reset"], "yes", "{err}");
    assert_eq!(r["reset_other_rc"], "0", "{err}");
    assert_eq!(r["other_mounted"], "1", "an unrelated tmpfs stays: {err}");
    assert!(err.contains("no soft reboot was prepared: nothing changed"), "{err}");
    assert_eq!(r["foreign_rc"], "1", "{err}");
    assert!(err.contains("has a mount that is not the soft reboot's"), "{err}");
    assert_eq!(r["foreign_mounted"], "1", "nothing laid over it: {err}");
    assert_eq!(r["pending"], "no", "{err}");
}
