//! Which deployment to boot: the requested one, then the others in ostree's
//! order, skipping those that cannot boot. Decided in memory.

use std::collections::HashSet;

use crate::cmdline::{DeploymentChoice, Fallback, KernelArgs};
use crate::layout::{Deployment, Deployments, LayoutError};
pub use crate::state::Reason;

/// What was asked for, in words for logs and the state file.
pub fn describe_request(args: &KernelArgs) -> String {
    match (&args.deployment, &args.ostree) {
        (Some(DeploymentChoice::Index(n)), _) => format!("rootstock.deployment={n}"),
        (Some(DeploymentChoice::Id(id)), _) => format!("rootstock.deployment={id}"),
        (None, Some(o)) => format!("ostree={o}"),
        (None, None) => "default deployment".into(),
    }
}

/// A request that matched no deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmatched {
    /// `rootstock.deployment=N` past the end of the list.
    #[error("{request}: there are only {count} deployments")]
    NoSuchIndex { request: String, count: usize },
    /// `rootstock.deployment=$csum.$serial` that no entry names.
    #[error("{request}: no boot loader entry names it")]
    NoEntry { request: String },
    /// `ostree=` did not resolve to a deployment (the error names it).
    #[error(transparent)]
    Ostree(LayoutError),
}

/// The candidates in the order they are tried, with the requested one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    pub list: Vec<(Deployment, Reason)>,
    /// Requests that matched nothing bootable.
    pub skipped: Vec<Unmatched>,
}

/// Order the candidates. `from_ostree_arg` is the deployment `ostree=`
/// resolved to (`Err` with the reason when it did not).
pub fn candidates(
    args: &KernelArgs,
    deployments: &Deployments,
    from_ostree_arg: Option<Result<Deployment, LayoutError>>,
) -> Candidates {
    let all = &deployments.list;
    let mut skipped = Vec::new();
    let requested: Option<(Deployment, Reason)> = match &args.deployment {
        Some(DeploymentChoice::Index(n)) => match all.get(*n) {
            Some(d) => Some((d.clone(), Reason::Manual)),
            None => {
                skipped.push(Unmatched::NoSuchIndex { request: describe_request(args), count: all.len() });
                None
            }
        },
        Some(DeploymentChoice::Id(id)) => match all.iter().find(|d| &d.id() == id) {
            Some(d) => Some((d.clone(), Reason::Manual)),
            None => {
                skipped.push(Unmatched::NoEntry { request: describe_request(args) });
                None
            }
        },
        None => match from_ostree_arg {
            Some(Ok(d)) => {
                // Prefer the entry's richer view of the same deployment.
                let same = all.iter().find(|e| e.stateroot == d.stateroot && e.id() == d.id());
                Some((same.cloned().unwrap_or(d), Reason::Default))
            }
            Some(Err(why)) => {
                skipped.push(Unmatched::Ostree(why));
                None
            }
            None => all.first().map(|d| (d.clone(), Reason::Default)),
        },
    };
    let mut list: Vec<(Deployment, Reason)> = Vec::new();
    // Each deployment once (two entries may name the same one): a set, so
    // that a thousand deployments cost a thousand look-ups, not a million.
    let key = |d: &Deployment| (d.stateroot.clone(), d.csum.clone(), d.serial);
    let mut seen = HashSet::new();
    if let Some(r) = requested {
        seen.insert(key(&r.0));
        list.push(r);
    }
    if args.fallback == Fallback::Auto {
        for d in all {
            if seen.insert(key(d)) {
                list.push((d.clone(), Reason::Fallback));
            }
        }
    }
    Candidates { list, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(index: usize, csum: char) -> Deployment {
        Deployment {
            index,
            stateroot: "os".into(),
            csum: csum.to_string().repeat(64),
            serial: 0,
            bootcsum: "b".into(),
            bootserial: 0,
            ostree_arg: format!("/ostree/boot.1/os/b/{index}"),
            entry: format!("ostree-{index}.conf"),
            version: format!("{}", 10 - index),
            options: String::new(),
            linux: None,
            initrd: None,
        }
    }

    fn stale() -> LayoutError {
        LayoutError::BadOstreeArg { arg: "x".into() }
    }

    fn ds() -> Deployments {
        Deployments { list: vec![dep(0, 'a'), dep(1, 'b'), dep(2, 'c')], problems: vec![] }
    }

    fn order(
        args: &str,
        from_ostree: Option<Result<Deployment, LayoutError>>,
    ) -> (Vec<(usize, Reason)>, usize) {
        let a = KernelArgs::parse(args).unwrap();
        let c = candidates(&a, &ds(), from_ostree);
        (c.list.iter().map(|(d, r)| (d.index, *r)).collect(), c.skipped.len())
    }

    #[test]
    fn candidate_order() {
        use Reason::*;
        let by_id = format!("rootstock.deployment={}.0", "c".repeat(64));
        type Case<'a> = (&'a str, Option<Result<Deployment, LayoutError>>, Vec<(usize, Reason)>, usize);
        let cases: Vec<Case> = vec![
            ("", None, vec![(0, Default), (1, Fallback), (2, Fallback)], 0),
            ("ostree=x", Some(Ok(dep(1, 'b'))), vec![(1, Default), (0, Fallback), (2, Fallback)], 0),
            ("ostree=x", Some(Err(stale())), vec![(0, Fallback), (1, Fallback), (2, Fallback)], 1),
            (
                "ostree=x rootstock.deployment=2",
                Some(Ok(dep(0, 'a'))),
                vec![(2, Manual), (0, Fallback), (1, Fallback)],
                0,
            ),
            ("rootstock.deployment=rollback", None, vec![(1, Manual), (0, Fallback), (2, Fallback)], 0),
            ("rootstock.deployment=7", None, vec![(0, Fallback), (1, Fallback), (2, Fallback)], 1),
            (&by_id, None, vec![(2, Manual), (0, Fallback), (1, Fallback)], 0),
            ("ostree=x rootstock.fallback=off", Some(Ok(dep(1, 'b'))), vec![(1, Default)], 0),
            ("ostree=x rootstock.fallback=off", Some(Err(stale())), vec![], 1),
            ("rootstock.fallback=off rootstock.deployment=9", None, vec![], 1),
            ("rootstock.fallback=off", None, vec![(0, Default)], 0),
        ];
        for (args, from, want, want_skipped) in cases {
            assert_eq!(order(args, from.clone()), (want, want_skipped), "{args} {from:?}");
        }
    }

    #[test]
    fn ostree_arg_outside_the_entries_is_still_bootable() {
        // /boot/loader unreadable: the deployment ostree= names is the only candidate.
        let a = KernelArgs::parse("ostree=x").unwrap();
        let c = candidates(&a, &Deployments::default(), Some(Ok(dep(5, 'z'))));
        assert_eq!(c.list.len(), 1);
        assert_eq!(c.list[0].0.csum, "z".repeat(64));
    }

    #[test]
    fn many_deployments_each_once_in_order() {
        // 3000 entries naming 1000 deployments of one commit (serials), the
        // requested one in the middle: each once, ostree's order kept. (The
        // check against every earlier candidate made this quadratic.)
        let mut list = Vec::new();
        for i in 0..3000 {
            let mut d = dep(0, 'a');
            (d.index, d.serial) = (i, (i % 1000) as u32);
            list.push(d);
        }
        let all = Deployments { list, problems: vec![] };
        let mut wanted = dep(0, 'a');
        wanted.serial = 500;
        let a = KernelArgs::parse("ostree=x").unwrap();
        let c = candidates(&a, &all, Some(Ok(wanted)));
        let serials: Vec<u32> = c.list.iter().map(|(d, _)| d.serial).collect();
        let want: Vec<u32> = std::iter::once(500).chain((0..1000).filter(|&s| s != 500)).collect();
        assert_eq!(serials, want);
        assert_eq!(c.list[0].1, Reason::Default);
        assert_eq!(c.list[0].0.index, 500, "the entry's view of the requested deployment");
    }
}
