//! Modalias glob matching as modprobe does it (fnmatch(3) without flags).

/// Does the modalias (or module name) `s` match the glob `pattern` of an
/// `alias=`? fnmatch(3) without flags, as modprobe uses it: `*` any run of
/// characters (`/` included), `?` one character, `[...]` a set with ranges
/// (`a-z`), negation (`!` or `^`), classes (`[:digit:]`) and a leading `]`
/// taken literally; `\` quotes the next character. A `[` without its `]` is
/// a literal `[`.
pub fn alias_matches(pattern: &str, s: &str) -> bool {
    // The part before the first special character must match as it is:
    // most patterns start with their bus (`pci:v00001AF4d`, `virtio:d`),
    // so most pairs are told apart here, without the copies below (PID 1
    // matches every device's modalias against every alias of its modules).
    let literal = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    if !s.starts_with(&pattern[..literal]) {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        if let Some(&c) = p.get(pi) {
            let step = match c {
                '*' => {
                    resume = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                '?' => Some(1),
                '[' => match bracket(&p, pi, t[ti]) {
                    Some((true, len)) => Some(len),
                    Some((false, _)) => None,
                    None => (t[ti] == '[').then_some(1),
                },
                '\\' if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(2),
                c => (c == t[ti]).then_some(1),
            };
            if let Some(len) = step {
                pi += len;
                ti += 1;
                continue;
            }
        }
        // A mismatch: let the last `*` take one more character.
        match resume {
            Some((after_star, from)) => {
                pi = after_star;
                ti = from + 1;
                resume = Some((after_star, from + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Match `c` against the bracket expression starting at `p[start] == '['`.
/// Returns whether it matched and the expression's length, or None when the
/// `[` has no closing `]` (then it is an ordinary character).
fn bracket(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let item = *p.get(i)?;
        if item == ']' && !first {
            return Some((matched != negate, i + 1 - start));
        }
        first = false;
        if item == '[' && p.get(i + 1) == Some(&':') {
            // A class such as [:digit:].
            let rest: String = p[i + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                let class = &rest[..end];
                matched |= class_matches(class, c);
                i += 2 + class.chars().count() + 2;
                continue;
            }
        }
        let (lo, next) = if item == '\\' { (*p.get(i + 1)?, i + 2) } else { (item, i + 1) };
        if p.get(next) == Some(&'-') && p.get(next + 1).is_some_and(|&h| h != ']') {
            let (hi, after) =
                if p[next + 1] == '\\' { (*p.get(next + 2)?, next + 3) } else { (p[next + 1], next + 2) };
            matched |= lo <= c && c <= hi;
            i = after;
        } else {
            matched |= lo == c;
            i = next;
        }
    }
}

fn class_matches(class: &str, c: char) -> bool {
    match class {
        "alnum" => c.is_ascii_alphanumeric(),
        "alpha" => c.is_ascii_alphabetic(),
        "blank" => c == ' ' || c == '\t',
        "cntrl" => c.is_ascii_control(),
        "digit" => c.is_ascii_digit(),
        "graph" => c.is_ascii_graphic(),
        "lower" => c.is_ascii_lowercase(),
        "print" => c.is_ascii_graphic() || c == ' ',
        "punct" => c.is_ascii_punctuation(),
        "space" => c.is_ascii_whitespace() || c == '\x0b',
        "upper" => c.is_ascii_uppercase(),
        "xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("virtio:d00000002v*", "virtio:d00000002v00001AF4", true),
            ("virtio:d00000002v*", "virtio:d00000008v00001AF4", false),
            ("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", true),
            ("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001001sv00001AF4sd00000002bc01sc00i00", false),
            ("pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", true),
            ("pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc06i01", false),
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("**a**", "bab", true),
            ("a*b*c", "aXXbYYbZc", true),
            ("a*b*c", "aXXbYYbZ", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("?", "", false),
            ("d[0-2]*", "d1x", true),
            ("d[0-2]*", "d3x", false),
            ("d3[0-9A-E]*", "d3Cx", true),
            ("d3[0-9A-E]*", "d3Fx", false),
            ("[!a]", "b", true),
            ("[!a]", "a", false),
            ("[^a-c]", "d", true),
            ("[^a-c]", "b", false),
            ("[]]", "]", true),
            ("[!]]", "]", false),
            ("[a-]", "-", true),
            ("[[:digit:]]x", "7x", true),
            ("[[:digit:]]x", "ax", false),
            ("[[:xdigit:][:upper:]]", "Z", true),
            ("a[", "a[", true),
            ("a[b", "a[b", true),
            ("a[b", "ab", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[\\]]", "]", true),
            ("a\\", "a\\", true),
            ("dmi:*:[bs]vnD[Ee][Ll][Ll]*:*", "dmi:bvnDell Inc.:bvr1.2:svnDELL:pn:", true),
            ("dmi:*:[bs]vnD[Ee][Ll][Ll]*:*", "dmi:bvnLENOVO:bvr1.2:svnLENOVO:", false),
            (
                "usb:v13FDp3940d0[0-2]*dc*dsc*dp*ic*isc*ip*in*",
                "usb:v13FDp3940d0150dc00dsc00dp00ic08isc06ip50in00",
                true,
            ),
            ("usb:v13FDp3940d0[0-2]*dc*", "usb:v13FDp3940d0350dc00", false),
            ("fs-ext4", "fs-ext4", true),
            ("fs-ext4", "fs-ext", false),
            ("é?", "éü", true),
        ];
        for (pattern, s, want) in cases {
            assert_eq!(alias_matches(pattern, s), *want, "alias_matches({pattern:?}, {s:?})");
        }
    }

    #[test]
    fn glob_matching_is_not_exponential() {
        let pattern = "*a".repeat(30) + "b";
        let s = "a".repeat(200);
        let t = std::time::Instant::now();
        assert!(!alias_matches(&pattern, &s));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
