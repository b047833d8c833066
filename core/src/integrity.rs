//! Fail closed: what the configuration promises about a deployment's root
//! holds, or that deployment does not boot (DESIGN.md, "Integrity").
//!
//! ostree's rules (`otcore_mount_rootfs` and `main` in ostree's
//! `src/switchroot/ostree-prepare-root.c`): with `composefs.enabled = yes`,
//! `verity` or `signed`, a deployment boots from its composefs image or not
//! at all; with `maybe`, from its image when it has one ("No image
//! present": the plain tree); `root.transient` and `root.transient-ro`
//! need composefs. What is checked here is what can be known before
//! mounting: the key, the image's presence, the commit's signature
//! ([`signed_digest`], [`crate::signature`]); the image's and
//! the objects' fs-verity are checked by the kernel as the plan mounts them
//! ([`crate::seam::Op::MountImage`], [`crate::seam::Op::ComposefsOverlay`]),
//! and a failed mount makes the deployment unbootable like any failed step.

use std::path::{Path, PathBuf};

use crate::composefs::{Composefs, IMAGE, Refused, Root, Tristate};
use crate::config::Config;
use crate::confine;
use crate::errno::Errno;
use crate::layout::{Deployment, Unbootable};
use crate::seam::ImageVerity;

/// Decide how `d` may be laid out under `config`, or why it may not.
pub fn check(physical_root: &Path, d: &Deployment, config: &Config) -> Result<Root, Unbootable> {
    let refuse = |refused| Unbootable::Integrity { deployment: d.dir(), refused };
    let policy = config.composefs.policy;
    let keys = match policy.signed {
        false => None,
        true => {
            let path = config.composefs.key_file();
            let read = confine::read_text(&path, confine::SMALL_FILE_CAP).map_err(|e| e.to_string());
            match read.and_then(|text| Ok((crate::composefs::parse_keys(&text)?, text))) {
                Ok(keys) => Some(keys),
                Err(problem) => return Err(refuse(Refused::NoKey { policy, path, problem })),
            }
        }
    };
    let transient = if config.root.transient_ro {
        Some("root.transient-ro")
    } else if config.root.transient {
        Some("root.transient")
    } else {
        None
    };
    let image = match policy.enabled {
        Tristate::No => Ok(false),
        _ => image(physical_root, d),
    };
    match image {
        Ok(false) if policy.required() => Err(refuse(Refused::NoImage { policy })),
        Ok(false) => match transient {
            Some(key) => Err(refuse(Refused::TransientNeedsComposefs { key })),
            None => Ok(Root::Plain),
        },
        Ok(true) => {
            let verity = match &keys {
                Some((keys, _)) => {
                    let digest = signed_digest(physical_root, d, keys)
                        .map_err(|problem| refuse(Refused::Signature { policy, problem }))?;
                    log::info!("{}: its commit is signed by a configured key", d.label());
                    ImageVerity::Digest(digest)
                }
                None if policy.verity => ImageVerity::Required,
                None => ImageVerity::Unchecked,
            };
            let signed_by = keys.as_ref().map(|_| config.composefs.key_file());
            let keys_text = keys.map(|(_, text)| text);
            Ok(Root::Composefs(Composefs { verity, signed_by, keys_text }))
        }
        Err(problem) => Err(refuse(Refused::BadImage { policy, problem })),
    }
}

/// The largest `.commit` or `.commitmeta` read: ostree's commits are a
/// few hundred bytes to a few hundred KB (an rpm-ostree package list).
pub const COMMIT_CAP: u64 = 16 << 20;

/// The deployment's commit, checked against the configured public keys as
/// ostree's prepare-root checks it: the fs-verity digest its composefs
/// image must have. Both objects are read inside the physical root, from
/// the repository `ostree/repo`, capped.
pub fn signed_digest(physical_root: &Path, d: &Deployment, keys: &[[u8; 32]]) -> Result<[u8; 32], String> {
    let csum = &d.csum;
    if csum.len() != 64 || !csum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{csum} is not a commit checksum"));
    }
    let root = confine::open_root(physical_root).map_err(|e| e.to_string())?;
    let object = |ext| PathBuf::from(format!("ostree/repo/objects/{}/{}.{ext}", &csum[..2], &csum[2..]));
    let commit =
        confine::read_in_root(&root, &object("commit"), COMMIT_CAP).map_err(|e| format!("the commit {e}"))?;
    let commitmeta = match confine::read_in_root(&root, &object("commitmeta"), COMMIT_CAP) {
        Ok(m) => Some(m),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(format!("the commit's detached metadata {e}")),
    };
    crate::signature::verify_commit(&commit, commitmeta.as_deref(), csum, keys).map_err(|e| e.to_string())
}

/// Does the deployment have a composefs image: a regular file in its
/// directory, reached without a symlink?
fn image(physical_root: &Path, d: &Deployment) -> Result<bool, String> {
    let looked_up = |e: Errno| format!("cannot be looked up: {e}");
    confine::real_dir(physical_root, &d.dir()).map_err(looked_up)?;
    let path = physical_root.join(d.dir()).join(IMAGE);
    match rustix::fs::statat(rustix::fs::CWD, &path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile => {
            Ok(true)
        }
        Ok(_) => Err("is not a regular file (refused)".into()),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(looked_up(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::read_deployments;
    use crate::testutil::{TempDir, fake_physical_root};

    fn config(key_root: &Path, ostree: &str) -> Config {
        let mut c = Config::default();
        c.composefs.key_root = key_root.to_path_buf();
        c.apply_ostree(Path::new("/p"), ostree).unwrap();
        c
    }

    #[test]
    fn what_each_policy_allows() {
        let t = TempDir::new();
        let root = t.path().join("phys");
        fake_physical_root(&root, "r", None);
        let d = read_deployments(&root).unwrap().list[0].clone();
        let image = root.join(d.dir()).join(IMAGE);
        let check = |text: &str| check(&root, &d, &config(t.path(), text)).map_err(|e| e.to_string());
        let plain = Ok(Root::Plain);
        // No image.
        assert_eq!(check(""), plain);
        assert_eq!(check("[composefs]\nenabled=maybe\n"), plain);
        for mode in ["yes", "verity"] {
            let err = check(&format!("[composefs]\nenabled={mode}\n")).unwrap_err();
            assert!(err.ends_with(&format!("composefs.enabled = {mode}: the deployment has no composefs image (.ostree.cfs): redeploy it with composefs on")), "{err}");
        }
        let err = check("[composefs]\nenabled=signed\n").unwrap_err();
        assert!(
            err.contains("composefs.enabled = signed: the signing key") && err.contains("ENOENT"),
            "{err}"
        );
        let err = check("[root]\ntransient=true\n").unwrap_err();
        assert!(err.contains("root.transient is set: a transient root needs composefs"), "{err}");
        // With a key, signed gets as far as the image.
        std::fs::create_dir_all(t.path().join("etc/ostree")).unwrap();
        std::fs::write(
            t.path().join("etc/ostree/initramfs-root-binding.key"),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        )
        .unwrap();
        assert!(check("[composefs]\nenabled=signed\n").unwrap_err().contains("no composefs image"));
        // An image: composefs, never the plain tree, with the fs-verity the
        // policy asks for.
        std::fs::write(&image, "").unwrap();
        let cfs = |verity| Ok(Root::Composefs(Composefs { verity, signed_by: None, keys_text: None }));
        assert_eq!(check("[composefs]\nenabled=maybe\n"), cfs(ImageVerity::Unchecked));
        assert_eq!(check("[composefs]\nenabled=yes\n"), cfs(ImageVerity::Unchecked));
        assert_eq!(check("[composefs]\nenabled=verity\n"), cfs(ImageVerity::Required));
        assert_eq!(
            check("[composefs]\nenabled=maybe\n[root]\ntransient-ro=true\n"),
            cfs(ImageVerity::Unchecked)
        );
        // An image that is not a regular file is refused, whatever it points to.
        std::fs::remove_file(&image).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &image).unwrap();
        let err = check("[composefs]\nenabled=maybe\n").unwrap_err();
        assert!(err.contains(".ostree.cfs is not a regular file (refused)"), "{err}");
        assert_eq!(check(""), plain, "composefs off: the image is not looked at");
    }
    /// `a{sv}` by hand, for entries under 256 bytes: each entry is the key,
    /// its zero byte, padding to 8, the value, a zero byte, the type, and
    /// the key's end; the array's offsets are the entries' ends.
    fn vardict(entries: &[(&str, &[u8], &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for (key, value, ty) in entries {
            out.resize(out.len().next_multiple_of(8), 0);
            let start = out.len();
            out.extend_from_slice(key.as_bytes());
            out.push(0);
            let key_end = out.len() - start;
            out.resize(start + key_end.next_multiple_of(8), 0);
            out.extend_from_slice(value);
            out.push(0);
            out.extend_from_slice(ty.as_bytes());
            out.push(key_end as u8);
            ends.push(out.len() as u8);
        }
        out.extend_from_slice(&ends);
        out
    }

    /// A signed commit in the repository: signed passes it, and only with
    /// its key and its detached metadata.
    #[test]
    fn signed_needs_the_commits_signature() {
        use ed25519_compact::{KeyPair, Seed};
        let t = TempDir::new();
        let root = t.path().join("phys");
        fake_physical_root(&root, "r", None);
        let d = read_deployments(&root).unwrap().list[0].clone();
        std::fs::write(root.join(d.dir()).join(IMAGE), "").unwrap();
        let keys = |k: &KeyPair| {
            std::fs::create_dir_all(t.path().join("etc/ostree")).unwrap();
            let b64 = crate::testutil::run_piped(std::process::Command::new("base64").arg("-w0"), &k.pk[..]);
            std::fs::write(t.path().join("etc/ostree/initramfs-root-binding.key"), b64).unwrap();
        };
        let check_ok = || {
            check(&root, &d, &config(t.path(), "[composefs]\nenabled=signed\n")).map_err(|e| e.to_string())
        };
        let check = || check_ok().unwrap_err();
        // The commit: its metadata with the digest, and (not read here) the
        // tuple's other children, framed by six offsets after it.
        let digest = [7u8; 32];
        let mut commit = vardict(&[("ostree.composefs.digest.v0", &digest, "ay")]);
        let end = commit.len() as u8;
        commit.extend_from_slice(&[end; 6]);
        let objects = root.join(format!("ostree/repo/objects/{}", &d.csum[..2]));
        std::fs::create_dir_all(&objects).unwrap();
        std::fs::write(objects.join(format!("{}.commit", &d.csum[2..])), &commit).unwrap();
        let key = KeyPair::from_seed(Seed::new([5; 32]));
        keys(&key);
        let err = check();
        assert!(
            err.ends_with(&format!("composefs.enabled = signed: No commitmeta for commit {}", d.csum)),
            "{err}"
        );
        // One signature: an aay of one element and its end.
        let mut aay = key.sk.sign(&commit, None).to_vec();
        aay.push(64);
        let meta = vardict(&[("ostree.sign.ed25519", &aay, "aay")]);
        std::fs::write(objects.join(format!("{}.commitmeta", &d.csum[2..])), &meta).unwrap();
        // Signed and with its digest: the image must have that digest.
        let signed = Composefs {
            verity: ImageVerity::Digest(digest),
            signed_by: Some(t.path().join("etc/ostree/initramfs-root-binding.key")),
            keys_text: Some(
                std::fs::read_to_string(t.path().join("etc/ostree/initramfs-root-binding.key")).unwrap(),
            ),
        };
        assert_eq!(check_ok(), Ok(Root::Composefs(signed)));
        keys(&KeyPair::from_seed(Seed::new([6; 32])));
        assert!(check().contains("No valid signatures found for public key"), "{}", check());
    }
}
