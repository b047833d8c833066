//! `rootstock.conf` (TOML): `/etc/rootstock/rootstock.conf` replaces
//! `/usr/lib/rootstock/rootstock.conf` wholesale, as ostree's
//! `prepare-root.conf` does.
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

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::errno::Errno;

/// Where the config is looked for, in order; the first that exists wins.
pub const SEARCH_PATH: [&str; 2] = ["/etc/rootstock/rootstock.conf", "/usr/lib/rootstock/rootstock.conf"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub sysroot: SysrootConfig,
    #[serde(default)]
    pub etc: EtcConfig,
    #[serde(default)]
    pub boot_counting: BootCountingConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SysrootConfig {
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EtcConfig {
    #[serde(default)]
    pub transient: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BootCountingConfig {
    /// Tries a new deployment gets; 0 turns counting off. Overridden by
    /// `rootstock.tries=` on the kernel command line.
    #[serde(default)]
    pub tries: u32,
}

/// The highest number of tries (the marker's counter is two digits wide).
pub const MAX_TRIES: u32 = 99;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Read { path: PathBuf, errno: Errno },
    Parse { path: PathBuf, message: String },
    Value { path: PathBuf, key: &'static str, message: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, errno } => write!(f, "cannot read {}: {errno}", path.display()),
            ConfigError::Parse { path, message } => {
                write!(f, "{}: {}", path.display(), message.trim_end())
            }
            ConfigError::Value { path, key, message } => {
                write!(f, "{}: key `{key}`: {message}", path.display())
            }
        }
    }
}

impl Config {
    /// Parse the text of a config file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        if c.boot_counting.tries > MAX_TRIES {
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                key: "boot-counting.tries",
                message: format!("{} is more than {MAX_TRIES}", c.boot_counting.tries),
            });
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
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
                        path: path.clone(),
                        message: "not valid UTF-8".into(),
                    })?;
                    return Ok((Config::parse(&path, &text)?, Some(path)));
                }
                // A missing file in the search path is normal; an explicit one must exist.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
                Err(e) => return Err(ConfigError::Read { path, errno: Errno::from_io(&e) }),
            }
        }
        Ok((Config::default(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tempdir::TempDir;

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
