//! What the configuration asks of a deployment's root: ostree's
//! `[composefs] enabled` (and `ostree.prepare-root.composefs=`), with
//! ostree's meanings (`otcore_load_rootfs_config` in ostree's
//! `src/libotcore/otcore-prepare-root.c`):
//!
//! | value | composefs | fs-verity required | signature required |
//! |---|---|---|---|
//! | `no`, `false`, `0` (default) | never | | |
//! | `maybe`, `auto` | when the deployment has an image | | |
//! | `yes`, `true`, `1` | always: no image, no boot | | |
//! | `verity` | always | yes | |
//! | `signed` | always | yes | yes (Ed25519, `composefs.keypath`) |
//!
//! The kernel argument overrides the file as ostree's does: `signed` turns
//! signatures on; any other value turns them off and sets the tristate,
//! keeping the file's fs-verity requirement.

use std::fmt;
use std::path::PathBuf;

use crate::seam::ImageVerity;

/// How a deployment's root is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Root {
    /// The deployment directory itself, bound (ostree's "legacy" layout).
    #[default]
    Plain,
    /// The deployment's composefs image ([`IMAGE`]) over the repository's
    /// objects.
    Composefs(Composefs),
}

/// A composefs root, and what was checked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composefs {
    /// What the image's own fs-verity must be; with anything but
    /// `Unchecked`, every object's fs-verity digest must also be the one
    /// the image records (`verity=require`).
    pub verity: ImageVerity,
    /// `signed`: the key file whose key verified the commit's signature
    /// (ostree records it in /run/ostree-booted as `composefs.signed`).
    pub signed_by: Option<PathBuf>,
    /// `signed`: that file's contents, left in the run directory
    /// ([`BOOTED_KEYS`]) for a soft reboot to verify with.
    pub keys_text: Option<String>,
}

/// Where the boot leaves the signing keys it verified with (the
/// initramfs's), in the run directory: a soft reboot verifies with these,
/// not with the running system's `/etc`, which is the deployment's own and
/// not verified.
pub const BOOTED_KEYS: &str = "rootstock/composefs-keys";

/// What `/run/ostree-booted` says the running boot's root was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Booted {
    pub composefs: bool,
    pub verity: bool,
    pub signed: bool,
}

impl Booted {
    /// From `/run/ostree-booted`'s GVariant (`composefs`,
    /// `composefs.verity`, `composefs.signed`); what cannot be read says
    /// nothing.
    pub fn read(ostree_booted: &[u8]) -> Booted {
        use crate::gvariant_read::lookup;
        let flag = |key| matches!(lookup(ostree_booted, key), Ok(Some(v)) if v.ty == b"b" && v.value == [1]);
        Booted {
            composefs: flag("composefs"),
            verity: flag("composefs.verity"),
            signed: matches!(lookup(ostree_booted, "composefs.signed"), Ok(Some(v)) if v.ty == b"s"),
        }
    }
}

impl Composefs {
    /// Are the objects' fs-verity digests checked?
    pub fn verity(&self) -> bool {
        self.verity != ImageVerity::Unchecked
    }
}

/// ostree's tristate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tristate {
    #[default]
    No,
    Maybe,
    Yes,
}

/// The composefs policy in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub enabled: Tristate,
    /// Every object must carry fs-verity (`verity`, `signed`).
    pub verity: bool,
    /// The commit must be signed by a key of `composefs.keypath` (`signed`).
    pub signed: bool,
}

/// `ostree.prepare-root.composefs=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelArg {
    Signed,
    Tristate(Tristate),
}

/// ostree's `_ostree_parse_tristate`.
pub fn parse_tristate(v: &str) -> Option<Tristate> {
    match v {
        "no" | "false" | "0" => Some(Tristate::No),
        "maybe" | "auto" => Some(Tristate::Maybe),
        "yes" | "true" | "1" => Some(Tristate::Yes),
        _ => None,
    }
}

impl Policy {
    /// The policy `[composefs] enabled = VALUE` sets; `None` for a value
    /// ostree refuses.
    pub fn from_config(v: &str) -> Option<Policy> {
        match v {
            "signed" => Some(Policy { enabled: Tristate::Yes, verity: true, signed: true }),
            "verity" => Some(Policy { enabled: Tristate::Yes, verity: true, signed: false }),
            other => parse_tristate(other).map(|enabled| Policy { enabled, verity: false, signed: false }),
        }
    }

    /// The policy after the kernel argument, as ostree applies it.
    pub fn with_kernel_arg(self, arg: Option<KernelArg>) -> Policy {
        match arg {
            None => self,
            Some(KernelArg::Signed) => Policy { enabled: Tristate::Yes, verity: true, signed: true },
            Some(KernelArg::Tristate(enabled)) => Policy { enabled, signed: false, ..self },
        }
    }

    /// This policy, raised to what the running boot had: a soft reboot
    /// never asks for less than the boot it replaces was given (its
    /// configuration in `/etc` is not verified).
    pub fn at_least(self, booted: Booted) -> Policy {
        let mut p = self;
        if booted.composefs {
            p.enabled = Tristate::Yes;
        }
        p.verity |= booted.verity;
        p.signed |= booted.signed;
        p
    }

    /// Does every deployment have to boot from a composefs image?
    pub fn required(&self) -> bool {
        self.enabled == Tristate::Yes
    }
}

impl KernelArg {
    pub fn parse(v: &str) -> Option<KernelArg> {
        if v == "signed" { Some(KernelArg::Signed) } else { parse_tristate(v).map(KernelArg::Tristate) }
    }
}

/// The value as `prepare-root.conf` would spell it.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.enabled, self.verity, self.signed) {
            (Tristate::No, ..) => "no",
            (Tristate::Maybe, ..) => "maybe",
            (Tristate::Yes, _, true) => "signed",
            (Tristate::Yes, true, false) => "verity",
            (Tristate::Yes, false, false) => "yes",
        })
    }
}

/// The deployment's composefs image, in its directory (what `ostree admin
/// deploy` writes when composefs is on).
pub const IMAGE: &str = ".ostree.cfs";

/// Why a deployment cannot give what the configuration asks for. Each
/// makes the deployment unbootable: it is skipped like a broken one, and
/// never laid out as a plain tree instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{key} is set: a transient root needs composefs (ostree: \"Must enable composefs with \
         root.transient\"), and this deployment does not boot from composefs"
    )]
    TransientNeedsComposefs { key: &'static str },
    #[error("composefs.enabled = {policy}: the signing key {}: {problem}", path.display())]
    NoKey { policy: Policy, path: std::path::PathBuf, problem: String },
    #[error("composefs.enabled = {policy}: {problem}")]
    Signature { policy: Policy, problem: String },
    #[error(
        "composefs.enabled = {policy}: the deployment has no composefs image ({IMAGE}): redeploy it with composefs on"
    )]
    NoImage { policy: Policy },
    #[error("composefs.enabled = {policy}: {IMAGE} {problem}")]
    BadImage { policy: Policy, problem: String },
}

/// The public keys of a `composefs.keypath` file: one base64 Ed25519 key
/// (32 bytes) per line, blank lines ignored, as ostree reads it.
pub fn parse_keys(text: &str) -> Result<Vec<[u8; 32]>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bytes = base64(line).ok_or_else(|| format!("line {}: not base64", n + 1))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!("line {}: {} bytes, an Ed25519 public key has 32", n + 1, b.len())
        })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err("no public keys in it".into());
    }
    Ok(keys)
}

/// Standard base64 with padding.
fn base64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let s = s.as_bytes();
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, chunk) in s.chunks(4).enumerate() {
        let last = i == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | u32::from(value(c)?);
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soft_reboot_asks_at_least_what_the_running_boot_was_given() {
        use crate::gvariant::{Value, vardict};
        let booted = |entries: &[(&str, Value)]| Booted::read(&vardict(entries));
        let none = booted(&[("root.transient", Value::Bool(false)), ("sysroot-ro", Value::Bool(false))]);
        assert_eq!(none, Booted::default());
        let verity = booted(&[("composefs", Value::Bool(true)), ("composefs.verity", Value::Bool(true))]);
        assert_eq!(verity, Booted { composefs: true, verity: true, signed: false });
        let signed = booted(&[
            ("composefs", Value::Bool(true)),
            ("composefs.verity", Value::Bool(true)),
            ("composefs.signed", Value::Str("/etc/ostree/initramfs-root-binding.key")),
        ]);
        assert!(signed.signed);
        assert_eq!(Booted::read(b"garbage"), Booted::default(), "unreadable says nothing");
        let p = |v| Policy::from_config(v).unwrap();
        assert_eq!(p("no").at_least(none), p("no"));
        assert_eq!(p("no").at_least(verity), p("verity"));
        assert_eq!(p("maybe").at_least(signed), p("signed"));
        assert_eq!(p("signed").at_least(verity), p("signed"), "never lowered");
        let plain_composefs =
            booted(&[("composefs", Value::Bool(true)), ("composefs.verity", Value::Bool(false))]);
        assert_eq!(p("maybe").at_least(plain_composefs), p("yes"));
    }

    #[test]
    fn config_values_mean_what_they_mean_to_ostree() {
        let p = |v| Policy::from_config(v).map(|p| p.to_string());
        for (v, want) in [
            ("no", "no"),
            ("false", "no"),
            ("0", "no"),
            ("maybe", "maybe"),
            ("auto", "maybe"),
            ("yes", "yes"),
            ("true", "yes"),
            ("1", "yes"),
            ("verity", "verity"),
            ("signed", "signed"),
        ] {
            assert_eq!(p(v).as_deref(), Some(want), "{v}");
        }
        for bad in ["Yes", "signed ", "", "on"] {
            assert_eq!(Policy::from_config(bad), None, "{bad:?}");
        }
        assert!(Policy::from_config("verity").is_some_and(|p| p.required() && p.verity && !p.signed));
        assert!(!Policy::from_config("maybe").is_some_and(|p| p.required()));
    }

    #[test]
    fn the_kernel_argument_overrides_as_ostree_does() {
        let conf = |v| Policy::from_config(v).unwrap_or_default();
        let arg = |v| KernelArg::parse(v);
        // signed from the command line: everything on.
        assert_eq!(conf("no").with_kernel_arg(arg("signed")).to_string(), "signed");
        // Any other value turns signatures off and keeps fs-verity.
        assert_eq!(conf("signed").with_kernel_arg(arg("yes")).to_string(), "verity");
        assert_eq!(conf("verity").with_kernel_arg(arg("1")).to_string(), "verity");
        assert_eq!(conf("signed").with_kernel_arg(arg("no")).to_string(), "no");
        assert_eq!(conf("yes").with_kernel_arg(arg("maybe")).to_string(), "maybe");
        assert_eq!(conf("yes").with_kernel_arg(None).to_string(), "yes");
        assert_eq!(KernelArg::parse("verity"), None, "ostree's kernel argument has no verity");
    }

    #[test]
    fn key_files_hold_base64_ed25519_keys() {
        // 32 bytes 0..31, base64.
        let k = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let keys = parse_keys(&format!("\n{k}\n\n{k}\n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0][31], 31);
        assert!(parse_keys("").unwrap_err().contains("no public keys"));
        assert!(parse_keys("AAEC\n").unwrap_err().contains("3 bytes"));
        assert!(parse_keys("not*base64\n").unwrap_err().contains("not base64"));
        assert_eq!(base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64("aA=="), Some(b"h".to_vec()));
        assert_eq!(base64("a=bc"), None);
    }
}
