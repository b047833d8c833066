//! The differential harness: ostree's own `ostree-prepare-root` and
//! rootstock's `prepare-root`, run over the same sysroots made by the real
//! `ostree` CLI, compared by what each leaves behind (the mounts at and
//! below /sysroot, everything under /run, the exit status, and what the
//! booted system would see). Every difference is either listed in [`RULES`]
//! as deliberate, with its reason (and in tests/differential.md), or fails
//! the test.
//!
//! Used by `tests/differential.rs` (Debian 12's ostree 2022.7 on the host)
//! and `qemu-tests/tests/differential_trixie.rs` (Debian trixie's ostree
//! 2025.2, run inside the debootstrapped trixie tree). Only std: the QEMU
//! test crate has no other dependencies.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `tests/fixtures` of the repository (this file is compiled into two crates).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("tests/fixtures"))
        .find(|f| f.join("differential-run.sh").is_file())
        .expect("tests/fixtures/differential-run.sh above the crate")
}

fn sh(script: &str, envs: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script]).env("FIX", fixtures());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("bash");
    assert!(
        out.status.success(),
        "fixture step failed:\n{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A physical root made by `ostree admin deploy` (make-sysroot.sh, trees
/// completed by differential-populate.sh), on a tmpfs; removed when dropped.
pub struct Sysroot {
    pub dir: PathBuf,
    /// Where the boot loader entries are (the physical root's /boot, or a
    /// separate "partition" after [`Sysroot::split_boot`]).
    boot: PathBuf,
}

impl Sysroot {
    pub fn new(deployments: usize) -> Sysroot {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::var_os("ROOTSTOCK_TEST_TMPFS").map(PathBuf::from).unwrap_or("/dev/shm".into());
        let dir =
            base.join(format!("rootstock-diff-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Sysroot { boot: dir.join("phys/boot"), dir };
        sh(
            "TESTOS_POPULATE=\"$FIX/differential-populate.sh\" \"$FIX/make-sysroot.sh\" \"$PHYS\" \"$N\" >/dev/null",
            &[("PHYS", &s.phys()), ("N", Path::new(&deployments.to_string()))],
        );
        s
    }

    pub fn phys(&self) -> PathBuf {
        self.dir.join("phys")
    }

    /// Run a bash script with `$PHYS` and `$FIX` (tests/fixtures) set.
    pub fn sh(&self, script: &str) -> String {
        sh(script, &[("PHYS", &self.phys())])
    }

    /// `ostree=` of every BLS entry, in ostree's order (version descending).
    pub fn ostree_args(&self) -> Vec<String> {
        let mut v: Vec<(u32, String)> = std::fs::read_dir(self.boot.join("loader/entries"))
            .unwrap()
            .map(|e| {
                let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
                let version = text.lines().find_map(|l| l.strip_prefix("version ")).unwrap().parse().unwrap();
                let arg = text.split_whitespace().find_map(|w| w.strip_prefix("ostree=")).unwrap();
                (version, arg.to_string())
            })
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.0));
        v.into_iter().map(|(_, a)| a).collect()
    }

    pub fn ostree_arg(&self, index: usize) -> String {
        self.ostree_args()[index].clone()
    }

    /// Move /boot's contents to a directory of their own, as when /boot is a
    /// partition: the initramfs sees an empty /boot on the physical root.
    pub fn split_boot(&mut self) {
        let part = self.dir.join("bootpart");
        sh(
            "mkdir \"$TO\" && cd \"$PHYS/boot\" && mv -- $(ls -A) \"$TO\"/",
            &[("PHYS", &self.phys()), ("TO", &part)],
        );
        self.boot = part;
    }
}

impl Drop for Sysroot {
    fn drop(&mut self) {
        // ostree marks deployment directories immutable.
        let _ = Command::new("sh")
            .args(["-c", "chattr -i \"$1\"/ostree/deploy/*/deploy/*.[0-9]* 2>/dev/null; true", "-"])
            .arg(self.phys())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a scenario boots, for both programs.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub ostree_arg: String,
    /// The physical root is mounted read-only (`ro` on the kernel command line).
    pub phys_ro: bool,
    /// The stateroot of the deployment booted (for the /var probe).
    pub stateroot: String,
    /// `/etc/rootstock/rootstock.conf` in the initramfs.
    pub rootstock_conf: Option<String>,
    /// `/etc/ostree/prepare-root.conf` in the initramfs (ostree ≥ 2023.4).
    pub prepare_root_conf: Option<String>,
}

impl Boot {
    fn new(ostree_arg: String) -> Boot {
        Boot { ostree_arg, stateroot: "testos".into(), ..Boot::default() }
    }
}

/// One row of the matrix.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// The ostree release that introduced what the row exercises, and what
    /// that is: with an older ostree the row's differences are expected.
    pub since: Option<(&'static str, &'static str)>,
    /// Make the sysroot; returns how to boot it.
    pub setup: fn(&mut Sysroot) -> Boot,
}

const READONLY_REPO: &str = "ostree config --repo=\"$PHYS/ostree/repo\" set sysroot.readonly true";

/// `ostree admin unlock --hotfix` on the default deployment (run as if
/// booted into it), and a file installed under /usr through the overlay.
fn hotfix(s: &mut Sysroot) -> Boot {
    let arg = s.ostree_arg(0);
    s.sh(&format!("\"$FIX/ostree-booted.sh\" \"$PHYS\" {arg} ostree admin unlock --hotfix >/dev/null"));
    // The clone ostree pushed as rollback changed the boot version.
    let arg = s.ostree_arg(0);
    // ostree mounted its overlay in a mount namespace of its own: install
    // the file through an overlay of the same layers.
    s.sh(&format!(
        "cd \"$(realpath \"$PHYS/{arg}\")\"\n\
         unshare -m sh -ec 'mount -t overlay overlay -o lowerdir=usr,upperdir=.usr-ovl-upper,workdir=.usr-ovl-work usr\n\
         echo hotfix >usr/share/testos/hotfix'"
    ));
    Boot::new(arg)
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "default",
        about: "the default deployment (index 0)",
        since: None,
        setup: |s| Boot::new(s.ostree_arg(0)),
    },
    Scenario {
        name: "rollback",
        about: "the rollback deployment (index 1) by its ostree=",
        since: None,
        setup: |s| Boot::new(s.ostree_arg(1)),
    },
    Scenario {
        name: "sysroot-readonly",
        about: "`ostree config set sysroot.readonly true` (the repo config, read by both)",
        since: None,
        setup: |s| {
            s.sh(READONLY_REPO);
            Boot::new(s.ostree_arg(0))
        },
    },
    Scenario {
        name: "etc-transient",
        about: "etc.transient=true with sysroot.readonly=true (prepare-root.conf / rootstock.conf)",
        since: Some(("2023.7", "etc.transient")),
        setup: |s| Boot {
            prepare_root_conf: Some("[etc]\ntransient=true\n[sysroot]\nreadonly=true\n".into()),
            rootstock_conf: Some("[etc]\ntransient = true\n[sysroot]\nreadonly = true\n".into()),
            ..Boot::new(s.ostree_arg(0))
        },
    },
    Scenario {
        name: "etc-transient-alone",
        about: "etc.transient=true without sysroot.readonly",
        since: Some(("2023.7", "etc.transient")),
        setup: |s| Boot {
            prepare_root_conf: Some("[etc]\ntransient=true\n".into()),
            rootstock_conf: Some("[etc]\ntransient = true\n".into()),
            ..Boot::new(s.ostree_arg(0))
        },
    },
    Scenario {
        name: "ro-root",
        about: "the physical root mounted read-only (`ro`), nothing configured",
        since: None,
        setup: |s| Boot { phys_ro: true, ..Boot::new(s.ostree_arg(0)) },
    },
    Scenario {
        name: "hotfix",
        about: "`ostree admin unlock --hotfix`, a file installed under /usr",
        since: None,
        setup: hotfix,
    },
    Scenario {
        name: "hotfix-ro-root",
        about: "the same, the physical root mounted read-only",
        since: None,
        setup: |s| Boot { phys_ro: true, ..hotfix(s) },
    },
    Scenario {
        name: "boot-in-root",
        about: "/boot a directory of the physical root (bound into the deployment)",
        since: None,
        setup: |s| Boot::new(s.ostree_arg(0)),
    },
    Scenario {
        name: "boot-partition",
        about: "/boot on its own filesystem (not mounted in the initramfs)",
        since: None,
        setup: |s| {
            let arg = s.ostree_arg(0);
            s.split_boot();
            Boot::new(arg)
        },
    },
    Scenario {
        name: "pinned",
        about: "`ostree admin pin 1`, booting the pinned rollback",
        since: None,
        setup: |s| {
            s.sh("ostree admin pin --sysroot=\"$PHYS\" 1 >/dev/null");
            Boot::new(s.ostree_arg(1))
        },
    },
    Scenario {
        name: "staged",
        about: "`ostree admin deploy --stage`, not finalized (no shutdown)",
        since: None,
        setup: |s| {
            let arg = s.ostree_arg(0);
            s.sh(&format!(
                "\"$FIX/ostree-booted.sh\" \"$PHYS\" {arg} ostree admin deploy --stage testos/x86_64 >/dev/null"
            ));
            Boot::new(s.ostree_arg(0))
        },
    },
    Scenario {
        name: "two-stateroots",
        about: "a second stateroot (`os-init otheros`), its deployment booted",
        since: None,
        setup: |s| {
            s.sh("ostree admin os-init --sysroot=\"$PHYS\" otheros >/dev/null && \
                 ostree admin deploy --sysroot=\"$PHYS\" --os=otheros --retain \
                 --karg=root=LABEL=testroot --karg=rw testos/x86_64 >/dev/null");
            let arg = s.ostree_arg(0);
            assert!(arg.contains("/otheros/"), "{arg}");
            Boot { stateroot: "otheros".into(), ..Boot::new(arg) }
        },
    },
    Scenario {
        name: "stale-ostree-arg",
        about: "ostree= names a boot.N that no longer exists (ostree#2283)",
        since: None,
        setup: |s| {
            let arg = s.ostree_arg(0).replacen("/boot.0/", "/boot.7/", 1).replacen("/boot.1/", "/boot.7/", 1);
            Boot::new(arg)
        },
    },
];

/// A version such as "2022.7" as (year, release).
pub fn version(v: &str) -> (u32, u32) {
    let mut it =
        v.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// One of ostree's prepare-root programs, and the /usr it runs from.
#[derive(Debug, Clone)]
pub struct Ostree {
    /// The package version, e.g. "2022.7".
    pub version: String,
    /// The /usr bound into the initramfs-like root (its libraries too).
    pub usr: PathBuf,
}

impl Ostree {
    /// The ostree-boot package installed in the tree at `root` (`/` for the host).
    pub fn installed(root: &Path) -> Option<Ostree> {
        if !root.join("usr/lib/ostree/ostree-prepare-root").is_file() {
            return None;
        }
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", root.join("var/lib/dpkg").display()))
            .args(["-W", "-f=${Version}", "ostree-boot"])
            .output()
            .ok()?;
        let full = String::from_utf8_lossy(&out.stdout).into_owned();
        let v = full.split(['-', '+', '~']).next().unwrap_or("").to_string();
        (!v.is_empty()).then(|| Ostree { version: v, usr: root.join("usr") })
    }
}

/// What one program left behind: fact key → value.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub facts: BTreeMap<String, String>,
    pub exit: String,
    pub stderr: String,
}

/// Shorten `ostree/deploy/SR/deploy/CSUM.N` to `CSUM[..7].N` for the table.
fn short_deploy(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/deploy/") {
        let (head, tail) = rest.split_at(i + "/deploy/".len());
        out.push_str(head);
        let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 64 {
            out.push_str(&tail[..7]);
            rest = &tail[64..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Parse differential-run.sh's output into keyed facts. A mount's key is its
/// mount point; mounts covered by a later one at the same point get
/// " (covered N)", N counting from the top of the stack.
pub fn parse(stdout: &str) -> BTreeMap<String, String> {
    let mut facts = BTreeMap::new();
    let mut mounts: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "exit" => {
                facts.insert("exit".into(), rest.into());
            }
            "mount" => {
                let (mp, v) = rest.split_once(' ').unwrap_or((rest, ""));
                // Overlay layers under the staging mount are the deployment's
                // directories, however each program spells them.
                let v = v.trim().replace("dir=/sysroot.tmp/", "dir=");
                mounts.push((mp.into(), short_deploy(&v)));
            }
            "run" => {
                // TYPE MODE SIZE PATH [HEX]
                let w: Vec<&str> = rest.split(' ').collect();
                if w.len() >= 4 {
                    let mut v = format!("{} {} {}", w[0], w[1], w[2]);
                    if let Some(hex) = w.get(4) {
                        v.push(' ');
                        v.push_str(&gvariant::describe(hex));
                    }
                    facts.insert(format!("run {}", w[3]), v);
                }
            }
            "left" => {
                facts.insert(format!("left {rest}"), "exists".into());
            }
            "probe" => {
                let (name, v) = rest.split_once(' ').unwrap_or((rest, ""));
                facts.insert(format!("probe {name}"), v.into());
            }
            _ => {}
        }
    }
    for (i, (mp, v)) in mounts.iter().enumerate() {
        let above = mounts[i + 1..].iter().filter(|(m, _)| m == mp).count();
        let key = if above == 0 { format!("mount {mp}") } else { format!("mount {mp} (covered {above})") };
        facts.insert(key, v.clone());
    }
    facts
}

/// Run one program over the sysroot in a fresh namespace.
/// `cmd` runs inside the initramfs-like root; `bin` is copied to its `/tool`.
pub fn snapshot(
    s: &Sysroot,
    boot: &Boot,
    usr: &Path,
    cmd: &[&str],
    bin: Option<&Path>,
    etc: &[(&str, &str)],
) -> Snapshot {
    let cmdline = s.dir.join("cmdline");
    std::fs::write(&cmdline, format!("root=LABEL=testroot rw ostree={} quiet", boot.ostree_arg)).unwrap();
    let etc_dir = s.dir.join("initramfs-etc");
    let _ = std::fs::remove_dir_all(&etc_dir);
    for (path, text) in etc {
        let p = etc_dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(&etc_dir).unwrap();
    let mut c = Command::new(fixtures().join("differential-run.sh"));
    c.arg(usr).args(cmd);
    c.env("PHYS", s.phys()).env("CMDLINE", &cmdline).env("ETC", &etc_dir).env("STATEROOT", &boot.stateroot);
    if boot.phys_ro {
        c.env("PHYS_RO", "1");
    }
    if let Some(b) = bin {
        c.env("TOOL_BIN", b);
    }
    let out = c.output().expect("differential-run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.starts_with("exit "),
        "differential-run.sh failed:\n{stdout}\n{stderr}"
    );
    let facts = parse(&stdout);
    Snapshot { exit: facts.get("exit").cloned().unwrap_or_default(), facts, stderr }
}

/// One difference: the same key with different values (None: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub key: String,
    pub ostree: Option<String>,
    pub rootstock: Option<String>,
}

pub fn diff(ostree: &Snapshot, rootstock: &Snapshot) -> Vec<Diff> {
    let mut keys: Vec<&String> = ostree.facts.keys().chain(rootstock.facts.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (ostree.facts.get(k), rootstock.facts.get(k));
            (a != b).then(|| Diff { key: k.clone(), ostree: a.cloned(), rootstock: b.cloned() })
        })
        .collect()
}

/// What a rule sees besides the difference.
pub struct Ctx<'a> {
    pub scenario: &'a str,
    pub version: (u32, u32),
    pub ostree_exit: &'a str,
    pub rootstock_exit: &'a str,
}

/// A deliberate difference: where it shows, and why rootstock differs.
pub struct Rule {
    pub id: &'static str,
    pub reason: &'static str,
    pub applies: fn(&Ctx, &Diff) -> bool,
}

fn only_rootstock(d: &Diff) -> bool {
    d.ostree.is_none() && d.rootstock.is_some()
}

fn only_ostree(d: &Diff) -> bool {
    d.ostree.is_some() && d.rootstock.is_none()
}

fn is(d: &Diff, ostree: &str, rootstock: &str) -> bool {
    d.ostree.as_deref() == Some(ostree) && d.rootstock.as_deref() == Some(rootstock)
}

/// The deliberate differences. Each id is documented in tests/differential.md.
pub const RULES: &[Rule] = &[
    Rule {
        id: "var-mounted-by-rootstock",
        reason: "rootstock binds /var to the stateroot's var itself and writes /run/ostree/initramfs-mount-var, \
                 as ostree's build without systemd does; ostree's systemd build leaves /var to the var.mount \
                 that ostree-system-generator writes after switch root (ostree >= 2024.2 skips it when the \
                 marker exists)",
        applies: |_, d| match d.key.as_str() {
            "mount /sysroot/var" | "run /run/ostree/initramfs-mount-var" => only_rootstock(d),
            "run /run/ostree" => is_dir_only_rootstock(d),
            "probe var-is-stateroot-var" => is(d, "no", "yes"),
            // On a read-only root: ostree's /var is the deployment's own
            // directory until var.mount, rootstock's a writable bind.
            "probe var-writable" => is(d, "ro", "rw"),
            _ => false,
        },
    },
    Rule {
        id: "no-stateroot-var-self-bind",
        reason: "with sysroot.readonly, ostree binds the stateroot's var onto itself so that the var.mount made \
                 after switch root stays writable; rootstock's own /var bind is writable already",
        applies: |_, d| {
            d.key.starts_with("mount /sysroot/sysroot/ostree/deploy/")
                && d.key.ends_with("/var")
                && only_ostree(d)
        },
    },
    Rule {
        id: "physical-root-bound-not-moved",
        reason: "rootstock binds the physical root at /sysroot/sysroot instead of moving its mount, so that a \
                 failed step is undone by detaching what the plan made; the original mount stays below the \
                 deployment at /sysroot, and switch root detaches it with the initramfs",
        applies: |_, d| d.key == "mount /sysroot (covered 1)" && only_rootstock(d),
    },
    Rule {
        id: "etc-own-mount",
        reason: "rootstock gives /etc a bind mount of its own whatever the config (ostree only with \
                 sysroot.readonly), made writable on a read-only root: writable as soon as the filesystem \
                 is, where ostree's /etc, part of the root's mount, waits for systemd-remount-fs",
        applies: |_, d| {
            (d.key == "mount /sysroot/etc"
                && only_rootstock(d)
                && d.rootstock.as_deref().is_some_and(|v| v.ends_with("/etc tmpfs rw,relatime private")))
                || (d.key == "probe etc-writable" && is(d, "ro", "rw"))
        },
    },
    Rule {
        id: "rootstock-state",
        reason: "/run/rootstock/state: which deployment rootstock booted and why, for `rootstock status` and \
                 `rootstock bless`",
        applies: |_, d| {
            (d.key == "run /run/rootstock" || d.key.starts_with("run /run/rootstock/")) && only_rootstock(d)
        },
    },
    Rule {
        id: "ostree-booted-format",
        reason: "ostree 2022.7 creates /run/ostree-booted empty with mode 0640, and its userspace only tests \
                 that it exists; rootstock writes the GVariant of ostree >= 2023 (mode 0644), which trixie's \
                 ostree-remount reads",
        applies: |c, d| {
            c.version < (2023, 1)
                && d.key == "run /run/ostree-booted"
                && d.ostree.as_deref() == Some("file 0640 0")
                && d.rootstock.as_deref().is_some_and(|v| v.starts_with("file 0644 "))
        },
    },
    Rule {
        id: "no-private-run-dir",
        reason: "ostree >= 2023.4 creates /run/ostree/.private for composefs and root.transient mounts; \
                 rootstock supports neither, so it has nothing to keep there",
        applies: |_, d| d.key == "run /run/ostree/.private" && only_ostree(d),
    },
    Rule {
        id: "fallback",
        reason: "a stale ostree= (a boot.N cleaned up, ostree#2283): ostree-prepare-root fails (\"Couldn't find \
                 specified OSTree root\", the boot ends in the emergency shell); rootstock boots the default \
                 deployment and records the fallback in /run/rootstock/state",
        applies: |c, _| c.scenario == "stale-ostree-arg" && c.ostree_exit != "0" && c.rootstock_exit == "0",
    },
    Rule {
        id: "etc-transient-without-readonly",
        reason: "rootstock applies etc.transient whatever sysroot.readonly says; ostree ignores etc.transient \
                 without sysroot.readonly or composefs, silently",
        applies: |c, d| {
            c.scenario == "etc-transient-alone"
                && (((d.key == "mount /sysroot/etc" || d.key.starts_with("run /run/ostree/transient-etc"))
                    && only_rootstock(d))
                    || (d.key == "run /run/ostree-booted"
                        && d.rootstock
                            .as_deref()
                            .is_some_and(|v| v.contains(",transient-etc=\"/run/ostree/transient-etc\"}"))))
        },
    },
    Rule {
        id: "sysroot-ro-stamp",
        reason: "with sysroot.readonly rootstock writes both signals for the booted system's ostree-remount: \
                 /run/ostree-sysroot-ro.stamp (ostree <= 2022) and sysroot-ro in /run/ostree-booted (ostree >= \
                 2023, which does not write the stamp)",
        applies: |c, d| {
            c.version >= (2023, 1) && d.key == "run /run/ostree-sysroot-ro.stamp" && only_rootstock(d)
        },
    },
    Rule {
        id: "transient-etc-dir-mode",
        reason: "rootstock creates /run/ostree/transient-etc 0755 (its one mkdir mode), ostree 0700; what is \
                 below it keeps its own modes (overlayfs copies a file's directories up with theirs)",
        applies: |_, d| d.key == "run /run/ostree/transient-etc" && is(d, "dir 0700 -", "dir 0755 -"),
    },
    Rule {
        id: "hotfix-on-read-only-root",
        reason: "a hotfix on a read-only physical root: ostree 2025.2 mounts the overlay read-only, which \
                 overlayfs refuses (its upper directory is on a read-only mount: EINVAL) and the boot fails; \
                 rootstock remounts the root read-write first, as ostree 2022.7 does",
        applies: |c, _| c.scenario == "hotfix-ro-root" && c.ostree_exit != "0" && c.rootstock_exit == "0",
    },
];

fn is_dir_only_rootstock(d: &Diff) -> bool {
    only_rootstock(d) && d.rootstock.as_deref().is_some_and(|v| v.starts_with("dir "))
}

/// How one difference was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deliberate(&'static str),
    /// The row exercises a feature this ostree does not have.
    FeatureMissing(&'static str),
    Unlisted,
}

pub struct Row {
    pub scenario: &'static str,
    pub ostree_exit: String,
    pub rootstock_exit: String,
    pub diffs: Vec<(Diff, Verdict)>,
    pub stderr: (String, String),
}

pub struct Matrix {
    pub ostree: Ostree,
    pub rows: Vec<Row>,
}

/// Run every scenario with ostree's prepare-root and rootstock's.
pub fn run(ostree: &Ostree, rootstock_boot: &Path, only: Option<&str>) -> Matrix {
    let v = version(&ostree.version);
    let mut rows = Vec::new();
    for sc in SCENARIOS.iter().filter(|s| only.is_none_or(|o| o == s.name)) {
        let mut s = Sysroot::new(2);
        let boot = (sc.setup)(&mut s);
        let mut ostree_etc = Vec::new();
        if let Some(c) = &boot.prepare_root_conf {
            ostree_etc.push(("ostree/prepare-root.conf", c.as_str()));
        }
        let o = snapshot(
            &s,
            &boot,
            &ostree.usr,
            &["/usr/lib/ostree/ostree-prepare-root", "/sysroot"],
            None,
            &ostree_etc,
        );
        let mut rs_etc = Vec::new();
        if let Some(c) = &boot.rootstock_conf {
            rs_etc.push(("rootstock/rootstock.conf", c.as_str()));
        }
        let r = snapshot(
            &s,
            &boot,
            &ostree.usr,
            &["/tool", "prepare-root", "/sysroot"],
            Some(rootstock_boot),
            &rs_etc,
        );
        let missing = sc.since.filter(|(since, _)| v < version(since));
        let ctx = Ctx { scenario: sc.name, version: v, ostree_exit: &o.exit, rootstock_exit: &r.exit };
        let diffs = diff(&o, &r)
            .into_iter()
            .map(|d| {
                let verdict = if let Some((_, feature)) = missing {
                    Verdict::FeatureMissing(feature)
                } else if let Some(rule) = RULES.iter().find(|r| (r.applies)(&ctx, &d)) {
                    Verdict::Deliberate(rule.id)
                } else {
                    Verdict::Unlisted
                };
                (d, verdict)
            })
            .collect();
        rows.push(Row {
            scenario: sc.name,
            ostree_exit: o.exit,
            rootstock_exit: r.exit,
            diffs,
            stderr: (o.stderr, r.stderr),
        });
    }
    Matrix { ostree: ostree.clone(), rows }
}

impl Matrix {
    pub fn unlisted(&self) -> usize {
        self.rows.iter().flat_map(|r| &r.diffs).filter(|(_, v)| *v == Verdict::Unlisted).count()
    }

    /// The summary table, then each difference.
    pub fn render(&self) -> String {
        let v = &self.ostree.version;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nostree-prepare-root {v} ({}) vs rootstock prepare-root\n",
            self.ostree.usr.display()
        );
        let _ = writeln!(
            t,
            "| scenario | exit ostree {v} | exit rootstock | differences | deliberate | unlisted | about |\n|---|---|---|---|---|---|---|"
        );
        for r in &self.rows {
            let about = SCENARIOS.iter().find(|s| s.name == r.scenario).map_or("", |s| s.about);
            let mut ids: Vec<String> = Vec::new();
            for (_, verdict) in &r.diffs {
                let id = match verdict {
                    Verdict::Deliberate(id) => id.to_string(),
                    Verdict::FeatureMissing(f) => format!("{f} is newer than {v}"),
                    Verdict::Unlisted => continue,
                };
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            let unlisted = r.diffs.iter().filter(|(_, v)| *v == Verdict::Unlisted).count();
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.ostree_exit,
                r.rootstock_exit,
                r.diffs.len(),
                if ids.is_empty() { "-".into() } else { ids.join(", ") },
                unlisted,
                about
            );
        }
        for r in &self.rows {
            if r.diffs.is_empty() {
                continue;
            }
            let _ = writeln!(t, "\n{}:", r.scenario);
            for (d, verdict) in &r.diffs {
                let verdict = match verdict {
                    Verdict::Deliberate(id) => format!("deliberate: {id}"),
                    Verdict::FeatureMissing(f) => format!("{f} is newer than ostree {v}"),
                    Verdict::Unlisted => "UNLISTED".into(),
                };
                let _ = writeln!(
                    t,
                    "  {:<40} ostree: {:<50} rootstock: {:<50} [{verdict}]",
                    d.key,
                    d.ostree.as_deref().unwrap_or("-"),
                    d.rootstock.as_deref().unwrap_or("-")
                );
            }
            if r.diffs.iter().any(|(_, v)| *v == Verdict::Unlisted) {
                let _ = writeln!(t, "  ostree's stderr:\n{}", indent(&r.stderr.0));
                let _ = writeln!(t, "  rootstock's stderr:\n{}", indent(&r.stderr.1));
            }
        }
        t
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// Reading the GVariant `a{sv}` that ostree ≥ 2023 writes to
/// /run/ostree-booted, for the table.
pub mod gvariant {
    fn unhex(s: &str) -> Option<Vec<u8>> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
    }

    fn offset_size(len: usize) -> usize {
        match len {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xffff_ffff => 4,
            _ => 8,
        }
    }

    fn read_offset(b: &[u8], at: usize, size: usize) -> Option<usize> {
        let mut v = 0usize;
        for i in 0..size {
            v |= usize::from(*b.get(at + i)?) << (8 * i);
        }
        Some(v)
    }

    fn value(ty: &str, b: &[u8]) -> Option<String> {
        Some(match ty {
            "b" => (if b.first()? != &0 { "true" } else { "false" }).to_string(),
            "s" => format!("{:?}", std::str::from_utf8(b.split_last()?.1).ok()?),
            "(tt)" if b.len() == 16 => {
                let a = u64::from_le_bytes(b[..8].try_into().ok()?);
                let c = u64::from_le_bytes(b[8..].try_into().ok()?);
                format!("({a}, {c})")
            }
            _ => format!("<{ty}>"),
        })
    }

    /// Decode an `a{sv}` of simple values, None when it is not one.
    pub fn decode(b: &[u8]) -> Option<Vec<(String, String)>> {
        if b.is_empty() {
            return Some(Vec::new());
        }
        let os = offset_size(b.len());
        let last = read_offset(b, b.len() - os, os)?;
        let n = (b.len().checked_sub(last)?) / os;
        let mut out = Vec::new();
        let mut start = 0;
        for i in 0..n {
            let end = read_offset(b, last + i * os, os)?;
            let e = b.get(start..end)?;
            let eos = offset_size(e.len());
            let key_end = read_offset(e, e.len() - eos, eos)?;
            let key = std::str::from_utf8(e.get(..key_end.checked_sub(1)?)?).ok()?.to_string();
            let vstart = key_end.div_ceil(8) * 8;
            let v = e.get(vstart..e.len() - eos)?;
            let sep = v.iter().rposition(|&c| c == 0)?;
            let ty = std::str::from_utf8(&v[sep + 1..]).ok()?;
            out.push((key, value(ty, &v[..sep])?));
            start = end.div_ceil(8) * 8;
        }
        Some(out)
    }

    /// A readable form of a hex dump: the dictionary, or the hex itself.
    pub fn describe(hex: &str) -> String {
        match unhex(hex).as_deref().and_then(decode) {
            Some(entries) => {
                let inner: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{{{}}}", inner.join(","))
            }
            None => hex.to_string(),
        }
    }
}
