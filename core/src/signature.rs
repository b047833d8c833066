//! `composefs.enabled = signed`: the deployment's commit must carry an
//! Ed25519 signature by one of the configured public keys, and names the
//! fs-verity digest its composefs image must have. ostree's rules
//! (prepare-root ≥ 2023.4, reimplemented): the signatures are the `aay`
//! under `ostree.sign.ed25519` in the commit's detached metadata (its
//! `.commitmeta`), each over the whole `.commit` file; one valid signature
//! by any key is enough; the digest is the 32-byte `ay` under
//! `ostree.composefs.digest.v0` in the commit's own metadata. The messages
//! are ostree's, with the details after them.

use crate::gvariant_read::{self, Malformed};

/// The detached-metadata key of the signatures (`aay`).
pub const SIGNATURES_KEY: &str = "ostree.sign.ed25519";
/// The commit-metadata key of the composefs image's digest (`ay`, 32 bytes).
pub const DIGEST_KEY: &str = "ostree.composefs.digest.v0";
/// An Ed25519 signature's size.
const SIGNATURE_SIZE: usize = 64;

/// Why a commit does not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("No commitmeta for commit {csum}")]
    NoCommitmeta { csum: String },
    #[error("Signature validation requested, but no signatures in commit {csum} ({problem})")]
    NoSignatures { csum: String, problem: String },
    #[error("Invalid signature length of {len} bytes, expected {SIGNATURE_SIZE} (commit {csum})")]
    SignatureLength { csum: String, len: usize },
    #[error("No valid signatures found for public key (commit {csum}, {keys} keys, {signatures} signatures)")]
    NoValidSignature { csum: String, keys: usize, signatures: usize },
    #[error("Signature validation requested, but no valid digest in commit {csum} ({problem})")]
    NoDigest { csum: String, problem: String },
}

/// Check the signatures of the commit `csum` (the bytes of its `.commit`
/// file and, when it has one, its `.commitmeta`) against `keys`; the
/// fs-verity digest its composefs image must have.
pub fn verify_commit(
    commit: &[u8],
    commitmeta: Option<&[u8]>,
    csum: &str,
    keys: &[[u8; 32]],
) -> Result<[u8; 32], SignatureError> {
    let csum = || csum.to_string();
    let commitmeta = commitmeta.ok_or_else(|| SignatureError::NoCommitmeta { csum: csum() })?;
    let no_signatures = |problem: String| SignatureError::NoSignatures { csum: csum(), problem };
    let signatures = match gvariant_read::lookup(commitmeta, SIGNATURES_KEY) {
        Err(e) => return Err(no_signatures(format!("commitmeta: {e}"))),
        Ok(None) => return Err(no_signatures(format!("no {SIGNATURES_KEY}"))),
        Ok(Some(v)) if v.ty != b"aay" => {
            return Err(no_signatures(format!(
                "{SIGNATURES_KEY} is of type {}, not aay",
                String::from_utf8_lossy(v.ty)
            )));
        }
        Ok(Some(v)) => {
            gvariant_read::array(v.value, 1).map_err(|e| no_signatures(format!("{SIGNATURES_KEY}: {e}")))?
        }
    };
    // As ostree: key by key, signature by signature, until one is valid; a
    // signature of the wrong size on the way is an error.
    let mut valid = false;
    'keys: for key in keys {
        let key = ed25519_compact::PublicKey::new(*key);
        for s in &signatures {
            let s = ed25519_compact::Signature::from_slice(s)
                .map_err(|_| SignatureError::SignatureLength { csum: csum(), len: s.len() })?;
            if key.verify(commit, &s).is_ok() {
                valid = true;
                break 'keys;
            }
        }
    }
    if !valid {
        return Err(SignatureError::NoValidSignature {
            csum: csum(),
            keys: keys.len(),
            signatures: signatures.len(),
        });
    }
    digest(commit).map_err(|problem| SignatureError::NoDigest { csum: csum(), problem })
}

/// The 32-byte `ostree.composefs.digest.v0` of the commit's metadata.
fn digest(commit: &[u8]) -> Result<[u8; 32], String> {
    let malformed = |e: Malformed| format!("commit: {e}");
    let metadata = gvariant_read::commit_metadata(commit).map_err(malformed)?;
    let v =
        gvariant_read::lookup(metadata, DIGEST_KEY).map_err(malformed)?.ok_or(format!("no {DIGEST_KEY}"))?;
    if v.ty != b"ay" {
        return Err(format!("{DIGEST_KEY} is of type {}, not ay", String::from_utf8_lossy(v.ty)));
    }
    v.value.try_into().map_err(|_| format!("{DIGEST_KEY} has {} bytes, not 32", v.value.len()))
}

#[cfg(test)]
mod tests {
    //! Commits and their metadata made by the real `ostree` CLI. Debian's
    //! ostree has no Ed25519 signer (built without libsodium), so the test
    //! signs the `.commit` file itself and has ostree serialize the
    //! detached metadata: an `a{sv}` holding only `ostree.sign.ed25519`,
    //! which is exactly a commit's metadata made with that one
    //! `--add-metadata`, taken out of a scratch commit.

    use std::path::{Path, PathBuf};
    use std::process::Command;

    use ed25519_compact::{KeyPair, Seed};

    use super::*;
    use crate::testutil::TempDir;

    struct Repo {
        _dir: TempDir,
        repo: PathBuf,
        tree: PathBuf,
    }

    fn have_ostree() -> bool {
        let found = Command::new("ostree").arg("--version").output().is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("skipping: no ostree CLI (apt-get install ostree)");
        }
        found
    }

    fn ostree(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new("ostree")
            .args(args)
            .arg(format!("--repo={}", repo.display()))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "ostree {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    impl Repo {
        fn new() -> Repo {
            let dir = TempDir::new();
            let repo = dir.path().join("repo");
            let tree = dir.path().join("tree");
            std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
            std::fs::write(tree.join("usr/bin/hello"), "hello\n").unwrap();
            ostree(&repo, &["init", "--mode=bare-user"], &[]);
            Repo { _dir: dir, repo, tree }
        }

        /// A commit of the tree with these `--add-metadata` and
        /// `--add-metadata-string` options: its checksum.
        fn commit(&self, options: &[String]) -> String {
            let mut args = vec!["commit", "--orphan", "--no-bindings", "--timestamp=2024-01-01T00:00:00Z"];
            args.extend(options.iter().map(String::as_str));
            let tree = format!("--tree=dir={}", self.tree.display());
            args.push(&tree);
            ostree(&self.repo, &args, &[])
        }

        fn object(&self, csum: &str, ext: &str) -> Option<Vec<u8>> {
            std::fs::read(self.repo.join(format!("objects/{}/{}.{ext}", &csum[..2], &csum[2..]))).ok()
        }

        /// The detached metadata that holds these signatures, as ostree
        /// serializes it.
        fn commitmeta(&self, signatures: &[[u8; 64]]) -> Vec<u8> {
            let scratch = self.commit(&[metadata(SIGNATURES_KEY, "aay", &text_aay(signatures))]);
            child0(&self.object(&scratch, "commit").unwrap()).to_vec()
        }
    }

    /// `--add-metadata=KEY=@TYPE VALUE` (GVariant text).
    fn metadata(key: &str, ty: &str, value: &str) -> String {
        format!("--add-metadata={key}=@{ty} {value}")
    }

    fn text_ay(bytes: &[u8]) -> String {
        let b: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
        if b.is_empty() { "[]".into() } else { format!("[byte {}]", b.join(", ")) }
    }

    fn text_aay(items: &[[u8; 64]]) -> String {
        let items: Vec<String> = items.iter().map(|i| text_ay(i)).collect();
        format!("[{}]", items.join(", "))
    }

    /// Child 0 of a commit tuple, read by hand: its end is the tuple's
    /// last framing offset (independent of the reader under test).
    fn child0(commit: &[u8]) -> &[u8] {
        let w = if commit.len() < 256 { 1 } else { 2 };
        let mut le = [0u8; 8];
        le[..w].copy_from_slice(&commit[commit.len() - w..]);
        &commit[..u64::from_le_bytes(le) as usize]
    }

    fn keypair(n: u8) -> KeyPair {
        KeyPair::from_seed(Seed::new([n; 32]))
    }

    fn sign(k: &KeyPair, data: &[u8]) -> [u8; 64] {
        *k.sk.sign(data, None)
    }

    fn public(k: &KeyPair) -> [u8; 32] {
        *k.pk
    }

    const DIGEST: [u8; 32] = {
        let mut d = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            d[i] = i as u8 * 7 + 1;
            i += 1;
        }
        d
    };

    fn digest_option(bytes: &[u8]) -> String {
        metadata(DIGEST_KEY, "ay", &text_ay(bytes))
    }

    #[test]
    fn a_signed_commit_gives_its_digest() {
        if !have_ostree() {
            return;
        }
        let r = Repo::new();
        let csum = r.commit(&[digest_option(&DIGEST), "--add-metadata-string=version=1.0".into()]);
        let commit = r.object(&csum, "commit").unwrap();
        let (a, b, c) = (keypair(1), keypair(2), keypair(3));
        let meta = r.commitmeta(&[sign(&a, &commit)]);
        assert_eq!(verify_commit(&commit, Some(&meta), &csum, &[public(&a)]), Ok(DIGEST));
        // Another key first, then the signer's.
        assert_eq!(verify_commit(&commit, Some(&meta), &csum, &[public(&c), public(&a)]), Ok(DIGEST));
        // Two signatures, by b and by a; only a's key is configured.
        let two = r.commitmeta(&[sign(&b, &commit), sign(&a, &commit)]);
        assert_eq!(verify_commit(&commit, Some(&two), &csum, &[public(&a)]), Ok(DIGEST));
        assert_eq!(verify_commit(&commit, Some(&two), &csum, &[public(&b)]), Ok(DIGEST));
        // The wrong key.
        let err = verify_commit(&commit, Some(&meta), &csum, &[public(&b), public(&c)]).unwrap_err();
        assert_eq!(err, SignatureError::NoValidSignature { csum: csum.clone(), keys: 2, signatures: 1 });
        assert!(err.to_string().starts_with("No valid signatures found for public key"), "{err}");
        // No commitmeta: what ostree commit leaves.
        assert_eq!(r.object(&csum, "commitmeta"), None);
        let err = verify_commit(&commit, None, &csum, &[public(&a)]).unwrap_err();
        assert_eq!(err.to_string(), format!("No commitmeta for commit {csum}"));
        // One byte changed anywhere in the commit: no signature holds.
        for i in [0, commit.len() / 2, commit.len() - 1] {
            let mut bad = commit.clone();
            bad[i] ^= 1;
            let err = verify_commit(&bad, Some(&meta), &csum, &[public(&a)]).unwrap_err();
            assert!(matches!(err, SignatureError::NoValidSignature { .. }), "byte {i}: {err}");
        }
        // A signature changed.
        let mut sig = sign(&a, &commit);
        sig[10] ^= 0x80;
        let bad = r.commitmeta(&[sig]);
        assert!(matches!(
            verify_commit(&commit, Some(&bad), &csum, &[public(&a)]),
            Err(SignatureError::NoValidSignature { .. })
        ));
    }

    #[test]
    fn the_digest_must_be_32_bytes_of_ay() {
        if !have_ostree() {
            return;
        }
        let r = Repo::new();
        let a = keypair(1);
        let check = |options: &[String]| {
            let csum = r.commit(options);
            let commit = r.object(&csum, "commit").unwrap();
            let meta = r.commitmeta(&[sign(&a, &commit)]);
            verify_commit(&commit, Some(&meta), &csum, &[public(&a)]).map_err(|e| e.to_string())
        };
        let no_digest = "Signature validation requested, but no valid digest in commit";
        for (options, detail) in [
            (vec![], "no ostree.composefs.digest.v0"),
            (vec![digest_option(&DIGEST[..31])], "has 31 bytes, not 32"),
            (vec![digest_option(&[DIGEST, DIGEST].concat()[..33])], "has 33 bytes, not 32"),
            (vec![format!("--add-metadata-string={DIGEST_KEY}=abc")], "is of type s, not ay"),
        ] {
            let err = check(&options).unwrap_err();
            assert!(err.starts_with(no_digest) && err.ends_with(&format!("{detail})")), "{err}");
        }
        assert_eq!(check(&[digest_option(&DIGEST)]), Ok(DIGEST));
    }

    #[test]
    fn signatures_must_be_an_aay_of_64_byte_signatures() {
        if !have_ostree() {
            return;
        }
        let r = Repo::new();
        let a = keypair(1);
        let csum = r.commit(&[digest_option(&DIGEST)]);
        let commit = r.object(&csum, "commit").unwrap();
        let check = |meta: &[u8]| verify_commit(&commit, Some(meta), &csum, &[public(&a)]);
        let no_signatures = "Signature validation requested, but no signatures in commit";
        // Real detached metadata, by ostree's dummy signer: an aay under
        // another key.
        ostree(
            &r.repo,
            &["sign", "--sign-type=dummy", &csum, "some-key"],
            &[("OSTREE_DUMMY_SIGN_ENABLED", "1")],
        );
        let dummy = r.object(&csum, "commitmeta").unwrap();
        let v = gvariant_read::lookup(&dummy, "ostree.sign.dummy").unwrap().unwrap();
        assert_eq!((v.ty, gvariant_read::array(v.value, 1).unwrap()), (&b"aay"[..], vec![&b"some-key"[..]]));
        let err = check(&dummy).unwrap_err().to_string();
        assert!(err.starts_with(no_signatures) && err.ends_with("(no ostree.sign.ed25519)"), "{err}");
        // A string where the signatures belong (ostree's own detached metadata writer).
        let s = r.commit(&[format!("--add-detached-metadata-string={SIGNATURES_KEY}=abc")]);
        let err = check(&r.object(&s, "commitmeta").unwrap()).unwrap_err().to_string();
        assert!(err.starts_with(no_signatures) && err.ends_with("is of type s, not aay)"), "{err}");
        // An empty aay, a signature of 63 bytes.
        let scratch = r.commit(&[metadata(SIGNATURES_KEY, "aay", "[]")]);
        let empty = child0(&r.object(&scratch, "commit").unwrap()).to_vec();
        assert!(matches!(check(&empty), Err(SignatureError::NoValidSignature { signatures: 0, .. })));
        let sig = sign(&a, &commit);
        let scratch = r.commit(&[metadata(SIGNATURES_KEY, "aay", &format!("[{}]", text_ay(&sig[..63])))]);
        let short = child0(&r.object(&scratch, "commit").unwrap()).to_vec();
        assert_eq!(
            check(&short).unwrap_err().to_string(),
            format!("Invalid signature length of 63 bytes, expected 64 (commit {csum})")
        );
        // Garbage.
        let err = check(b"garbage").unwrap_err().to_string();
        assert!(err.starts_with(no_signatures) && err.contains("malformed GVariant"), "{err}");
        assert_eq!(check(&r.commitmeta(&[sig])), Ok(DIGEST));
    }

    /// The real commit, cut short or garbled anywhere: an error, never a
    /// panic (and never its digest).
    #[test]
    fn garbled_commits_and_commitmeta_are_errors() {
        if !have_ostree() {
            return;
        }
        let r = Repo::new();
        let a = keypair(1);
        let csum = r.commit(&[digest_option(&DIGEST)]);
        let commit = r.object(&csum, "commit").unwrap();
        let meta = r.commitmeta(&[sign(&a, &commit)]);
        let keys = [public(&a)];
        for len in 0..meta.len() {
            assert!(verify_commit(&commit, Some(&meta[..len]), &csum, &keys).is_err(), "{len}");
        }
        for i in 0..meta.len() {
            let mut g = meta.clone();
            g[i] ^= 0xff;
            let _ = verify_commit(&commit, Some(&g), &csum, &keys);
        }
        for len in 0..commit.len() {
            assert!(verify_commit(&commit[..len], Some(&meta), &csum, &keys).is_err());
            // A prefix may happen to frame (the signature is what
            // vouches for the bytes): no panic is asked of it.
            let _ = digest(&commit[..len]);
        }
        for i in 0..commit.len() {
            let mut g = commit.clone();
            g[i] ^= 0xff;
            let _ = digest(&g);
        }
        assert_eq!(digest(&commit), Ok(DIGEST));
    }
}
