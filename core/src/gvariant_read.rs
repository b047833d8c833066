//! Just enough of a GVariant *reader* to check an ostree commit's
//! signature: the commit's metadata (child 0 of `(a{sv}aya(say)sstayay)`),
//! lookups in an `a{sv}` dictionary, and the elements of an `aay`. The
//! bytes come from disk and are untrusted: every offset is checked against
//! the container it frames, a malformed input is an error (never a panic,
//! never a read out of bounds), and nothing is copied.
//!
//! The serialization (GVariant's, little-endian as ostree writes it): a
//! container of variable-size elements ends with one framing offset per
//! element (arrays) or per variable-size element but the last (tuples),
//! each the end of an element relative to the container's start, all of the
//! same width, the smallest of 1, 2, 4 or 8 bytes that can address the
//! container's whole size; a tuple's are stored last element first. An
//! element starts at its predecessor's end rounded up to its alignment.

/// What is wrong with the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed GVariant: {0}")]
pub struct Malformed(pub &'static str);

type Result<T> = std::result::Result<T, Malformed>;

/// The width of the framing offsets of a container of `len` bytes.
pub fn offset_size(len: usize) -> usize {
    match len as u64 {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

/// The little-endian offset of `size` bytes at `at`.
fn offset_at(b: &[u8], at: usize, size: usize) -> Result<usize> {
    let bytes =
        at.checked_add(size).and_then(|end| b.get(at..end)).ok_or(Malformed("truncated framing offset"))?;
    let mut le = [0u8; 8];
    le[..size].copy_from_slice(bytes);
    usize::try_from(u64::from_le_bytes(le)).map_err(|_| Malformed("framing offset out of range"))
}

fn align(n: usize, to: usize) -> Result<usize> {
    n.checked_next_multiple_of(to).ok_or(Malformed("framing offset out of range"))
}

/// The elements of an array of variable-size elements aligned to `alignment`
/// (1 for `aay`, 8 for `a{sv}`).
pub fn array(b: &[u8], alignment: usize) -> Result<Vec<&[u8]>> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    let size = offset_size(b.len());
    let last = b.len().checked_sub(size).ok_or(Malformed("array shorter than its framing offset"))?;
    let body_end = offset_at(b, last, size)?;
    let framing = b.len().checked_sub(body_end).ok_or(Malformed("array offset past its end"))?;
    if framing == 0 || !framing.is_multiple_of(size) {
        return Err(Malformed("array framing offsets do not fill its end"));
    }
    let mut out = Vec::with_capacity(framing / size);
    let mut start = 0;
    for at in (body_end..b.len()).step_by(size) {
        let end = offset_at(b, at, size)?;
        if end < start || end > body_end {
            return Err(Malformed("array element offset out of order or out of range"));
        }
        out.push(&b[start..end]);
        start = align(end, alignment)?;
    }
    Ok(out)
}

/// A `v`: a value and its type string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant<'a> {
    pub ty: &'a [u8],
    pub value: &'a [u8],
}

/// Split a serialized `v`: the value, a zero byte, the type string.
pub fn variant(b: &[u8]) -> Result<Variant<'_>> {
    let nul = b.iter().rposition(|&c| c == 0).ok_or(Malformed("variant without a type string"))?;
    let ty = &b[nul + 1..];
    if ty.is_empty() {
        return Err(Malformed("variant with an empty type string"));
    }
    Ok(Variant { ty, value: &b[..nul] })
}

/// One `{sv}` entry: its key (without the zero byte) and its variant.
fn entry(b: &[u8]) -> Result<(&[u8], Variant<'_>)> {
    let size = offset_size(b.len());
    let last =
        b.len().checked_sub(size).ok_or(Malformed("dictionary entry shorter than its framing offset"))?;
    let key_end = offset_at(b, last, size)?;
    let value_start = align(key_end, 8)?;
    if key_end == 0 || value_start > last {
        return Err(Malformed("dictionary key offset out of range"));
    }
    let key = &b[..key_end - 1];
    if b[key_end - 1] != 0 || key.contains(&0) {
        return Err(Malformed("dictionary key is not a string"));
    }
    Ok((key, variant(&b[value_start..last])?))
}

/// The value of `key` in the dictionary `a{sv}` `b`, `None` when it has
/// none. Every entry must be well formed; the first with the key wins.
pub fn lookup<'a>(b: &'a [u8], key: &str) -> Result<Option<Variant<'a>>> {
    let mut found = None;
    for e in array(b, 8)? {
        let (k, v) = entry(e)?;
        if found.is_none() && k == key.as_bytes() {
            found = Some(v);
        }
    }
    Ok(found)
}

/// The metadata `a{sv}` of a commit, `(a{sv}aya(say)sstayay)`: child 0,
/// framed by the last of the tuple's six framing offsets (of `a{sv}`, `ay`,
/// `a(say)`, `s`, `s` and the first `ay` of the tree's checksums), which
/// must all be in order and in range.
pub fn commit_metadata(b: &[u8]) -> Result<&[u8]> {
    const FRAMED: usize = 6;
    let size = offset_size(b.len());
    let framing =
        b.len().checked_sub(FRAMED * size).ok_or(Malformed("commit shorter than its framing offsets"))?;
    let mut previous = 0;
    // Stored last element first: the first element's end is the last offset.
    for i in (0..FRAMED).rev() {
        let end = offset_at(b, framing + i * size, size)?;
        if end < previous || end > framing {
            return Err(Malformed("commit offset out of order or out of range"));
        }
        previous = end;
    }
    let end = offset_at(b, framing + (FRAMED - 1) * size, size)?;
    Ok(&b[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gvariant::{Value, vardict};

    #[test]
    fn offset_sizes_follow_the_container_size() {
        assert_eq!(offset_size(0), 1);
        assert_eq!(offset_size(255), 1);
        assert_eq!(offset_size(256), 2);
        assert_eq!(offset_size(65535), 2);
        assert_eq!(offset_size(65536), 4);
    }

    #[test]
    fn reads_what_the_writer_writes() {
        let long = "x".repeat(300);
        let d =
            vardict(&[("a", Value::Bool(true)), ("long", Value::Str(&long)), ("pair", Value::U64Pair(1, 2))]);
        assert_eq!(lookup(&d, "a").unwrap(), Some(Variant { ty: b"b", value: &[1] }));
        let v = lookup(&d, "long").unwrap().unwrap();
        assert_eq!((v.ty, v.value.len()), (&b"s"[..], 301));
        let v = lookup(&d, "pair").unwrap().unwrap();
        assert_eq!(v.ty, b"(tt)");
        assert_eq!(v.value[0], 1);
        assert_eq!(lookup(&d, "missing").unwrap(), None);
        assert_eq!(lookup(&[], "a").unwrap(), None, "an empty dictionary");
    }

    /// `[[1, 2], [], [3]]` as `aay`: bodies 1 2 3, ends 2 2 3.
    #[test]
    fn arrays_of_byte_arrays() {
        let aay = [1, 2, 3, 2, 2, 3];
        assert_eq!(array(&aay, 1).unwrap(), vec![&[1u8, 2][..], &[][..], &[3][..]]);
        assert_eq!(array(&[], 1).unwrap(), Vec::<&[u8]>::new());
        // Decreasing offsets, an offset past the body, an end that is no offset.
        assert!(array(&[1, 2, 3, 2, 1, 3], 1).is_err());
        assert!(array(&[1, 2, 3, 2, 5, 3], 1).is_err());
        assert!(array(&[1, 2, 3, 9], 1).is_err());
        assert!(array(&[1, 2, 3, 4], 1).is_err(), "the last offset ends the body at the very end");
    }

    #[test]
    fn malformed_entries_and_variants() {
        // An entry whose key has no zero byte: key "ab" ending at 2, value "\0b".
        let e = [b'a', b'b', 0, 0, 0, 0, 0, 0, 1, 0, b'b', 2];
        assert!(entry(&e).is_err());
        let e = [b'a', 0, 0, 0, 0, 0, 0, 0, 1, 0, b'b', 2];
        assert_eq!(entry(&e).unwrap(), (&b"a"[..], Variant { ty: b"b", value: &[1] }));
        assert!(entry(&[0]).is_err(), "key end 0");
        assert!(entry(&[b'a', 0, 2]).is_err(), "no room for the value after the padding");
        assert!(variant(&[1, 2]).is_err(), "no type string");
        assert!(variant(&[1, 0]).is_err(), "an empty type string");
    }

    /// Every prefix and every one-byte change of a valid dictionary and
    /// commit is read without a panic.
    #[test]
    fn garbled_input_never_panics() {
        let long = "y".repeat(260);
        let d = vardict(&[("k", Value::Str("v")), ("l", Value::Str(&long)), ("p", Value::U64Pair(7, 8))]);
        let mut commit = d.clone();
        commit.extend_from_slice(&[0u8; 40]);
        let n = commit.len();
        // Six 2-byte offsets: the dictionary ends at d.len(), the rest at the end of the body.
        for end in [n, n, n, n, n, d.len()] {
            commit.extend_from_slice(&(end as u16).to_le_bytes());
        }
        assert_eq!(commit_metadata(&commit).unwrap(), &d[..]);
        for input in [&d, &commit] {
            for len in 0..input.len() {
                let _ = lookup(&input[..len], "p");
                let _ = commit_metadata(&input[..len]);
            }
            for i in 0..input.len() {
                for x in [0u8, 1, 0x7f, 0xff] {
                    let mut g = input.clone();
                    g[i] ^= x;
                    let _ = lookup(&g, "p");
                    if let Ok(m) = commit_metadata(&g) {
                        let _ = lookup(m, "l");
                    }
                    let _ = array(&g, 1);
                }
            }
        }
        // 8-byte offsets that do not fit in usize arithmetic.
        let huge = [0xffu8; 300];
        assert!(array(&huge, 8).is_err());
        assert!(commit_metadata(&huge).is_err());
    }
}
