//! `/run/rootstock/state`: what rootstock decided at boot, for userspace.
//!
//! Plain `key=value` lines (readable by shell scripts and systemd's
//! `EnvironmentFile=`); `skipped=` repeats, one per candidate passed over.

use std::path::Path;

use serde::Serialize;

use crate::cmdline::KernelArgs;

/// Where the second pass after a kexec finds the first pass's state: a file
/// the first pass appended to the initramfs it loaded (its rootfs path).
pub const KEXEC_STATE: &str = "/rootstock-kexec-state";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BootState {
    /// What was asked for (`ostree=...`, `rootstock.deployment=...`).
    pub requested: String,
    /// `$stateroot/$csum.$serial` of the deployment laid out.
    pub selected: String,
    /// Its index in ostree's order at boot.
    pub index: usize,
    /// default, manual or fallback.
    pub reason: String,
    /// The init that was found in it.
    pub init: String,
    /// Its boot-counting state after this attempt.
    pub counting: String,
    /// Candidates passed over: "what: why".
    pub skipped: Vec<String>,
}

impl BootState {
    pub fn render(&self) -> String {
        let mut s = format!(
            "requested={}\nselected={}\nindex={}\nreason={}\ninit={}\ncounting={}\n",
            one_line(&self.requested),
            self.selected,
            self.index,
            self.reason,
            one_line(&self.init),
            self.counting
        );
        for k in &self.skipped {
            s.push_str(&format!("skipped={}\n", one_line(k)));
        }
        s
    }

    pub fn parse(text: &str) -> BootState {
        let mut st = BootState::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            let v = v.to_string();
            match k {
                "requested" => st.requested = v,
                "selected" => st.selected = v,
                "index" => st.index = v.parse().unwrap_or(0),
                "reason" => st.reason = v,
                "init" => st.init = v,
                "counting" => st.counting = v,
                "skipped" => st.skipped.push(v),
                _ => {}
            }
        }
        st
    }
}

/// The first pass's state after a kexec: read from `path` only when the
/// command line says this is the second pass (`rootstock.kexeced=`). Absent
/// when the fallback's initramfs was loaded without it (no initramfs, or an
/// older rootstock): then the state names this pass's request only.
pub fn read_carried(args: &KernelArgs, path: &Path) -> Option<BootState> {
    args.kexeced.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(text) => Some(BootState::parse(&text)),
        Err(e) => {
            log::warn!("after kexec: {}: {e}: the first pass's request is not known", path.display());
            None
        }
    }
}

/// Keep a value on its line: newlines would start a new key.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let st = BootState {
            requested: "ostree=/ostree/boot.1/os/x/0".into(),
            selected: "os/abc.0".into(),
            index: 1,
            reason: "fallback".into(),
            init: "/sbin/init".into(),
            counting: "never counted".into(),
            skipped: vec!["os/def.0: no init\nforged=1".into(), "b: c".into()],
        };
        let text = st.render();
        assert_eq!(text.lines().count(), 8);
        let back = BootState::parse(&text);
        assert_eq!(back.skipped[0], "os/def.0: no init forged=1");
        assert_eq!(back.reason, "fallback");
        assert_eq!(back.index, 1);
    }

    #[test]
    fn the_carried_state_is_read_only_after_a_kexec() {
        let t = crate::testutil::TempDir::new();
        let file = t.path().join("rootstock-kexec-state");
        std::fs::write(
            &file,
            "requested=ostree=/ostree/boot.1/os/a/0\nreason=fallback\nskipped=os/a.0: no init\n",
        )
        .unwrap();
        let args = |c: &str| KernelArgs::parse(c).unwrap();
        assert_eq!(read_carried(&args("ostree=/x"), &file), None);
        let got = read_carried(&args("ostree=/x rootstock.kexeced=fallback"), &file).unwrap();
        assert_eq!(got.requested, "ostree=/ostree/boot.1/os/a/0");
        assert_eq!(got.skipped, ["os/a.0: no init"]);
        assert_eq!(read_carried(&args("rootstock.kexeced=fallback"), &t.path().join("absent")), None);
    }
}
