//! The kernel's `root=`: what it may say, and which device it names.

use std::fmt;

use super::devices::DeviceInfo;

/// A kernel `root=` value.
///
/// Accepted: `/dev/NAME`, a bare `NAME` (meaning `/dev/NAME`, as the kernel
/// does), `MAJ:MIN`, `UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`, and the
/// udev paths `/dev/disk/by-{uuid,label,partuuid,partlabel}/X` (which do not
/// exist without udev, so they are read as the matching tag). Prefixes must be
/// upper case, as the kernel and systemd require: `uuid=...` is refused with a
/// message, so a command line that boots with rootstock also boots with
/// dracut. Refused too: the kernel's `PARTUUID=.../PARTNROFF=N`, old-style
/// hexadecimal device numbers and systemd's `gpt-auto`, `fstab`, `tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    Path(String),
    Uuid(String),
    Label(String),
    PartUuid(String),
    PartLabel(String),
    Devno(u32, u32),
}

type Tag = fn(String) -> RootSpec;
const TAGS: [(&str, &str, Tag); 4] = [
    ("UUID=", "/dev/disk/by-uuid/", RootSpec::Uuid),
    ("LABEL=", "/dev/disk/by-label/", RootSpec::Label),
    ("PARTUUID=", "/dev/disk/by-partuuid/", RootSpec::PartUuid),
    ("PARTLABEL=", "/dev/disk/by-partlabel/", RootSpec::PartLabel),
];

/// Undoes udev's `\xNN` escaping of `/dev/disk/by-*` names.
fn unescape_udev(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b.get(i..i + 2), hex) {
            (Some(b"\\x"), Some(x)) => {
                out.push(x);
                i += 4;
            }
            _ => {
                out.extend(b.get(i).copied());
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RootSpec {
    /// Parses a `root=` value. The error says why it cannot be used and
    /// what can, but not the value itself: the caller names it
    /// (`root=VALUE: why`), as [`crate::Error::BadRootArgument`] does.
    pub fn parse(s: &str) -> Result<RootSpec, String> {
        let err = |why: String| {
            Err(format!(
                "{why} (rootstock accepts /dev/NAME, NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL=)"
            ))
        };
        if s.is_empty() {
            return err("no device given".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) && !s.contains('=') {
            return err("a device name cannot contain blanks".into());
        }
        for (prefix, dir, make) in TAGS {
            let tag = prefix.trim_end_matches('=');
            let value = match (s.strip_prefix(prefix), s.strip_prefix(dir)) {
                (Some(v), _) => v.to_string(),
                (None, Some(v)) => unescape_udev(v),
                (None, None) => {
                    if s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)) {
                        return err(format!(
                            "write {prefix} in upper case, as the kernel and systemd require"
                        ));
                    }
                    continue;
                }
            };
            if value.is_empty() {
                return err(format!("{tag} is empty"));
            }
            if tag == "PARTUUID" && value.contains("/PARTNROFF=") {
                return err(
                    "the kernel's /PARTNROFF= form is not supported; name the partition itself".into()
                );
            }
            if tag.ends_with("UUID") && !value.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return err(format!("{tag} {value:?} is not a UUID (hex digits and dashes)"));
            }
            return Ok(make(value));
        }
        if let Some(name) = s.strip_prefix("/dev/") {
            if name.is_empty() || name.ends_with('/') {
                return err("no device name after /dev/".into());
            }
            if name.starts_with("disk/") {
                return err(
                    "of /dev/disk/, only by-uuid, by-label, by-partuuid and by-partlabel work without udev"
                        .into(),
                );
            }
            return Ok(RootSpec::Path(s.to_string()));
        }
        if s.starts_with('/') {
            return err("a device path must be in /dev/".into());
        }
        if let Some((major, minor)) = s.split_once(':') {
            return match (major.parse(), minor.parse()) {
                (Ok(major), Ok(minor)) => Ok(RootSpec::Devno(major, minor)),
                _ => err("not a decimal MAJ:MIN device number".into()),
            };
        }
        if s.contains('=') {
            return err("unknown form".into());
        }
        if matches!(s, "gpt-auto" | "fstab" | "tmpfs" | "off") {
            return err("this systemd form is not supported by rootstock's PID 1".into());
        }
        if s.chars().all(|c| c.is_ascii_hexdigit()) {
            return err("hexadecimal device numbers are not supported; use MAJ:MIN".into());
        }
        Ok(RootSpec::Path(format!("/dev/{s}")))
    }

    /// Whether `d` is the device this names. UUIDs compare without regard to
    /// case, labels exactly, paths as strings.
    pub fn matches(&self, d: &DeviceInfo) -> bool {
        let sb = d.superblock.as_ref();
        match self {
            RootSpec::Path(p) => d.path.as_os_str() == p.as_str(),
            RootSpec::Uuid(u) => {
                sb.and_then(|s| s.uuid.as_deref()).is_some_and(|x| x.eq_ignore_ascii_case(u))
            }
            RootSpec::Label(l) => sb.and_then(|s| s.label.as_deref()) == Some(l.as_str()),
            RootSpec::PartUuid(u) => d.partuuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u)),
            RootSpec::PartLabel(l) => d.partlabel.as_deref() == Some(l.as_str()),
            RootSpec::Devno(major, minor) => d.devno == Some((*major, *minor)),
        }
    }

    /// Every device that matches, in the order given. More than one (cloned
    /// disks, multi-device btrfs) is the caller's to report.
    pub fn find<'a>(&self, devices: &'a [DeviceInfo]) -> Vec<&'a DeviceInfo> {
        devices.iter().filter(|d| self.matches(d)).collect()
    }
}

impl fmt::Display for RootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSpec::Path(p) => f.write_str(p),
            RootSpec::Uuid(v) => write!(f, "UUID={v}"),
            RootSpec::Label(v) => write!(f, "LABEL={v}"),
            RootSpec::PartUuid(v) => write!(f, "PARTUUID={v}"),
            RootSpec::PartLabel(v) => write!(f, "PARTLABEL={v}"),
            RootSpec::Devno(major, minor) => write!(f, "{major}:{minor}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::U1;
    use crate::probe::{FsType, Superblock};

    #[test]
    fn root_spec_parse() {
        use RootSpec::*;
        let ok: &[(&str, RootSpec)] = &[
            ("/dev/vda2", Path("/dev/vda2".into())),
            ("/dev/mapper/root", Path("/dev/mapper/root".into())),
            ("vda2", Path("/dev/vda2".into())),
            ("8:1", Devno(8, 1)),
            ("UUID=ABCD-1234", Uuid("ABCD-1234".into())),
            ("UUID=3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", Uuid(U1.into())),
            ("LABEL=my root", Label("my root".into())),
            ("LABEL=a=b", Label("a=b".into())),
            ("PARTUUID=12345678-01", PartUuid("12345678-01".into())),
            ("PARTLABEL=root", PartLabel("root".into())),
            ("/dev/disk/by-uuid/3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", Uuid(U1.into())),
            ("/dev/disk/by-label/my\\x20root", Label("my root".into())),
            ("/dev/disk/by-partlabel/d\\xc3\\xa4t\\xc3\\xa4", PartLabel("dätä".into())),
            ("/dev/disk/by-partuuid/12345678-01", PartUuid("12345678-01".into())),
        ];
        for (arg, want) in ok {
            assert_eq!(RootSpec::parse(arg).as_ref(), Ok(want), "{arg}");
            if !arg.starts_with("/dev/disk/") && *arg != "vda2" {
                assert_eq!(want.to_string(), *arg);
            }
        }
        let bad: &[(&str, &str)] = &[
            ("", "no device"),
            ("uuid=3f1c2e4a", "upper case"),
            ("Label=root", "upper case"),
            ("partuuid=12345678-01", "upper case"),
            ("partlabel=x", "upper case"),
            ("UUID=", "empty"),
            ("/dev/disk/by-label/", "empty"),
            ("UUID=not-a-uuid!", "not a UUID"),
            ("PARTUUID=12345678-01/PARTNROFF=1", "PARTNROFF"),
            ("0801", "hexadecimal"),
            ("8:x", "MAJ:MIN"),
            ("8:1:2", "MAJ:MIN"),
            ("gpt-auto", "systemd"),
            ("/foo/bar", "/dev/"),
            ("/dev/", "no device name"),
            ("/dev/disk/by-id/virtio-root", "without udev"),
            ("FOO=bar", "unknown"),
            ("my disk", "blanks"),
        ];
        for (arg, why) in bad {
            let e = RootSpec::parse(arg).expect_err(arg);
            assert!(e.contains(why) && !e.contains("root="), "{arg}: {e}");
        }
    }

    /// The boot error names the value once: `root=X: why`, not `root=X: root=X: why`.
    #[test]
    fn a_bad_root_is_named_once() {
        for arg in ["uuid=3f1c2e4a", "", "/dev/disk/by-id/virtio-root"] {
            let message = RootSpec::parse(arg).unwrap_err();
            let shown = crate::Error::BadRootArgument { value: arg.into(), message }.to_string();
            assert_eq!(shown.matches("root=").count(), 1, "{shown}");
        }
        let message = RootSpec::parse("uuid=3f1c2e4a").unwrap_err();
        assert_eq!(
            crate::Error::BadRootArgument { value: "uuid=3f1c2e4a".into(), message }.to_string(),
            "step: find the root device\nerror: root=uuid=3f1c2e4a: write UUID= in upper case, as the \
             kernel and systemd require (rootstock accepts /dev/NAME, NAME, MAJ:MIN, UUID=, LABEL=, \
             PARTUUID=, PARTLABEL=)"
        );
    }

    fn device(path: &str, uuid: &str, label: &str, partuuid: &str, partlabel: &str) -> DeviceInfo {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        DeviceInfo {
            path: path.into(),
            devno: Some((254, 1)),
            superblock: Some(Superblock { fstype: FsType::Ext4, uuid: some(uuid), label: some(label) }),
            partuuid: some(partuuid),
            partlabel: some(partlabel),
        }
    }

    #[test]
    fn root_spec_matches() {
        let d = device("/dev/vda1", U1, "rootfs", "12345678-01", "root");
        let table: &[(&str, bool)] = &[
            ("/dev/vda1", true),
            ("vda1", true),
            ("/dev/vda2", false),
            ("254:1", true),
            ("254:2", false),
            ("UUID=3F1C2E4A-5B6D-4E7F-8A9B-0C1D2E3F4A5B", true),
            ("UUID=3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5c", false),
            ("LABEL=rootfs", true),
            ("LABEL=ROOTFS", false),
            ("PARTUUID=12345678-01", true),
            ("PARTUUID=12345678-02", false),
            ("PARTLABEL=root", true),
            ("PARTLABEL=Root", false),
        ];
        for (arg, want) in table {
            assert_eq!(RootSpec::parse(arg).unwrap().matches(&d), *want, "{arg}");
        }
        let bare = DeviceInfo { superblock: None, partuuid: None, partlabel: None, devno: None, ..d.clone() };
        for arg in ["UUID=3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "LABEL=rootfs", "PARTLABEL=root", "254:1"] {
            assert!(!RootSpec::parse(arg).unwrap().matches(&bare), "{arg}");
        }
    }
}
