//! Fail closed: what the configuration promises about a deployment's root
//! holds, or that deployment does not boot (DESIGN.md, "Integrity").
//!
//! ostree's rules (`otcore_mount_rootfs` and `main` in ostree's
//! `src/switchroot/ostree-prepare-root.c`): with `composefs.enabled = yes`,
//! `verity` or `signed`, a deployment boots from its composefs image or not
//! at all; with `maybe`, from its image when it has one ("No image
//! present": the plain tree); `root.transient` and `root.transient-ro`
//! need composefs. What is checked here is what can be known before
//! mounting: the key, the image's presence, the signature; the image's and
//! the objects' fs-verity are checked by the kernel as the plan mounts them
//! ([`crate::seam::Op::MountImage`], [`crate::seam::Op::ComposefsOverlay`]),
//! and a failed mount makes the deployment unbootable like any failed step.

use std::path::Path;

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
            let keys = confine::read_text(&path, confine::SMALL_FILE_CAP)
                .map_err(|e| e.to_string())
                .and_then(|text| crate::composefs::parse_keys(&text));
            match keys {
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
    match (policy.enabled, image) {
        (_, Ok(false)) if policy.required() => Err(refuse(Refused::NoImage { policy })),
        (_, Ok(false)) => match transient {
            Some(key) => Err(refuse(Refused::TransientNeedsComposefs { key })),
            None => Ok(Root::Plain),
        },
        (_, Ok(true)) => {
            let verity = match &keys {
                Some(_) => return Err(refuse(Refused::Unsupported { policy })),
                None if policy.verity => ImageVerity::Required,
                None => ImageVerity::Unchecked,
            };
            let signed_by = keys.map(|_| config.composefs.key_file());
            Ok(Root::Composefs(Composefs { verity, signed_by }))
        }
        (_, Err(problem)) => Err(refuse(Refused::BadImage { policy, problem })),
    }
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
        let cfs = |verity| Ok(Root::Composefs(Composefs { verity, signed_by: None }));
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
}
