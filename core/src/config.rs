//! `rootstock.conf` (TOML): `/etc/rootstock/rootstock.conf` replaces
//! `/usr/lib/rootstock/rootstock.conf` wholesale, as ostree's
//! `prepare-root.conf` does.
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub sysroot: SysrootConfig,
    pub etc: EtcConfig,
    pub boot_counting: BootCountingConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysrootConfig {
    pub readonly: bool,
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
    /// This config with what the physical root's repository adds:
    /// `ostree config set sysroot.readonly true` (in `ostree/repo/config`),
    /// which ostree-prepare-root honours too. `None` when it adds nothing.
    pub fn with_repo(&self, physical_root: &Path) -> Option<Config> {
        if self.sysroot.readonly || !crate::layout::repo_sysroot_readonly(physical_root) {
            return None;
        }
        log::info!("sysroot.readonly: set in {}", physical_root.join("ostree/repo/config").display());
        let mut c = self.clone();
        c.sysroot.readonly = true;
        Some(c)
    }

    /// Parse the text of a config file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
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
                    c.sysroot.readonly = parse_bool(value).ok_or_else(|| bad("true or false"))?
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
                _ => {
                    let known = "sysroot.readonly, etc.transient, boot-counting.tries";
                    return Err(at(format!("unknown key `{full}` (known: {known})")));
                }
            }
        }
        Ok(c)
    }

    /// Load `explicit` if given, else the first of [`SEARCH_PATH`] under
    /// `root` that exists, else the defaults. Returns the file used.
    pub fn load(root: &Path, explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => SEARCH_PATH.iter().map(|p| root.join(p.trim_start_matches('/'))).collect(),
        };
        for path in candidates {
            // O_NONBLOCK, regular, capped: a FIFO never blocks the boot.
            match crate::confine::read_file(&path, crate::confine::SMALL_FILE_CAP) {
                Ok(bytes) => {
                    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
                        path: path.clone(),
                        message: "not valid UTF-8".into(),
                    })?;
                    return Ok((Config::parse(&path, &text)?, Some(path)));
                }
                // A missing file in the search path is normal; an explicit one must exist.
                Err(e) if e.is_not_found() && explicit.is_none() => continue,
                Err(e) => return Err(ConfigError::Unreadable(e)),
            }
        }
        Ok((Config::default(), None))
    }
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
        assert_eq!(Config::load(root, None).unwrap(), (Config::default(), None));
        std::fs::create_dir_all(root.join("usr/lib/rootstock")).unwrap();
        std::fs::write(root.join("usr/lib/rootstock/rootstock.conf"), "[sysroot]\nreadonly = true\n")
            .unwrap();
        let (c, used) = Config::load(root, None).unwrap();
        assert!(c.sysroot.readonly);
        assert_eq!(used.unwrap(), root.join("usr/lib/rootstock/rootstock.conf"));
        std::fs::create_dir_all(root.join("etc/rootstock")).unwrap();
        std::fs::write(root.join("etc/rootstock/rootstock.conf"), "[etc]\ntransient = true\n").unwrap();
        let (c, _) = Config::load(root, None).unwrap();
        assert!(c.etc.transient && !c.sysroot.readonly);
        let err = Config::load(root, Some(&root.join("nope.conf"))).unwrap_err().to_string();
        assert!(err.contains("nope.conf") && err.contains("ENOENT"), "{err}");
    }
}
