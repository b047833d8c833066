//! Kernel command line parsing.
//!
//! Quoting follows the kernel's `next_arg()`: double quotes group (and are
//! removed), there are no escapes, whitespace separates arguments, and a bare
//! `--` ends the kernel's part (everything after it belongs to init). The last
//! occurrence of a key wins, and `rd.rootstock.X` means the same as
//! `rootstock.X`.

use crate::reason::Reason;

/// The longest command line accepted. The kernel's own limit is
/// `COMMAND_LINE_SIZE` (2048 on x86, 4096 on some architectures); a longer
/// input did not come from a kernel.
pub const MAX_CMDLINE_LEN: usize = 4096;

/// A command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("kernel command line is {len} bytes long, more than the {MAX_CMDLINE_LEN} a kernel passes")]
    TooLong { len: usize },
    #[error("kernel command line has an unbalanced double quote at byte {offset}")]
    UnbalancedQuote { offset: usize },
    #[error("kernel argument {key}={value:?} is invalid: expected {expected}")]
    InvalidValue { key: String, value: String, expected: &'static str },
    #[error("kernel argument {key} is not valid UTF-8")]
    NotUtf8 { key: String },
}

/// Split a command line into `(key, value)` pairs, kernel style, plus the
/// arguments after `--` (passed to init).
/// One argument: `key` or `key=value`.
pub type Arg = (String, Option<String>);

pub fn split(line: &str) -> Result<(Vec<Arg>, Vec<String>), CmdlineError> {
    let line = line.trim_end_matches(['\n', '\0']);
    if line.len() > MAX_CMDLINE_LEN {
        return Err(CmdlineError::TooLong { len: line.len() });
    }
    let mut args = Vec::new();
    let mut words = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut in_quote = false;
        let mut quote_start = 0;
        let mut word = String::new();
        while i < bytes.len() && (in_quote || !bytes[i].is_ascii_whitespace()) {
            if bytes[i] == b'"' {
                if !in_quote {
                    quote_start = i;
                }
                in_quote = !in_quote;
            } else {
                // Safe slicing: quotes and whitespace are ASCII, so `i` moves
                // along char boundaries of the UTF-8 string.
                let ch_len = utf8_len(bytes[i]);
                word.push_str(&line[i..i + ch_len]);
                i += ch_len;
                continue;
            }
            i += 1;
        }
        if in_quote {
            return Err(CmdlineError::UnbalancedQuote { offset: quote_start });
        }
        words.push((start, word));
    }
    let mut init_args = Vec::new();
    let mut after_dashes = false;
    for (start, word) in words {
        if after_dashes {
            init_args.push(word);
            continue;
        }
        // Only an unquoted `--` ends the kernel's part.
        if word == "--" && &line[start..start + 2] == "--" {
            after_dashes = true;
            continue;
        }
        match word.split_once('=') {
            Some((k, v)) => args.push((k.to_string(), Some(v.to_string()))),
            None => args.push((word, None)),
        }
    }
    Ok((args, init_args))
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// `rootstock.deployment=`: a one-shot manual choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentChoice {
    /// Index in ostree's order (0 = default, 1 = rollback).
    Index(usize),
    /// `$csum.$serial` of a deployment.
    Id(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    #[default]
    Auto,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kexec {
    #[default]
    Auto,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    #[default]
    Shell,
    Reboot,
    Poweroff,
    Halt,
}

/// `ro` / `rw` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootMode {
    ReadOnly,
    ReadWrite,
}

/// The kernel arguments rootstock understands, typed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelArgs {
    pub ostree: Option<String>,
    /// `ostree.prepare-root.composefs=`: overrides `[composefs] enabled`.
    pub composefs: Option<crate::composefs::KernelArg>,
    pub root: Option<String>,
    pub rootfstype: Option<String>,
    pub rootflags: Option<String>,
    pub root_mode: Option<RootMode>,
    pub init: Option<String>,
    pub deployment: Option<DeploymentChoice>,
    pub tries: Option<u32>,
    pub fallback: Fallback,
    pub kexec: Kexec,
    /// `rootstock.kexeced=default|manual|fallback`: added by rootstock to the
    /// command line of a kexec into a deployment's own kernel. The attempt
    /// was counted before the kexec; this boot counts nothing, kexecs no
    /// more, and reports the first pass's reason.
    pub kexeced: Option<Reason>,
    /// `rootstock.booted-by=kexec`: added by `prepare-soft-reboot --kexec`
    /// to the loaded kernel's command line, for the boot history.
    pub booted_by_kexec: bool,
    /// `rootstock.rollback=` and `rootstock.rollback-watchdog=`, as written:
    /// the booted system's (`rootstock rollback --watch`), never the
    /// boot's, so a bad value there cannot stop a boot.
    pub rollback: Option<String>,
    pub rollback_watchdog: Option<String>,
    pub root_timeout_secs: Option<u32>,
    pub on_failure: OnFailure,
    pub debug: bool,
    /// Arguments after `--`, for init.
    pub init_args: Vec<String>,
    /// `rootstock.*` keys that this version does not know (logged, not fatal,
    /// so a newer command line still boots).
    pub unknown: Vec<String>,
}

/// Strip `rd.` from `rd.rootstock.X`.
fn normalise(key: &str) -> &str {
    key.strip_prefix("rd.").filter(|k| k.starts_with("rootstock.")).unwrap_or(key)
}

fn value<'a>(key: &str, v: &'a Option<String>, expected: &'static str) -> Result<&'a str, CmdlineError> {
    let v = v.as_deref().ok_or_else(|| CmdlineError::InvalidValue {
        key: key.to_string(),
        value: String::new(),
        expected,
    })?;
    if v.contains(char::REPLACEMENT_CHARACTER) {
        return Err(CmdlineError::NotUtf8 { key: key.to_string() });
    }
    Ok(v)
}

fn invalid(key: &str, v: &str, expected: &'static str) -> CmdlineError {
    CmdlineError::InvalidValue { key: key.to_string(), value: v.to_string(), expected }
}

fn number(key: &str, v: &str, max: u32, expected: &'static str) -> Result<u32, CmdlineError> {
    match v.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(invalid(key, v, expected)),
    }
}

impl DeploymentChoice {
    /// `rollback`, an index (0..=1000) or `$csum.$serial`: what
    /// `rootstock.deployment=` and `rootstock prepare-soft-reboot` take.
    pub fn parse(v: &str) -> Option<DeploymentChoice> {
        if v == "rollback" {
            Some(DeploymentChoice::Index(1))
        } else if let Ok(n) = v.parse::<usize>() {
            (n <= 1000).then_some(DeploymentChoice::Index(n))
        } else if is_deployment_id(v) {
            Some(DeploymentChoice::Id(v.to_string()))
        } else {
            None
        }
    }
}

/// Is this a deployment id, `$csum.$serial` (64 hex digits, a dot, a number)?
pub fn is_deployment_id(s: &str) -> bool {
    match s.split_once('.') {
        Some((csum, serial)) => {
            csum.len() == 64
                && csum.bytes().all(|b| b.is_ascii_hexdigit())
                && !serial.is_empty()
                && serial.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

impl KernelArgs {
    /// Parse a whole command line (the contents of `/proc/cmdline`).
    pub fn parse(line: &str) -> Result<KernelArgs, CmdlineError> {
        let (pairs, init_args) = split(line)?;
        let mut a = KernelArgs { init_args, ..KernelArgs::default() };
        for (key, v) in &pairs {
            let key = normalise(key);
            match key {
                "ostree" => {
                    a.ostree = Some(value(key, v, "a path such as /ostree/boot.1/os/CSUM/0")?.to_string())
                }
                "ostree.prepare-root.composefs" => {
                    const EXPECTED: &str = "signed, yes, no or maybe";
                    let v = value(key, v, EXPECTED)?;
                    a.composefs =
                        Some(crate::composefs::KernelArg::parse(v).ok_or_else(|| invalid(key, v, EXPECTED))?);
                }
                "root" => a.root = Some(value(key, v, "a device")?.to_string()),
                "rootfstype" => a.rootfstype = Some(value(key, v, "a filesystem type")?.to_string()),
                "rootflags" => a.rootflags = Some(value(key, v, "mount options")?.to_string()),
                "init" => a.init = Some(value(key, v, "an absolute path")?.to_string()),
                "ro" if v.is_none() => a.root_mode = Some(RootMode::ReadOnly),
                "rw" if v.is_none() => a.root_mode = Some(RootMode::ReadWrite),
                "rootstock.deployment" => {
                    const EXPECTED: &str = "an index, `rollback` or CHECKSUM.SERIAL";
                    let v = value(key, v, EXPECTED)?;
                    a.deployment = Some(DeploymentChoice::parse(v).ok_or_else(|| invalid(key, v, EXPECTED))?);
                }
                "rootstock.tries" => {
                    let v = value(key, v, "a number of tries 0..=99")?;
                    a.tries = Some(number(key, v, 99, "a number of tries 0..=99")?);
                }
                "rootstock.fallback" => {
                    a.fallback = match value(key, v, "auto or off")? {
                        "auto" => Fallback::Auto,
                        "off" => Fallback::Off,
                        other => return Err(invalid(key, other, "auto or off")),
                    }
                }
                "rootstock.kexec" => {
                    a.kexec = match value(key, v, "auto or never")? {
                        "auto" => Kexec::Auto,
                        "never" => Kexec::Never,
                        other => return Err(invalid(key, other, "auto or never")),
                    }
                }
                "rootstock.kexeced" => {
                    const EXPECTED: &str = "default, manual or fallback";
                    let r = value(key, v, EXPECTED)?;
                    a.kexeced = Some(r.parse().map_err(|_| invalid(key, r, EXPECTED))?);
                }
                "rootstock.root-timeout" => {
                    let v = value(key, v, "seconds 0..=3600")?;
                    a.root_timeout_secs = Some(number(key, v, 3600, "seconds 0..=3600")?);
                }
                "rootstock.on-failure" => {
                    const EXPECTED: &str = "shell, reboot, poweroff or halt";
                    a.on_failure = match value(key, v, EXPECTED)? {
                        "shell" => OnFailure::Shell,
                        "reboot" => OnFailure::Reboot,
                        "poweroff" => OnFailure::Poweroff,
                        "halt" => OnFailure::Halt,
                        other => return Err(invalid(key, other, EXPECTED)),
                    }
                }
                "rootstock.debug" => {
                    a.debug = match v.as_deref() {
                        None | Some("1") | Some("yes") | Some("true") => true,
                        Some("0") | Some("no") | Some("false") => false,
                        Some(other) => return Err(invalid(key, other, "nothing, 1 or 0")),
                    }
                }
                "rootstock.booted-by" => a.booted_by_kexec = v.as_deref() == Some("kexec"),
                "rootstock.rollback" => a.rollback = Some(v.clone().unwrap_or_default()),
                "rootstock.rollback-watchdog" => a.rollback_watchdog = Some(v.clone().unwrap_or_default()),
                k if k.starts_with("rootstock.") => a.unknown.push(k.to_string()),
                _ => {}
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn split_follows_kernel_quoting() {
        type Case<'a> = (&'a str, &'a [(&'a str, Option<&'a str>)], &'a [&'a str]);
        let cases: &[Case] = &[
            ("", &[], &[]),
            ("  ro  ", &[("ro", None)], &[]),
            ("a=1 b", &[("a", Some("1")), ("b", None)], &[]),
            ("a=\"x y\" b", &[("a", Some("x y")), ("b", None)], &[]),
            ("\"a=x y\"", &[("a", Some("x y"))], &[]),
            ("a=x\"y z\"w", &[("a", Some("xy zw"))], &[]),
            ("a=\"\"", &[("a", Some(""))], &[]),
            ("a=b=c", &[("a", Some("b=c"))], &[]),
            ("ro -- single x=1", &[("ro", None)], &["single", "x=1"]),
            ("\"--\" ro", &[("--", None), ("ro", None)], &[]),
            ("a=1\n", &[("a", Some("1"))], &[]),
            ("a=\u{e9}t\u{e9}", &[("a", Some("\u{e9}t\u{e9}"))], &[]),
            ("\ta=1\t\tb=2", &[("a", Some("1")), ("b", Some("2"))], &[]),
        ];
        for (line, want, want_init) in cases {
            let (got, init) = split(line).unwrap();
            let want: Vec<(String, Option<String>)> =
                want.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect();
            assert_eq!(got, want, "line {line:?}");
            assert_eq!(init, *want_init, "line {line:?}");
        }
    }

    #[test]
    fn hostile_lines_give_errors() {
        assert_eq!(split("a=\"x y"), Err(CmdlineError::UnbalancedQuote { offset: 2 }));
        assert_eq!(split("ro \""), Err(CmdlineError::UnbalancedQuote { offset: 3 }));
        let long = "a".repeat(MAX_CMDLINE_LEN + 1);
        assert_eq!(split(&long), Err(CmdlineError::TooLong { len: MAX_CMDLINE_LEN + 1 }));
        assert!(split(&"a ".repeat(MAX_CMDLINE_LEN / 2)).is_ok());
        let msg = KernelArgs::parse("ostree=\"/x").unwrap_err().to_string();
        assert!(msg.contains("unbalanced double quote at byte 7"), "{msg}");
    }

    #[test]
    fn typed_arguments() {
        let a = KernelArgs::parse(&format!(
            "BOOT_IMAGE=/vmlinuz root=UUID=abc rootfstype=ext4 rootflags=noatime,data=ordered ro \
             ostree=/ostree/boot.1/os/{CSUM}/0 init=/sbin/init2 rootstock.tries=3 \
             rd.rootstock.fallback=off rootstock.kexec=never rootstock.root-timeout=7 \
             rootstock.on-failure=poweroff rootstock.debug rootstock.future=1 -- -s"
        ))
        .unwrap();
        assert_eq!(a.root.as_deref(), Some("UUID=abc"));
        assert_eq!(a.rootfstype.as_deref(), Some("ext4"));
        assert_eq!(a.rootflags.as_deref(), Some("noatime,data=ordered"));
        assert_eq!(a.root_mode, Some(RootMode::ReadOnly));
        assert_eq!(a.ostree, Some(format!("/ostree/boot.1/os/{CSUM}/0")));
        assert_eq!(a.init.as_deref(), Some("/sbin/init2"));
        assert_eq!(a.tries, Some(3));
        assert_eq!(a.fallback, Fallback::Off);
        assert_eq!(a.kexec, Kexec::Never);
        assert_eq!(KernelArgs::parse("rootstock.kexeced=fallback").unwrap().kexeced, Some(Reason::Fallback));
        assert_eq!(a.root_timeout_secs, Some(7));
        assert_eq!(a.on_failure, OnFailure::Poweroff);
        assert!(a.debug);
        assert_eq!(a.unknown, vec!["rootstock.future".to_string()]);
        assert_eq!(a.init_args, vec!["-s".to_string()]);
    }

    #[test]
    fn last_occurrence_wins_and_rd_prefix_is_equivalent() {
        let a =
            KernelArgs::parse("rootstock.tries=3 rd.rootstock.tries=5 ro rw ostree=/a ostree=/b").unwrap();
        assert_eq!(a.tries, Some(5));
        assert_eq!(a.root_mode, Some(RootMode::ReadWrite));
        assert_eq!(a.ostree.as_deref(), Some("/b"));
        let a = KernelArgs::parse("rd.rootstock.tries=5 rootstock.tries=2").unwrap();
        assert_eq!(a.tries, Some(2));
        // `rd.` only aliases rootstock's own keys.
        let a = KernelArgs::parse("rd.ostree=/x").unwrap();
        assert_eq!(a.ostree, None);
    }

    #[test]
    fn deployment_choice() {
        let cases: &[(&str, Option<DeploymentChoice>)] = &[
            ("rootstock.deployment=0", Some(DeploymentChoice::Index(0))),
            ("rootstock.deployment=2", Some(DeploymentChoice::Index(2))),
            ("rootstock.deployment=rollback", Some(DeploymentChoice::Index(1))),
            (&format!("rootstock.deployment={CSUM}.1")[..], Some(DeploymentChoice::Id(format!("{CSUM}.1")))),
        ];
        for (line, want) in cases {
            assert_eq!(&KernelArgs::parse(line).unwrap().deployment, want, "{line}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("rootstock.tries=abc", "rootstock.tries"),
            ("rootstock.tries=100", "rootstock.tries"),
            ("rootstock.tries=-1", "rootstock.tries"),
            ("rootstock.tries", "rootstock.tries"),
            ("rootstock.fallback=maybe", "rootstock.fallback"),
            ("rootstock.kexec=always", "rootstock.kexec"),
            ("rootstock.kexeced=yes", "rootstock.kexeced"),
            ("rootstock.on-failure=explode", "rootstock.on-failure"),
            ("rootstock.root-timeout=99999999999", "rootstock.root-timeout"),
            ("rootstock.deployment=latest", "rootstock.deployment"),
            ("rootstock.deployment=abc.1", "rootstock.deployment"),
            ("rootstock.deployment=100000", "rootstock.deployment"),
            ("rootstock.debug=2", "rootstock.debug"),
            ("ostree", "ostree"),
            ("ostree=/a\u{fffd}b", "ostree"),
        ];
        for (line, key) in cases {
            let err = KernelArgs::parse(line).unwrap_err().to_string();
            assert!(err.contains(key), "{line}: {err}");
        }
    }
}
