//! Text that comes from disk, made safe to print.

/// A value on one line: every control character (a newline that would
/// start a forged line, an escape sequence for the terminal that shows
/// `status`) is written as `\xNN`, and `\` as `\\`.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_and_backslashes_are_escaped() {
        assert_eq!(one_line("a\\b"), "a\\\\b");
        assert_eq!(one_line("a\nb\u{1b}[2J"), "a\\x0ab\\x1b[2J");
        assert_eq!(one_line("plain ünïcode"), "plain ünïcode");
    }
}
