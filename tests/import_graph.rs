//! No circles among a crate's files: for each crate of the workspace, the
//! graph of which file uses which (read from the source text) has no cycle.
//!
//! A file uses another when its code names that file's module or an item
//! defined there: `crate::kernel::Kernel`, `super::bytes::le32`,
//! `use crate::{util::io, Arch}`, `super::FsType` (defined in the parent
//! `mod.rs`), or a child module by name (`ext4::probe`, `use order::..`).
//! Names the crate root or a `mod.rs` re-exports (`pub use kernel::Kernel`,
//! so `crate::Kernel`) count as uses of the file that defines them; the
//! re-export itself is a use of that file too, so nothing below the crate
//! root may use an item defined in the root. Modules declared
//! `#[cfg(test)]` (inline `mod tests { .. }`, test-support files) are left
//! out: this is the graph of the compiled crate. Comments and string
//! literals are not code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module file: where it is, its parent and child module files.
struct Module {
    file: String,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    tokens: Vec<Token>,
    /// What its `use` items bring in: name → path (relative to this module).
    imports: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Token {
    text: String,
    line: usize,
    /// How many `#[cfg(test)]` inline modules enclose it (then it is not counted).
    in_test: bool,
    /// How many inline modules (`mod tests { .. }`) enclose it.
    inline_depth: usize,
}

/// `from` uses `to`: the first line that says so.
type Edges = BTreeMap<(usize, usize), (usize, String)>;

/// The crate whose root is `root` (a file name in `files`, which maps paths
/// relative to the source directory to their text): its module files and
/// which uses which.
struct Graph {
    modules: Vec<Module>,
    edges: Edges,
}

/// Blank out comments, string and char literals, keeping line breaks.
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let keep_lines = |s: &[char], out: &mut String| {
        for c in s {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = b[i..].iter().position(|&c| c == '\n').map_or(b.len(), |p| i + p);
            keep_lines(&b[i..end], &mut out);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j] == '/' && b.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == '*' && b.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            keep_lines(&b[i..j.min(b.len())], &mut out);
            i = j;
        } else if c == 'r' || (c == 'b' && next == Some('r')) || c == '"' || (c == 'b' && next == Some('"')) {
            // A raw string r#".."#, a string "..": only when not inside an identifier.
            let ident_before = i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_');
            let mut j = i + usize::from(c == 'b');
            let raw = b.get(j) == Some(&'r');
            if raw {
                j += 1;
            }
            let hashes = b[j..].iter().take_while(|&&c| c == '#').count();
            if ident_before || b.get(j + hashes) != Some(&'"') || (!raw && hashes > 0) {
                out.push(c);
                i += 1;
                continue;
            }
            j += hashes + 1;
            loop {
                match b.get(j) {
                    None => break,
                    Some('\\') if !raw => j += 2,
                    Some('"') if b[j + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes => {
                        j += 1 + hashes;
                        break;
                    }
                    _ => j += 1,
                }
            }
            let j = j.min(b.len());
            keep_lines(&b[i..j], &mut out);
            i = j;
        } else if c == '\'' {
            // 'x', '\n', '\u{..}' are chars; 'a (no closing quote) is a lifetime.
            let end = if next == Some('\\') {
                b[i + 2..].iter().position(|&c| c == '\'').map(|p| i + 2 + p + 1)
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    keep_lines(&b[i..end], &mut out);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Identifiers, `::` and single punctuation characters, with their line and
/// how many (and whether `#[cfg(test)]`) inline modules enclose them.
fn tokenize(src: &str) -> Vec<Token> {
    let code = strip(src);
    let mut raw: Vec<(String, usize)> = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_alphanumeric() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                raw.push((chars[start..i].iter().collect(), n + 1));
            } else if c == ':' && chars.get(i + 1) == Some(&':') {
                raw.push(("::".into(), n + 1));
                i += 2;
            } else {
                if !c.is_whitespace() {
                    raw.push((c.to_string(), n + 1));
                }
                i += 1;
            }
        }
    }
    // Inline modules: `mod NAME {` opens one; remember the brace depth it closes at.
    let mut open: Vec<(usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut tokens = Vec::with_capacity(raw.len());
    for (k, (text, line)) in raw.iter().enumerate() {
        let in_test = open.iter().any(|&(_, test)| test);
        tokens.push(Token { text: text.clone(), line: *line, in_test, inline_depth: open.len() });
        match text.as_str() {
            "{" => {
                depth += 1;
                if k >= 2 && raw[k - 2].0 == "mod" {
                    open.push((depth, cfg_test_before(&raw, k - 2)));
                }
            }
            "}" => {
                if open.last().is_some_and(|&(d, _)| d == depth) {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    tokens
}

/// Whether the item starting at `k` (after `pub`, `pub(crate)`) has a
/// `#[cfg(test)]` attribute.
fn cfg_test_before(raw: &[(String, usize)], mut k: usize) -> bool {
    let text = |i: usize| raw[i].0.as_str();
    // Skip a visibility: `pub`, `pub ( crate )`.
    if k >= 1 && text(k - 1) == "pub" {
        k -= 1;
    } else if k >= 4 && text(k - 1) == ")" && text(k - 4) == "pub" {
        k -= 4;
    }
    // Walk back over attributes `# [ .. ]`.
    while k >= 1 && text(k - 1) == "]" {
        let Some(open) = (0..k - 1).rev().find(|&i| text(i) == "[") else { return false };
        if open == 0 || text(open - 1) != "#" {
            return false;
        }
        let attr: Vec<&str> = (open + 1..k - 1).map(text).collect();
        if attr == ["cfg", "(", "test", ")"] {
            return true;
        }
        k = open - 1;
    }
    false
}

/// A path starting at token `i`: each flattened path of a use tree
/// (`a::{b, c::d as e}` → `a::b`, `a::c::d`) with the name it binds.
fn parse_path(t: &[Token], mut i: usize, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) -> usize {
    let mut segs = prefix.to_vec();
    while let Some(tok) = t.get(i) {
        if tok.text == "{" {
            i += 1;
            while t.get(i).is_some_and(|x| x.text != "}") {
                i = parse_path(t, i, &segs, out);
                if t.get(i).is_some_and(|x| x.text == ",") {
                    i += 1;
                }
            }
            return i + 1;
        }
        if tok.text == "*" {
            out.push((segs, "*".into()));
            return i + 1;
        }
        if !is_ident(&tok.text) {
            break;
        }
        segs.push(tok.text.clone());
        i += 1;
        if t.get(i).is_some_and(|x| x.text == "::") && t.get(i + 1).is_some_and(|x| x.text != "<") {
            i += 1;
            continue;
        }
        let mut name = segs.last().cloned().unwrap_or_default();
        if name == "self" && segs.len() > 1 {
            segs.pop();
            name = segs.last().cloned().unwrap_or_default();
        }
        if t.get(i).is_some_and(|x| x.text == "as") && t.get(i + 1).is_some() {
            name = t[i + 1].text.clone();
            i += 2;
        }
        out.push((segs, name));
        return i;
    }
    if segs.len() > prefix.len() {
        let name = segs.last().cloned().unwrap_or_default();
        out.push((segs, name));
    }
    i
}

fn is_ident(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// `mod NAME;` at a file's top level → NAME (unless `#[cfg(test)]`).
fn declared_children(t: &[Token]) -> Vec<String> {
    let raw: Vec<(String, usize)> = t.iter().map(|x| (x.text.clone(), x.line)).collect();
    (0..t.len().saturating_sub(2))
        .filter(|&k| t[k].text == "mod" && t[k].inline_depth == 0 && t[k + 2].text == ";")
        .filter(|&k| is_ident(&t[k + 1].text) && !cfg_test_before(&raw, k))
        .map(|k| t[k + 1].text.clone())
        .collect()
}

impl Graph {
    /// The module tree from `root` (`lib.rs`, `main.rs`) and its edges.
    fn build(files: &BTreeMap<String, String>, root: &str) -> Graph {
        let mut g = Graph { modules: Vec::new(), edges: BTreeMap::new() };
        g.add(files, root, None);
        for m in 0..g.modules.len() {
            g.modules[m].imports = imports(&g.modules[m].tokens);
        }
        for m in 0..g.modules.len() {
            g.find_uses(m);
        }
        g
    }

    fn add(&mut self, files: &BTreeMap<String, String>, file: &str, parent: Option<usize>) -> usize {
        let tokens = files.get(file).map(|s| tokenize(s)).unwrap_or_default();
        let id = self.modules.len();
        let children = declared_children(&tokens);
        self.modules.push(Module {
            file: file.into(),
            parent,
            children: BTreeMap::new(),
            tokens,
            imports: BTreeMap::new(),
        });
        // Children of lib.rs, main.rs and mod.rs sit beside it; of x.rs, in x/.
        let (dir, stem) = file.rsplit_once('/').unwrap_or(("", file));
        let base = match stem {
            "lib.rs" | "main.rs" | "mod.rs" => dir.to_string(),
            _ => format!("{dir}/{}", stem.trim_end_matches(".rs")),
        };
        for child in children {
            let join = |name: &str| if base.is_empty() { name.to_string() } else { format!("{base}/{name}") };
            let flat = join(&format!("{child}.rs"));
            let nested = join(&format!("{child}/mod.rs"));
            let path = if files.contains_key(&flat) { flat } else { nested };
            let c = self.add(files, &path, Some(id));
            self.modules[id].children.insert(child, c);
        }
        id
    }

    fn root(&self) -> usize {
        0
    }

    /// The module file `segs` names from module `m`, following child
    /// modules and imports; `None` for another crate or `std`.
    fn resolve(&self, m: usize, segs: &[String], hops: usize) -> Option<usize> {
        let Some(first) = segs.first() else { return Some(m) };
        if hops > 16 {
            return Some(m);
        }
        if let Some(&c) = self.modules[m].children.get(first) {
            return self.resolve(c, &segs[1..], hops + 1);
        }
        if let Some(path) = self.modules[m].imports.get(first) {
            return self.start(m, path, 0, hops + 1);
        }
        Some(m)
    }

    /// Where a path written in module `m` (`inline` modules deep) leads.
    fn start(&self, m: usize, segs: &[String], inline: usize, hops: usize) -> Option<usize> {
        match segs.first().map(String::as_str) {
            Some("crate") => self.resolve(self.root(), &segs[1..], hops),
            Some("self") => self.resolve(m, &segs[1..], hops),
            Some("super") => {
                let supers = segs.iter().take_while(|s| *s == "super").count();
                let mut at = m;
                for _ in inline..supers {
                    at = self.modules[at].parent?;
                }
                self.resolve(at, &segs[supers..], hops)
            }
            Some(name) if self.modules[m].children.contains_key(name) => self.resolve(m, segs, hops),
            _ => None,
        }
    }

    /// Every path in module `m`'s code (outside `#[cfg(test)]` modules) and
    /// the files they lead to.
    fn find_uses(&mut self, m: usize) {
        let t = &self.modules[m].tokens;
        let mut found = Vec::new();
        let mut i = 0;
        while i < t.len() {
            let starts_path = is_ident(&t[i].text)
                && t.get(i + 1).is_some_and(|x| x.text == "::")
                && (i == 0 || t[i - 1].text != "::");
            if !starts_path || t[i].in_test {
                i += 1;
                continue;
            }
            let mut paths = Vec::new();
            let end = parse_path(t, i, &[], &mut paths);
            for (segs, _) in paths {
                found.push((segs, t[i].inline_depth, t[i].line));
            }
            i = end.max(i + 1);
        }
        for (segs, inline, line) in found {
            if let Some(to) = self.start(m, &segs, inline, 0)
                && to != m
            {
                self.edges.entry((m, to)).or_insert((line, segs.join("::")));
            }
        }
    }

    fn name(&self, m: usize) -> &str {
        &self.modules[m].file
    }

    /// Every elementary cycle, each once, starting at its smallest module.
    fn cycles(&self) -> Vec<Vec<usize>> {
        let mut next: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for &(a, b) in self.edges.keys() {
            next.entry(a).or_default().insert(b);
        }
        let mut cycles = Vec::new();
        for start in 0..self.modules.len() {
            let mut path = vec![start];
            self.walk(start, &next, &mut path, &mut cycles);
        }
        cycles
    }

    fn walk(
        &self,
        start: usize,
        next: &BTreeMap<usize, BTreeSet<usize>>,
        path: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        let Some(&at) = path.last() else { return };
        for &n in next.get(&at).into_iter().flatten() {
            if n == start {
                cycles.push(path.clone());
            } else if n > start && !path.contains(&n) && cycles.len() < 200 {
                path.push(n);
                self.walk(start, next, path, cycles);
                path.pop();
            }
        }
    }

    /// `a.rs -> b.rs (line 3: crate::b::X) -> a.rs (line 9: super::a)` per cycle.
    fn describe(&self, cycle: &[usize]) -> String {
        let mut s = self.name(cycle[0]).to_string();
        for (k, &from) in cycle.iter().enumerate() {
            let to = cycle[(k + 1) % cycle.len()];
            let (line, path) = &self.edges[&(from, to)];
            s += &format!(" -> {} ({}:{line} `{path}`)", self.name(to), self.name(from));
        }
        s
    }
}

/// `use` items at a module file's top level: the name each binds → its path.
fn imports(t: &[Token]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for i in 0..t.len() {
        if t[i].text == "use" && t[i].inline_depth == 0 && !t[i].in_test {
            let mut paths = Vec::new();
            parse_path(t, i + 1, &[], &mut paths);
            for (segs, name) in paths {
                if name != "*" {
                    out.insert(name, segs);
                }
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`, by path relative to it.
fn read_dir(dir: &Path, rel: &str, files: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let path = e.path();
        if path.is_dir() {
            read_dir(&path, &rel, files);
        } else if name.ends_with(".rs")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            files.insert(rel, text);
        }
    }
}

/// The cycles of each crate rooted in `files` (`lib.rs`, `main.rs`), described.
fn cycles_in(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    for root in ["lib.rs", "main.rs"] {
        if files.contains_key(root) {
            let g = Graph::build(files, root);
            found.extend(g.cycles().iter().map(|c| g.describe(c)));
        }
    }
    found
}

/// Fail, listing each cycle, if the crate in `src` (relative to the
/// workspace root) has any.
fn assert_no_cycles(src: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let mut files = BTreeMap::new();
    read_dir(&dir, "", &mut files);
    assert!(
        files.contains_key("lib.rs") || files.contains_key("main.rs"),
        "no crate root in {}",
        dir.display()
    );
    let cycles = cycles_in(&files);
    assert!(cycles.is_empty(), "{src}: {} import cycle(s):\n{}", cycles.len(), cycles.join("\n"));
}

#[test]
fn core_has_no_import_cycle() {
    assert_no_cycles("core/src");
}

#[test]
fn sys_has_no_import_cycle() {
    assert_no_cycles("sys/src");
}

#[test]
fn boot_has_no_import_cycle() {
    assert_no_cycles("boot/src");
}

#[test]
fn host_tool_has_no_import_cycle() {
    assert_no_cycles("src");
}

#[test]
fn qemu_tests_has_no_import_cycle() {
    assert_no_cycles("qemu-tests/src");
}

fn crate_of(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
}

#[test]
fn the_checker_finds_cycles_through_every_way_of_naming_a_file() {
    // crate::X::Y, use crate::{..}, a re-export from the root, super:: from
    // a nested module, a child named from its mod.rs.
    let files = crate_of(&[
        ("lib.rs", "mod a;\nmod b;\nmod dir;\npub use b::Thing;\n"),
        ("a.rs", "use crate::{dir::{leaf::g}};\npub fn f() {}\n"),
        ("b.rs", "// crate::a::f in a comment\nfn g() { let _ = \"crate::a\"; crate::a::f(); }\n"),
        ("dir/mod.rs", "mod leaf;\npub struct Shared;\nfn h() { leaf::g() }\n"),
        ("dir/leaf.rs", "use super::Shared;\npub fn g() { crate::Thing::new(); }\n"),
    ]);
    let cycles = cycles_in(&files);
    assert_eq!(
        cycles.iter().map(|c| c.split(" (").next().unwrap_or_default()).collect::<Vec<_>>(),
        ["a.rs -> dir/leaf.rs", "dir/mod.rs -> dir/leaf.rs"],
        "{cycles:#?}"
    );
    // (a -> leaf -> b -> a, and mod.rs <-> leaf.rs.)
    assert!(cycles.iter().any(|c| c.contains("b.rs (dir/leaf.rs:2 `crate::Thing::new`)")), "{cycles:#?}");
}

#[test]
fn test_modules_comments_strings_and_other_crates_are_not_uses() {
    let files = crate_of(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
        (
            "a.rs",
            "use std::io;\nuse rootstock_core::b;\n// crate::b\npub fn f() -> char { let _ = \"crate::b\"; '{' }\n",
        ),
        ("b.rs", "/* crate::a */ fn g() { let _ = r#\"super::c\"#; crate::a::f(); crate::c::k(); }\n"),
        ("c.rs", "pub fn k() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::b::g;\n}\n"),
    ]);
    assert_eq!(cycles_in(&files), Vec::<String>::new());
    // The same use outside the test module is one.
    let mut with_use = files.clone();
    with_use.insert("c.rs".into(), "pub fn k() { crate::b::g() }\n".into());
    assert_eq!(cycles_in(&with_use).len(), 1, "{:#?}", cycles_in(&with_use));
}
