//! Which deployment to boot: the requested one, then the others in ostree's
//! order, skipping those that cannot boot. Decided in memory.

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
    if let Some(r) = requested {
        list.push(r);
    }
    if args.fallback == Fallback::Auto {
        for d in all {
            if !list.iter().any(|(c, _)| c.stateroot == d.stateroot && c.id() == d.id()) {
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
}
