//! Load order: dependencies first, each module once.

use std::collections::{BTreeMap, VecDeque};

use super::error::IndexError;

/// A module's edges for ordering: hard dependencies (must be there; a cycle
/// is an error), and soft ones (already resolved to module names; loaded
/// first or afterwards when possible, never an error).
#[derive(Debug, Default)]
pub struct Edges {
    pub hard: Vec<String>,
    pub soft_pre: Vec<String>,
    pub soft_post: Vec<String>,
}

/// Order `roots` and everything they need, dependencies first, each module
/// once. Hard dependencies in their `depends=` order, then pre-softdeps;
/// post-softdeps are queued after the roots that pulled them in. Iterative,
/// so a long hostile chain cannot overflow the stack.
pub fn load_order<F, E>(roots: &[String], mut edges_of: F) -> Result<Vec<String>, E>
where
    F: FnMut(&str) -> Result<Edges, E>,
    E: From<IndexError>,
{
    #[derive(PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    let mut state: BTreeMap<String, State> = BTreeMap::new();
    let mut order = Vec::new();
    let mut queue: VecDeque<String> = roots.iter().cloned().collect();
    // (module, its children as (name, hard), next child)
    type Frame = (String, Vec<(String, bool)>, usize);
    let mut stack: Vec<Frame> = Vec::new();
    while let Some(root) = queue.pop_front() {
        if state.contains_key(&root) {
            continue;
        }
        let mut enter = |name: &str, state: &mut BTreeMap<String, State>, queue: &mut VecDeque<String>| {
            let e = edges_of(name)?;
            state.insert(name.to_string(), State::Visiting);
            queue.extend(e.soft_post);
            let children =
                e.hard.into_iter().map(|h| (h, true)).chain(e.soft_pre.into_iter().map(|s| (s, false)));
            Ok::<_, E>((name.to_string(), children.collect::<Vec<_>>(), 0))
        };
        stack.push(enter(&root, &mut state, &mut queue)?);
        while let Some((name, children, next)) = stack.last_mut() {
            let Some((child, hard)) = children.get(*next).cloned() else {
                state.insert(name.clone(), State::Done);
                order.push(name.clone());
                stack.pop();
                continue;
            };
            *next += 1;
            match state.get(&child) {
                Some(State::Done) => {}
                Some(State::Visiting) if hard => {
                    let from = stack.iter().position(|f| f.0 == child).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[from..].iter().map(|f| f.0.clone()).collect();
                    cycle.push(child);
                    return Err(IndexError::Cycle(cycle).into());
                }
                // A softdep back onto a module being loaded: drop that edge.
                Some(State::Visiting) => {}
                None => stack.push(enter(&child, &mut state, &mut queue)?),
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn edges_from(graph: &[(&str, &[&str], &[&str])]) -> impl FnMut(&str) -> Result<Edges, IndexError> {
        let graph: BTreeMap<String, (Vec<String>, Vec<String>)> = graph
            .iter()
            .map(|(n, h, s)| {
                (
                    n.to_string(),
                    (h.iter().map(|x| x.to_string()).collect(), s.iter().map(|x| x.to_string()).collect()),
                )
            })
            .collect();
        move |name| match graph.get(name) {
            Some((hard, soft)) => Ok(Edges { hard: hard.clone(), soft_pre: soft.clone(), soft_post: vec![] }),
            None => Err(IndexError::Line { line: 0, reason: format!("no module {name}") }),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn order_dependencies_first() {
        type Graph<'a> = &'a [(&'a str, &'a [&'a str], &'a [&'a str])];
        let diamond: Graph =
            &[("a", &["b", "c"], &[]), ("b", &["d"], &[]), ("c", &["d"], &[]), ("d", &[], &[])];
        let soft_cycle: Graph = &[("a", &["b"], &[]), ("b", &[], &["a"])];
        type Case<'a> = (Graph<'a>, &'a [&'a str], Result<&'a [&'a str], IndexError>);
        let cases: &[Case] = &[
            (diamond, &["a"], Ok(&["d", "b", "c", "a"])),
            (diamond, &["c", "a"], Ok(&["d", "c", "b", "a"])),
            (diamond, &["d", "d"], Ok(&["d"])),
            (&[("a", &[], &["s"]), ("s", &[], &[])], &["a"], Ok(&["s", "a"])),
            (soft_cycle, &["a"], Ok(&["b", "a"])),
            (&[("a", &["a"], &[])], &["a"], Err(IndexError::Cycle(strings(&["a", "a"])))),
            (
                &[("x", &["a"], &[]), ("a", &["b"], &[]), ("b", &["c"], &[]), ("c", &["a"], &[])],
                &["x"],
                Err(IndexError::Cycle(strings(&["a", "b", "c", "a"]))),
            ),
            (
                &[("a", &["zz"], &[])],
                &["a"],
                Err(IndexError::Line { line: 0, reason: "no module zz".into() }),
            ),
        ];
        for (graph, roots, want) in cases {
            let got = load_order(&strings(roots), edges_from(graph));
            let want = want.clone().map(strings);
            assert_eq!(got, want, "{graph:?} from {roots:?}");
        }
    }

    #[test]
    fn a_long_chain_does_not_overflow() {
        let n = 200_000;
        let got = load_order(&["m0".to_string()], |name| {
            let i: usize = name[1..].parse().unwrap();
            Ok::<_, IndexError>(Edges {
                hard: if i < n { vec![format!("m{}", i + 1)] } else { vec![] },
                ..Edges::default()
            })
        })
        .unwrap();
        assert_eq!(got.len(), n + 1);
        assert_eq!(got[0], format!("m{n}"));
    }
}
