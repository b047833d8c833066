//! `/run/rootstock/state`: what rootstock decided at boot, for userspace.
//!
//! Plain `key=value` lines (readable by shell scripts and systemd's
//! `EnvironmentFile=`); `skipped=` repeats, one per candidate passed over.

use std::path::Path;

use serde::{Serialize, Serializer};

use crate::counting::Count;
use crate::text::one_line;

pub use crate::reason::Reason;

/// A state file that is not one rootstock wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {text:?}: {problem}")]
pub struct StateError {
    pub line: usize,
    pub text: String,
    pub problem: &'static str,
}

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
    pub reason: Reason,
    /// The init that was found in it.
    pub init: String,
    /// Its boot-counting state after this attempt.
    #[serde(serialize_with = "as_text")]
    pub counting: Count,
    /// Candidates passed over: "what: why".
    pub skipped: Vec<String>,
    /// The boot loader's counted entry (systemd-boot's
    /// `LoaderBootCountPath`, a path on the ESP, with `/` for its `\\`) when the deployment laid
    /// out is the one that entry boots: `rootstock bless` renames it where
    /// systemd-bless-boot is absent. Absent when rootstock booted another
    /// deployment (then that entry must not be blessed by this boot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader_entry: Option<String>,
}

impl BootState {
    pub fn render(&self) -> String {
        let mut s = format!(
            "requested={}\nselected={}\nindex={}\nreason={}\ninit={}\ncounting={}\n",
            one_line(&self.requested),
            one_line(&self.selected),
            self.index,
            self.reason,
            one_line(&self.init),
            self.counting
        );
        for k in &self.skipped {
            s.push_str(&format!("skipped={}\n", one_line(k)));
        }
        if let Some(e) = &self.loader_entry {
            s.push_str(&format!("loader_entry={}\n", one_line(e)));
        }
        s
    }

    /// Read what [`BootState::render`] wrote. Unknown keys are ignored (a
    /// newer rootstock may add some); a known key with a value it would not
    /// have written is an error.
    pub fn parse(text: &str) -> Result<BootState, StateError> {
        let mut st = BootState::default();
        for (n, line) in text.lines().enumerate() {
            let bad = |problem| StateError { line: n + 1, text: line.to_string(), problem };
            let Some((k, v)) = line.split_once('=') else { continue };
            match k {
                "requested" => st.requested = v.to_string(),
                "selected" => st.selected = v.to_string(),
                "index" => st.index = v.parse().map_err(|_| bad("not an index"))?,
                "reason" => st.reason = v.parse().map_err(|_| bad("not default, manual or fallback"))?,
                "init" => st.init = v.to_string(),
                "counting" => st.counting = v.parse().map_err(|_| bad("not a boot-counting state"))?,
                "skipped" => st.skipped.push(v.to_string()),
                "loader_entry" => st.loader_entry = Some(v.to_string()),
                _ => {}
            }
        }
        Ok(st)
    }
}

/// The first pass's state after a kexec: read from `path` only when the
/// command line says this is the second pass (`rootstock.kexeced=`). Absent
/// when the fallback's initramfs was loaded without it (no initramfs, or an
/// older rootstock): then the state names this pass's request only.
pub fn read_carried(kexeced: Option<Reason>, path: &Path) -> Option<BootState> {
    kexeced?;
    let text = match crate::confine::read_text(path, crate::confine::SMALL_FILE_CAP) {
        Ok(text) => text,
        Err(e) => {
            // The error names the path.
            log::warn!("after kexec: {e}: the first pass's request is not known");
            return None;
        }
    };
    match BootState::parse(&text) {
        Ok(st) => Some(st),
        Err(e) => {
            log::warn!("after kexec: {}: {e}: the first pass's request is not known", path.display());
            None
        }
    }
}

fn as_text<S: Serializer>(c: &Count, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(c)
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
            reason: Reason::Fallback,
            init: "/sbin/init".into(),
            counting: Count::Never,
            skipped: vec!["os/def.0: no init\nforged=1".into(), "b: c".into()],
            loader_entry: Some("/loader/entries/ostree-1+2-1.conf".into()),
        };
        let text = st.render();
        assert_eq!(text.lines().count(), 9);
        let back = BootState::parse(&text).unwrap();
        assert_eq!(back.skipped[0], "os/def.0: no init\\x0aforged=1");
        assert_eq!(back.reason, Reason::Fallback);
        assert_eq!(back.index, 1);
        assert_eq!(back, BootState { skipped: back.skipped.clone(), ..st });
    }

    #[test]
    fn reasons_and_counts_read_back_as_written() {
        for r in [Reason::Default, Reason::Manual, Reason::Fallback] {
            assert_eq!(r.to_string().parse(), Ok(r));
        }
        let counts =
            [Count::Never, Count::Good, Count::Indeterminate { left: 2, done: 1 }, Count::Bad { done: 3 }];
        for c in counts {
            assert_eq!(c.to_string().parse(), Ok(c), "{c}");
        }
        assert_eq!("bad (x tries failed)".parse::<Count>(), Err(()));
        assert_eq!("Fallback".parse::<Reason>(), Err(()));
    }

    #[test]
    fn a_state_file_rootstock_did_not_write_is_refused() {
        for (text, line) in [("reason=forged\n", 1), ("selected=a\nindex=x\n", 2), ("counting=great\n", 1)] {
            assert_eq!(BootState::parse(text).unwrap_err().line, line, "{text:?}");
        }
        assert!(BootState::parse("future=1\nreason=manual\n").is_ok());
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
        assert_eq!(read_carried(None, &file), None);
        let got = read_carried(Some(Reason::Fallback), &file).unwrap();
        assert_eq!(got.requested, "ostree=/ostree/boot.1/os/a/0");
        assert_eq!(got.skipped, ["os/a.0: no init"]);
        assert_eq!(read_carried(Some(Reason::Fallback), &t.path().join("absent")), None);
    }

    #[test]
    fn a_name_with_a_newline_cannot_forge_a_line() {
        let st = BootState {
            requested: "x\nselected=evil/forged.0".into(),
            selected: "os\nselected=evil/forged.0\nreason=manual/abc.0".into(),
            init: "/sbin/init\u{1b}[2J".into(),
            ..BootState::default()
        };
        let text = st.render();
        assert_eq!(text.lines().filter(|l| l.starts_with("selected=")).count(), 1, "{text}");
        let back = BootState::parse(&text).unwrap();
        assert_eq!(back.selected, "os\\x0aselected=evil/forged.0\\x0areason=manual/abc.0");
        assert_eq!(back.reason, Reason::default());
        assert_eq!(back.init, "/sbin/init\\x1b[2J");
        assert_eq!(one_line("a\\b"), "a\\\\b");
    }
}
