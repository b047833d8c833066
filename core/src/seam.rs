//! The seam: every side effect rootstock has goes through [`System`], so
//! the decisions above it run unchanged against the kernel
//! (`rootstock_sys::Linux`), against a [`Recorder`] in tests and in
//! `--dry-run`, and with failures injected at any step.

use std::path::{Path, PathBuf};

use crate::errno::Errno;
use crate::plan::{Op, Purpose, Step};

/// Executes one operation. Implemented by [`Linux`] and by test recorders.
pub trait System {
    fn execute(&mut self, op: &Op) -> Result<(), Errno>;
    /// Load a kernel for a later `reboot(LINUX_REBOOT_CMD_KEXEC)`.
    fn kexec_load(&mut self, k: &KexecImage) -> Result<(), Errno>;
    /// Detach the mount at `target` and everything below it (`MNT_DETACH`).
    fn detach(&mut self, target: &Path) -> Result<(), Errno>;
}

/// A kernel, its initramfs and its command line, to kexec into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexecImage {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// The first pass's boot state, for the second pass: appended to the
    /// initramfs as `/rootstock-kexec-state` (see state::KEXEC_STATE).
    pub carry: Option<String>,
}

/// A step that failed: which step, on which path, with which errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub number: usize,
    pub step: Step,
    pub errno: Errno,
}

/// Run the steps in order. On a failure, undo the mounts made so far (detach
/// the staging tree, or the moved root) so the sysroot is as it was and
/// another deployment can be tried.
pub fn run_plan(sys: &mut dyn System, steps: &[Step]) -> Result<(), StepFailed> {
    let mut staged: Option<&Path> = None;
    let mut moved: Option<&Path> = None;
    for (i, step) in steps.iter().enumerate() {
        if let Err(errno) = sys.execute(&step.op) {
            // Undo is best effort: the error reported is the step's own.
            if let Some(target) = moved.or(staged)
                && let Err(e) = sys.detach(target)
            {
                log::warn!("could not detach {} after the failure: {e}", target.display());
            }
            return Err(StepFailed { number: i + 1, step: step.clone(), errno });
        }
        match (&step.purpose, &step.op) {
            (Purpose::BindDeployment, Op::Bind { target, .. }) => staged = Some(target),
            (Purpose::MoveToSysroot, Op::Move { target, .. }) => moved = Some(target),
            _ => {}
        }
    }
    Ok(())
}

pub mod fake {
    //! A recording [`System`] that can fail a chosen operation: the
    //! `--dry-run` executor and the tests' fake kernel.
    use super::*;

    #[derive(Default)]
    pub struct Recorder {
        pub ops: Vec<Op>,
        pub detached: Vec<PathBuf>,
        /// Fail the n-th operation (1-based) with this errno.
        pub fail_at: Option<(usize, Errno)>,
        pub kexec: Vec<KexecImage>,
    }

    impl System for Recorder {
        fn execute(&mut self, op: &Op) -> Result<(), Errno> {
            self.ops.push(op.clone());
            match self.fail_at {
                Some((n, errno)) if n == self.ops.len() => Err(errno),
                _ => Ok(()),
            }
        }
        fn detach(&mut self, target: &Path) -> Result<(), Errno> {
            self.detached.push(target.to_path_buf());
            Ok(())
        }
        fn kexec_load(&mut self, k: &KexecImage) -> Result<(), Errno> {
            self.kexec.push(k.clone());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Recorder;
    use super::*;
    use crate::plan::{Op, Purpose, Step};
    use std::path::PathBuf;

    fn steps() -> Vec<Step> {
        let s = |purpose, op| Step { purpose, op };
        vec![
            s(Purpose::MakeRootPrivate, Op::MakeRprivate { target: "/".into() }),
            s(Purpose::BindDeployment, Op::Bind { source: "/s/d".into(), target: "/s.tmp".into() }),
            s(Purpose::RemountUsrReadOnly, Op::RemountBindReadOnly { target: "/s.tmp/usr".into() }),
            s(Purpose::MoveToSysroot, Op::Move { source: "/s.tmp".into(), target: "/s".into() }),
            s(Purpose::WriteState, Op::WriteFile { path: "/run/x".into(), contents: "".into() }),
        ]
    }

    #[test]
    fn runs_every_step_in_order() {
        let mut r = Recorder::default();
        run_plan(&mut r, &steps()).unwrap();
        assert_eq!(r.ops, steps().into_iter().map(|s| s.op).collect::<Vec<_>>());
        assert!(r.detached.is_empty());
    }

    #[test]
    fn failure_names_step_and_undoes_mounts() {
        let cases: [(usize, &[&str]); 4] = [(1, &[]), (3, &["/s.tmp"]), (4, &["/s.tmp"]), (5, &["/s"])];
        for (n, want_detached) in cases {
            let mut r = Recorder { fail_at: Some((n, Errno::ROFS)), ..Default::default() };
            let err = run_plan(&mut r, &steps()).unwrap_err();
            assert_eq!(err.number, n);
            assert_eq!(err.errno, Errno::ROFS);
            assert_eq!(r.ops.len(), n, "stops at the failing step");
            let want: Vec<PathBuf> = want_detached.iter().map(PathBuf::from).collect();
            assert_eq!(r.detached, want, "fail at {n}");
        }
    }
}
