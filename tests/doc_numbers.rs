//! The documentation (README.md and docs/*.md) quotes numbers from the files
//! that hold them, and its links resolve.
//!
//! A block is a paragraph, list or table: the lines between two blank lines.
//! A block that quotes numbers names their source with a marker:
//!
//! - `<!-- from PATH -->`: every number in the block appears in PATH (a
//!   `benches/*.md` file a benchmark writes, a test, the Makefile; path from
//!   the repository's root; thousands separators are ignored). Several
//!   markers in one block: each number is in one of their files.
//! - `<!-- rows PATH -->`: every number in the block is the number of table
//!   rows (not counting headers) in PATH.
//!
//! A measured number outside such a block fails the test: one with a
//! thousands separator (`1,719,964`), a ratio (`1.11×`), or a number of
//! `ms`, `s`, `KiB`, `MiB` or `bytes`. Numbers in fenced code are not read.
//! A number glued to a word (`x86_64`, `ext4`, `arm64`) is not a number.
//!
//! Every relative link `[text](target)` must name an existing file, and a
//! `#anchor` a heading of that file (GitHub's rule for anchors).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and docs/*.md, relative to the repository.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| PathBuf::from("docs").join(e.expect("docs/ entry").file_name()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// One line of a document: its number (from 1), its text, whether it is in
/// fenced code (the fences included).
struct Line<'a> {
    no: usize,
    text: &'a str,
    code: bool,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut in_code = false;
    text.lines()
        .enumerate()
        .map(|(i, text)| {
            let fence = text.trim_start().starts_with("```");
            let code = in_code || fence;
            if fence {
                in_code = !in_code;
            }
            Line { no: i + 1, text, code }
        })
        .collect()
}

/// The blocks of a document: runs of lines between blank lines.
fn blocks<'a>(lines: &'a [Line<'a>]) -> Vec<&'a [Line<'a>]> {
    lines.split(|l| !l.code && l.text.trim().is_empty()).filter(|b| !b.is_empty()).collect()
}

/// The HTML comments of a line, and the line without them.
fn comments(text: &str) -> (Vec<&str>, String) {
    let (mut found, mut rest, mut s) = (Vec::new(), String::new(), text);
    while let Some(start) = s.find("<!--") {
        rest.push_str(&s[..start]);
        match s[start..].find("-->") {
            Some(end) => {
                found.push(s[start + 4..start + end].trim());
                s = &s[start + end + 3..];
            }
            None => {
                s = "";
            }
        }
    }
    rest.push_str(s);
    (found, rest)
}

/// A number as written (`1,719,964`), and what follows it on the line.
#[derive(Debug)]
struct Number<'a> {
    written: &'a str,
    after: &'a str,
}

impl Number<'_> {
    /// The number without thousands separators, as it is compared.
    fn value(&self) -> String {
        self.written.replace(',', "")
    }

    /// A measurement: a thousands separator, a ratio, or a unit of time or size.
    fn is_measured(&self) -> bool {
        let grouped =
            self.written.split(',').skip(1).any(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
        let after = self.after.strip_prefix(' ').unwrap_or(self.after);
        let unit = ["×", "ms", "s", "KiB", "MiB", "bytes"].iter().any(|u| {
            after.strip_prefix(u).is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
        });
        grouped || unit
    }
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The numbers of a text: digits with `.` and `,` inside, not glued to a word.
fn numbers(text: &str) -> Vec<Number<'_>> {
    let mut found = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if c.is_ascii_digit() && !prev.is_some_and(word_char) {
            let mut end = i + 1;
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_digit() || d == '.' || d == ',' {
                    end = j + 1;
                    chars.next();
                } else {
                    break;
                }
            }
            let written = text[i..end].trim_end_matches(['.', ',']);
            let rest = &text[i + written.len()..];
            prev = text[..end].chars().last();
            if rest.starts_with(word_char) {
                // `6th`, `1c2d…`: part of a word; skip the word.
                while chars.peek().is_some_and(|&(_, d)| word_char(d)) {
                    prev = chars.next().map(|(_, d)| d);
                }
                continue;
            }
            found.push(Number { written, after: rest });
        } else {
            prev = Some(c);
        }
    }
    found
}

/// Every number of a source file, without thousands separators.
fn source_numbers(text: &str) -> BTreeSet<String> {
    numbers(text).iter().map(Number::value).collect()
}

/// The table rows of a Markdown file, headers and separators not counted.
fn table_rows(text: &str) -> usize {
    let lines = lines(text);
    let is_row = |l: &Line| !l.code && l.text.trim_start().starts_with('|');
    let is_separator = |l: &Line| is_row(l) && l.text.chars().all(|c| "|-: ".contains(c));
    (0..lines.len())
        .filter(|&i| {
            is_row(&lines[i]) && !is_separator(&lines[i]) && !lines.get(i + 1).is_some_and(is_separator)
        })
        .count()
}

/// What a source marker names.
enum Source {
    /// Every number in the block appears in one of these files.
    From(Vec<(String, BTreeSet<String>)>),
    /// Every number in the block is this count of table rows.
    Rows(String, usize),
}

/// Checks one document's numbers; `load` reads a file of the repository.
/// Returns one message per problem.
fn check_numbers(name: &str, text: &str, load: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let lines = lines(text);
    for block in blocks(&lines) {
        let mut from = Vec::new();
        let mut rows = None;
        for line in block.iter().filter(|l| !l.code) {
            for c in comments(line.text).0 {
                let (kind, path) = c.split_once(' ').unwrap_or((c, ""));
                let path = path.trim();
                if kind != "from" && kind != "rows" {
                    continue;
                }
                let Some(source) = load(path) else {
                    problems.push(format!("{name}:{}: marker `{c}`: no such file {path}", line.no));
                    continue;
                };
                if kind == "from" {
                    from.push((path.to_string(), source_numbers(&source)));
                } else {
                    rows = Some((path.to_string(), table_rows(&source)));
                }
            }
        }
        let source = match (rows, from.is_empty()) {
            (Some((path, n)), _) => Some(Source::Rows(path, n)),
            (None, false) => Some(Source::From(from)),
            (None, true) => None,
        };
        for line in block.iter().filter(|l| !l.code) {
            let text = comments(line.text).1;
            for n in numbers(&text) {
                let at = format!("{name}:{}", line.no);
                match &source {
                    Some(Source::From(files)) if !files.iter().any(|(_, nums)| nums.contains(&n.value())) => {
                        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
                        problems.push(format!("{at}: {} is not in {}", n.written, paths.join(" or ")));
                    }
                    Some(Source::Rows(path, count)) if n.value() != count.to_string() => {
                        problems.push(format!("{at}: {} is not the {count} table rows of {path}", n.written));
                    }
                    Some(_) => {}
                    None if n.is_measured() => problems.push(format!(
                        "{at}: {}{} is a measured number without a source: \
                         mark its block with <!-- from FILE --> (see tests/doc_numbers.rs)",
                        n.written,
                        n.after.chars().take(6).collect::<String>()
                    )),
                    None => {}
                }
            }
        }
    }
    problems
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    lines(text)
        .iter()
        .filter(|l| !l.code && l.text.starts_with('#'))
        .map(|l| slug(l.text.trim_start_matches('#')))
        .collect()
}

/// The relative link targets of a line: `[text](target)`.
fn link_targets(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut s = text;
    while let Some(i) = s.find("](") {
        let rest = &s[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].trim();
        if !target.contains("://") && !target.starts_with("mailto:") {
            found.push(target);
        }
        s = &rest[end..];
    }
    found
}

fn check_links(name: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = name.parent().unwrap_or(Path::new(""));
    for line in lines(text).iter().filter(|l| !l.code) {
        for target in link_targets(line.text) {
            let at = format!("{}:{}", name.display(), line.no);
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() { name.to_path_buf() } else { dir.join(path) };
            let full = repo().join(&file);
            if !full.exists() {
                problems.push(format!("{at}: link to {target}: no such file {}", file.display()));
                continue;
            }
            if !anchor.is_empty()
                && full.extension().is_some_and(|x| x == "md")
                && !anchors(&read(&full)).contains(anchor)
            {
                problems.push(format!("{at}: link to {target}: {} has no heading #{anchor}", file.display()));
            }
        }
    }
    problems
}

fn load_from_repo(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    std::fs::read_to_string(repo().join(path)).ok()
}

#[test]
fn quoted_numbers_are_those_of_their_sources() {
    let mut problems = Vec::new();
    for file in doc_files() {
        let name = file.display().to_string();
        problems.extend(check_numbers(&name, &read(&repo().join(&file)), &load_from_repo));
    }
    assert!(problems.is_empty(), "the documentation's numbers drifted:\n{}", problems.join("\n"));
}

#[test]
fn relative_links_resolve() {
    let mut problems = Vec::new();
    for file in doc_files() {
        problems.extend(check_links(&file, &read(&repo().join(&file))));
    }
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

/// The checker itself: a drifted number, a wrong row count and an unsourced
/// measurement are each reported; words with digits are not numbers.
#[test]
fn the_checker_catches_drift() {
    let bench = "| QEMU set | 0.71 (0.71–0.72) | 1,719,964 |\nRatios: 1.11×.";
    let table = "| # | x |\n|---|---|\n| 1 | a |\n| 2 | b |\n";
    let load = |p: &str| match p {
        "benches/boot.md" => Some(bench.to_string()),
        "docs/bad-input.md" => Some(table.to_string()),
        _ => None,
    };
    let ok = "<!-- from benches/boot.md -->\nThe QEMU set: 0.71 s, 1,719,964 bytes, 1.11× on x86_64 and arm64.\n\n\
              <!-- rows docs/bad-input.md -->\nIt lists 2 kinds.\n\nA 5-minute read of ext4.\n";
    assert_eq!(check_numbers("ok.md", ok, &load), Vec::<String>::new());

    let drifted = ok.replace("1,719,964 bytes", "1,719,965 bytes").replace("lists 2", "lists 3");
    let problems = check_numbers("drift.md", &drifted, &load);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("1,719,965 is not in benches/boot.md"), "{problems:?}");
    assert!(problems[1].contains("3 is not the 2 table rows of docs/bad-input.md"), "{problems:?}");

    let unsourced =
        "The image is 1,719,964 bytes; the phase 0.71 s, 1.11× the other.\n\n```\n9,999 bytes\n```\n";
    let problems = check_numbers("unsourced.md", unsourced, &load);
    assert_eq!(problems.len(), 3, "{problems:?}");

    let missing = "<!-- from benches/nothing.md -->\n1 s\n";
    assert!(check_numbers("m.md", missing, &load)[0].contains("no such file benches/nothing.md"));
}

#[test]
fn numbers_glued_to_words_are_not_numbers() {
    let got: Vec<String> =
        numbers("x86_64 ext4 arm64 6.1.0-57-amd64 1c2d 2026-11-30, 0.69–0.70 s and 1,000.")
            .iter()
            .map(|n| n.value())
            .collect();
    assert_eq!(got, ["6.1.0", "57", "2026", "11", "30", "0.69", "0.70", "1000"]);
    assert_eq!(
        slug("Updates without a reboot: `prepare-soft-reboot`"),
        "updates-without-a-reboot-prepare-soft-reboot"
    );
    assert_eq!(table_rows("| # | x |\n|---|---|\n| 1 | a |\n\n```\n| 2 | b |\n```\n| 17a | c |\n"), 2);
}
