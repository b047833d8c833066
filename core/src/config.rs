//! The configuration: ostree's `prepare-root.conf` and rootstock's own
//! `rootstock.conf`, both looked up under the config root (the initramfs's
//! `/`, or `--config-root`).
//!
//! - ostree's `ostree/prepare-root.conf` (a GKeyFile), with ostree's keys and
//!   meanings: `sysroot.readonly`, `etc.transient`, `root.transient`,
//!   `root.transient-ro`, `composefs.enabled`, `composefs.keypath`.
//!   `/etc/ostree/` replaces `/usr/lib/ostree/` wholesale, as ostree does.
//! - `rootstock.conf` (TOML): `/etc/rootstock/rootstock.conf` replaces
//!   `/usr/lib/rootstock/rootstock.conf` wholesale. It has rootstock's own
//!   keys (`boot-counting.tries`) and two of ostree's (`sysroot.readonly`,
//!   `etc.transient`): where both files set one of those, `rootstock.conf`
//!   wins.
//!
//! The file is read by a small parser for the part of TOML the config needs
//! (tables, bare and dotted keys, booleans, integers, comments), not by a
//! full TOML crate: the boot program carries it into every initramfs, and a
//! general TOML parser would be a tenth of its size. Anything outside that
//! part is refused with the line it is on.
//!
//! ```toml
//! [sysroot]
//! readonly = true        # the physical root at /sysroot is read-only
//!
//! [etc]
//! transient = false      # /etc is an overlay on tmpfs, lost at shutdown
//!
//! [boot-counting]
//! tries = 3              # arm boot counting with N tries (0 = off)
//! ```

use std::path::{Path, PathBuf};

use crate::errno::Errno;

/// Where the config is looked for, in order; the first that exists wins.
pub const SEARCH_PATH: [&str; 2] = ["/etc/rootstock/rootstock.conf", "/usr/lib/rootstock/rootstock.conf"];

/// Where ostree's `prepare-root.conf` is looked for, in order; the first
/// that exists wins (ostree loads both into one key file, the later
/// replacing the earlier wholesale).
pub const OSTREE_SEARCH_PATH: [&str; 2] =
    ["/etc/ostree/prepare-root.conf", "/usr/lib/ostree/prepare-root.conf"];

/// ostree's default `composefs.keypath`.
pub const DEFAULT_KEYPATH: &str = "/etc/ostree/initramfs-root-binding.key";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub sysroot: SysrootConfig,
    pub etc: EtcConfig,
    pub boot_counting: BootCountingConfig,
    pub root: RootConfig,
    pub composefs: ComposefsConfig,
    pub rollback: RollbackConfig,
}

/// `[rollback]`: what `rootstock-rollback.service` does when a deployment
/// on probation fails its health checks (read by the booted system only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackConfig {
    /// `action`: auto, reboot, mark or off; `rootstock.rollback=` overrides.
    pub action: crate::rollback::Action,
    /// `watchdog`: seconds to reach `boot-complete.target` (0: no limit);
    /// `rootstock.rollback-watchdog=` overrides.
    pub watchdog: u32,
}

impl Default for RollbackConfig {
    fn default() -> RollbackConfig {
        RollbackConfig {
            action: crate::rollback::Action::default(),
            watchdog: crate::rollback::DEFAULT_WATCHDOG,
        }
    }
}

/// `[root]`: a transient overlay on `/` (ostree 2025.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootConfig {
    /// `root.transient`: `/` is a writable overlay whose changes live in `/run`.
    pub transient: bool,
    /// `root.transient-ro`: the same, with the overlay's upper mounted read-only.
    pub transient_ro: bool,
}

/// `[composefs]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposefsConfig {
    pub policy: crate::composefs::Policy,
    /// `composefs.keypath`, as written (absolute, in the initramfs).
    pub keypath: Option<String>,
    /// The config root the key path is looked up under.
    pub key_root: PathBuf,
}

impl ComposefsConfig {
    /// The key file: `keypath` (default [`DEFAULT_KEYPATH`]) under the config root.
    /// `..` stops at the config root, as it stops at `/` in the initramfs:
    /// `keypath=/../x` is the config root's `x`, never a file outside it.
    pub fn key_file(&self) -> PathBuf {
        use std::path::Component;
        let mut rel = PathBuf::new();
        for c in Path::new(self.keypath.as_deref().unwrap_or(DEFAULT_KEYPATH)).components() {
            match c {
                Component::Normal(n) => rel.push(n),
                Component::ParentDir => {
                    rel.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        self.key_root.join(rel)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysrootConfig {
    pub readonly: bool,
    /// Set by a file (either one); otherwise it follows composefs (ostree:
    /// read-only when composefs is required, after the kernel argument).
    pub readonly_set: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcConfig {
    pub transient: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootCountingConfig {
    /// Tries a new deployment gets; 0 turns counting off. Overridden by
    /// `rootstock.tries=` on the kernel command line.
    pub tries: u32,
}

/// The highest number of tries (the marker's counter is two digits wide).
pub const MAX_TRIES: u32 = 99;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {errno}", path.display())]
    Read { path: PathBuf, errno: Errno },
    #[error("cannot read {0}")]
    Unreadable(crate::confine::ReadError),
    #[error("{}: {}", path.display(), message.trim_end())]
    Parse { path: PathBuf, message: String },
    #[error("{}: key `{key}`: {message}", path.display())]
    Value { path: PathBuf, key: &'static str, message: String },
}

impl Config {
    /// The config a boot uses: the kernel argument
    /// `ostree.prepare-root.composefs=` over `[composefs] enabled` (and
    /// `sysroot.readonly` following it where no file sets it, as ostree),
    /// then what the physical root's repository adds: `ostree config set
    /// sysroot.readonly true` (in `ostree/repo/config`), which
    /// ostree-prepare-root honours too. Not when composefs is required: as
    /// ostree, nothing on the target disk is parsed before its integrity is
    /// checked.
    pub fn for_boot(&self, composefs: Option<crate::composefs::KernelArg>, physical_root: &Path) -> Config {
        let mut c = self.clone();
        c.composefs.policy = c.composefs.policy.with_kernel_arg(composefs);
        if !c.sysroot.readonly_set {
            c.sysroot.readonly = c.composefs.policy.required();
        }
        if !c.sysroot.readonly
            && !c.composefs.policy.required()
            && crate::layout::repo_sysroot_readonly(physical_root)
        {
            log::info!("sysroot.readonly: set in {}", physical_root.join("ostree/repo/config").display());
            c.sysroot.readonly = true;
        }
        c
    }

    /// Parse the text of a `rootstock.conf`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply(path, text)?;
        Ok(c)
    }

    /// Set the keys a `rootstock.conf` sets, leaving the others as they are.
    pub fn apply(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let c = self;
        let mut table = String::new();
        let mut seen: Vec<String> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let at = |message: String| ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("line {}: {message}", n + 1),
            };
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| at(format!("{line:?}: a table header ends with ]")))?;
                let name = name.trim();
                if !name.split('.').all(is_bare_key) {
                    return Err(at(format!("{line:?}: unsupported table header")));
                }
                if seen.iter().any(|s| s == &format!("[{name}]")) {
                    return Err(at(format!("table [{name}] is defined twice")));
                }
                seen.push(format!("[{name}]"));
                table = name.to_string();
                continue;
            }
            let (key, value) =
                line.split_once('=').ok_or_else(|| at(format!("{line:?}: expected KEY = VALUE")))?;
            let key = key.trim();
            let full = if table.is_empty() { key.to_string() } else { format!("{table}.{key}") };
            if !full.split('.').all(is_bare_key) {
                return Err(at(format!("{key:?}: unsupported key")));
            }
            if seen.contains(&full) {
                return Err(at(format!("key `{full}` is set twice")));
            }
            seen.push(full.clone());
            let value = value.trim();
            let bad = |want: &str| at(format!("key `{full}`: {value} is not {want}"));
            match full.as_str() {
                "sysroot.readonly" => {
                    c.sysroot.readonly = parse_bool(value).ok_or_else(|| bad("true or false"))?;
                    c.sysroot.readonly_set = true;
                }
                "etc.transient" => c.etc.transient = parse_bool(value).ok_or_else(|| bad("true or false"))?,
                "boot-counting.tries" => {
                    let tries = parse_int(value).ok_or_else(|| bad("an integer"))?;
                    c.boot_counting.tries = u32::try_from(tries)
                        .ok()
                        .filter(|t| *t <= MAX_TRIES)
                        .ok_or_else(|| ConfigError::Value {
                            path: path.to_path_buf(),
                            key: "boot-counting.tries",
                            message: format!("{tries} is not between 0 and {MAX_TRIES}"),
                        })?;
                }
                "rollback.action" => {
                    let want = "\"auto\", \"reboot\", \"mark\" or \"off\"";
                    c.rollback.action =
                        parse_string(value).and_then(|v| v.parse().ok()).ok_or_else(|| bad(want))?;
                }
                "rollback.watchdog" => {
                    let secs = parse_int(value).ok_or_else(|| bad("an integer"))?;
                    c.rollback.watchdog = u32::try_from(secs)
                        .ok()
                        .filter(|s| *s <= crate::rollback::MAX_WATCHDOG)
                        .ok_or_else(|| ConfigError::Value {
                            path: path.to_path_buf(),
                            key: "rollback.watchdog",
                            message: format!("{secs} is not between 0 and {}", crate::rollback::MAX_WATCHDOG),
                        })?;
                }
                _ => {
                    let known = "sysroot.readonly, etc.transient, boot-counting.tries, rollback.action, rollback.watchdog";
                    return Err(at(format!("unknown key `{full}` (known: {known})")));
                }
            }
        }
        Ok(())
    }

    /// Set what ostree's `prepare-root.conf` sets (a GKeyFile: `[group]`,
    /// `key = value`, `#` comments on their own lines), with ostree's
    /// defaults: `sysroot.readonly` defaults to true when composefs is
    /// required. Keys ostree does not read are ignored, as ostree does.
    pub fn apply_ostree(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let mut group = String::new();
        let mut readonly = None;
        let value_error = |key: &'static str, message: String| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            message,
        };
        let boolean = |key: &'static str, v: &str| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(value_error(key, format!("{v:?} is not true or false"))),
        };
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                group = rest
                    .strip_suffix(']')
                    .ok_or_else(|| ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: format!("line {}: {line:?}: a group header ends with ]", n + 1),
                    })?
                    .to_string();
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!("line {}: {line:?}: expected KEY=VALUE", n + 1),
            })?;
            let value = value.trim();
            match (group.as_str(), key.trim()) {
                ("sysroot", "readonly") => readonly = Some(boolean("sysroot.readonly", value)?),
                ("etc", "transient") => self.etc.transient = boolean("etc.transient", value)?,
                ("root", "transient") => self.root.transient = boolean("root.transient", value)?,
                ("root", "transient-ro") => self.root.transient_ro = boolean("root.transient-ro", value)?,
                ("composefs", "enabled") => {
                    self.composefs.policy = crate::composefs::Policy::from_config(value).ok_or_else(|| {
                        value_error(
                            "composefs.enabled",
                            format!("{value:?} is not yes, no, maybe, verity or signed"),
                        )
                    })?
                }
                ("composefs", "keypath") => self.composefs.keypath = Some(value.to_string()),
                (g, k) => log::info!(
                    "{}: [{g}] {k}: not a key rootstock reads (ignored, as ostree does)",
                    path.display()
                ),
            }
        }
        if self.root.transient && self.root.transient_ro {
            return Err(value_error(
                "root.transient-ro",
                "root.transient and root.transient-ro are both set (ostree refuses this too)".into(),
            ));
        }
        if let Some(r) = readonly {
            self.sysroot = SysrootConfig { readonly: r, readonly_set: true };
        } else {
            self.sysroot.readonly = self.composefs.policy.required();
        }
        Ok(())
    }

    /// Load ostree's `prepare-root.conf` (the first of [`OSTREE_SEARCH_PATH`]
    /// under `root`), then `rootstock.conf` over it: `explicit` if given,
    /// else the first of [`SEARCH_PATH`] under `root`. Returns the files
    /// used, in the order read.
    pub fn load(root: &Path, explicit: Option<&Path>) -> Result<(Config, Vec<PathBuf>), ConfigError> {
        let mut c = Config::default();
        c.composefs.key_root = root.to_path_buf();
        let mut used = Vec::new();
        let ostree: Vec<PathBuf> =
            OSTREE_SEARCH_PATH.iter().map(|p| root.join(p.trim_start_matches('/'))).collect();
        if let Some((path, text)) = first_file(&ostree, false)? {
            c.apply_ostree(&path, &text)?;
            used.push(path);
        }
        let own: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => SEARCH_PATH.iter().map(|p| root.join(p.trim_start_matches('/'))).collect(),
        };
        if let Some((path, text)) = first_file(&own, explicit.is_some())? {
            c.apply(&path, &text)?;
            used.push(path);
        }
        Ok((c, used))
    }
}

/// The first of `candidates` that exists, read (O_NONBLOCK, regular,
/// capped: a FIFO never blocks the boot). A missing file is normal unless
/// it was named explicitly (`must_exist`).
fn first_file(candidates: &[PathBuf], must_exist: bool) -> Result<Option<(PathBuf, String)>, ConfigError> {
    for path in candidates {
        match crate::confine::read_file(path, crate::confine::SMALL_FILE_CAP) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
                    path: path.clone(),
                    message: "not valid UTF-8".into(),
                })?;
                return Ok(Some((path.clone(), text)));
            }
            Err(e) if e.is_not_found() && !must_exist => continue,
            Err(e) => return Err(ConfigError::Unreadable(e)),
        }
    }
    Ok(None)
}

/// The line without a `#` comment (the values rootstock reads hold no `#`).
fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// TOML's bare keys: ASCII letters, digits, `-` and `_`.
fn is_bare_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A TOML basic string without escapes: `"auto"`.
fn parse_string(v: &str) -> Option<&str> {
    v.strip_prefix('"')?.strip_suffix('"').filter(|s| !s.contains(['"', '\\']))
}

/// A TOML decimal integer: an optional sign, digits, `_` between digits.
fn parse_int(v: &str) -> Option<i64> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    let ok = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && (digits == "0" || !digits.starts_with('0'));
    if !ok {
        return None;
    }
    v.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn parses_all_sections() {
        let c = Config::parse(
            Path::new("/x.conf"),
            "[sysroot]\nreadonly = true\n[etc]\ntransient = true\n[boot-counting]\ntries = 3\n",
        )
        .unwrap();
        assert!(c.sysroot.readonly && c.etc.transient);
        assert_eq!(c.boot_counting.tries, 3);
        assert_eq!(Config::parse(Path::new("/x"), "").unwrap(), Config::default());
        // Comments, blank lines, spacing, dotted keys, underscores in numbers.
        let c = Config::parse(
            Path::new("/x"),
            "# rootstock\n\n  sysroot.readonly=true # ro\n[ boot-counting ]\ntries = +1_0\n[etc]\ntransient = false\n",
        )
        .unwrap();
        assert!(c.sysroot.readonly && !c.etc.transient);
        assert_eq!(c.boot_counting.tries, 10);
        let c = Config::parse(
            Path::new("/x"),
            "[rollback]\naction = \"reboot\"  # full reboots only\nwatchdog = 600\n",
        )
        .unwrap();
        assert_eq!((c.rollback.action, c.rollback.watchdog), (crate::rollback::Action::Reboot, 600));
    }

    #[test]
    fn bad_files_name_the_file_and_key() {
        let cases = [
            ("[sysroot]\nread-only = true\n", "read-only"),
            ("[sysrot]\nreadonly = true\n", "sysrot"),
            ("[sysroot]\nreadonly = \"yes\"\n", "readonly"),
            ("[boot-counting]\ntries = 100\n", "boot-counting.tries"),
            ("[boot-counting]\ntries = -1\n", "tries"),
            ("[etc\n", "/etc/rootstock/rootstock.conf"),
            ("[sysroot]\nreadonly = true\nreadonly = false\n", "line 3: key `sysroot.readonly` is set twice"),
            ("[etc]\n[etc]\n", "line 2: table [etc] is defined twice"),
            ("[sysroot]\nreadonly\n", "line 2"),
            ("[boot-counting]\ntries = 03\n", "not an integer"),
            ("[boot-counting]\ntries = 3.5\n", "not an integer"),
            ("[sysroot.x]\ny = 1\n", "unknown key `sysroot.x.y`"),
            ("x = { a = 1 }\n", "unknown key `x`"),
            ("[rollback]\naction = auto\n", "key `rollback.action`: auto is not \"auto\""),
            ("[rollback]\naction = \"sometimes\"\n", "rollback.action"),
            ("[rollback]\nwatchdog = 86401\n", "rollback.watchdog"),
        ];
        for (text, want) in cases {
            let err =
                Config::parse(Path::new("/etc/rootstock/rootstock.conf"), text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.starts_with("/etc/rootstock/rootstock.conf"), "{err}");
        }
    }

    #[test]
    fn etc_replaces_usr_lib_wholesale() {
        let t = TempDir::new();
        let root = t.path();
        let defaults = Config {
            composefs: ComposefsConfig { key_root: root.into(), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(Config::load(root, None).unwrap(), (defaults, vec![]));
        std::fs::create_dir_all(root.join("usr/lib/rootstock")).unwrap();
        std::fs::write(root.join("usr/lib/rootstock/rootstock.conf"), "[sysroot]\nreadonly = true\n")
            .unwrap();
        let (c, used) = Config::load(root, None).unwrap();
        assert!(c.sysroot.readonly);
        assert_eq!(used, [root.join("usr/lib/rootstock/rootstock.conf")]);
        std::fs::create_dir_all(root.join("etc/rootstock")).unwrap();
        std::fs::write(root.join("etc/rootstock/rootstock.conf"), "[etc]\ntransient = true\n").unwrap();
        let (c, _) = Config::load(root, None).unwrap();
        assert!(c.etc.transient && !c.sysroot.readonly);
        let err = Config::load(root, Some(&root.join("nope.conf"))).unwrap_err().to_string();
        assert!(err.contains("nope.conf") && err.contains("ENOENT"), "{err}");
    }

    #[test]
    fn ostrees_file_with_ostrees_meanings_and_defaults() {
        use crate::composefs::{KernelArg, Tristate};
        let ostree = |text: &str| {
            let mut c = Config::default();
            c.apply_ostree(Path::new("/usr/lib/ostree/prepare-root.conf"), text).map(|()| c)
        };
        let c = ostree("# comment\n[composefs]\nenabled = signed\nkeypath=/etc/k.key\n[etc]\ntransient=1\n[other]\nx=y\n")
            .unwrap();
        assert!(c.composefs.policy.signed && c.etc.transient);
        assert_eq!(c.composefs.keypath.as_deref(), Some("/etc/k.key"));
        assert!(c.sysroot.readonly && !c.sysroot.readonly_set, "composefs required: read-only by default");
        let c = ostree("[composefs]\nenabled=yes\n[sysroot]\nreadonly=false\n").unwrap();
        assert!(!c.sysroot.readonly, "an explicit readonly=false stands");
        assert!(!ostree("[composefs]\nenabled=maybe\n").unwrap().sysroot.readonly);
        for (text, key) in [
            ("[composefs]\nenabled=sure\n", "composefs.enabled"),
            ("[sysroot]\nreadonly=yes\n", "sysroot.readonly"),
            ("[root]\ntransient=true\ntransient-ro=true\n", "root.transient-ro"),
            ("[etc\n", "line 1"),
            ("[etc]\ntransient\n", "line 2"),
        ] {
            let err = ostree(text).unwrap_err().to_string();
            assert!(
                err.contains(key) && err.starts_with("/usr/lib/ostree/prepare-root.conf"),
                "{text:?}: {err}"
            );
        }
        // The kernel argument, then readonly follows it unless a file set it.
        let c = ostree("[composefs]\nenabled=yes\n").unwrap();
        let t = TempDir::new();
        let booted = c.for_boot(Some(KernelArg::Tristate(Tristate::No)), t.path());
        assert!(!booted.composefs.policy.required() && !booted.sysroot.readonly);
        let c = ostree("").unwrap();
        let booted = c.for_boot(Some(KernelArg::Signed), t.path());
        assert!(booted.composefs.policy.signed && booted.sysroot.readonly);
    }

    #[test]
    fn rootstock_conf_wins_over_ostrees_where_both_set_a_key() {
        let t = TempDir::new();
        let root = t.path();
        let write = |p: &str, text: &str| {
            std::fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
            std::fs::write(root.join(p), text).unwrap();
        };
        write("usr/lib/ostree/prepare-root.conf", "[sysroot]\nreadonly=true\n[etc]\ntransient=true\n");
        let (c, used) = Config::load(root, None).unwrap();
        assert!(c.sysroot.readonly && c.etc.transient);
        assert_eq!(used, [root.join("usr/lib/ostree/prepare-root.conf")]);
        write("etc/rootstock/rootstock.conf", "[sysroot]\nreadonly = false\n");
        let (c, used) = Config::load(root, None).unwrap();
        assert!(!c.sysroot.readonly, "rootstock.conf sets it: it wins");
        assert!(c.etc.transient, "rootstock.conf does not set it: ostree's stands");
        assert_eq!(used.len(), 2);
        // /etc/ostree replaces /usr/lib/ostree wholesale.
        write("etc/ostree/prepare-root.conf", "[composefs]\nenabled=maybe\n");
        let (c, _) = Config::load(root, None).unwrap();
        assert!(!c.etc.transient, "the /usr/lib file is not read");
        assert_eq!(c.composefs.key_file(), root.join("etc/ostree/initramfs-root-binding.key"));
        // `..` stops at the config root, as at `/` in the initramfs.
        let k = |p: &str| ComposefsConfig { keypath: Some(p.into()), ..c.composefs.clone() }.key_file();
        assert_eq!(k("/../../../etc/passwd"), root.join("etc/passwd"));
        assert_eq!(k("/etc/./ostree/../k.pub"), root.join("etc/k.pub"));
    }
}
