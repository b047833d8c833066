//! Just enough GVariant to write what ostree ≥ 2023 writes to
//! `/run/ostree-booted`: a dictionary `a{sv}` of booleans, strings and
//! `(tt)` pairs, in GVariant's serialization (little-endian, as on every
//! architecture rootstock runs on). ostree-remount (`sysroot-ro`,
//! `transient-etc`) and libostree (`backing-root-device-inode`) read it.

/// A value of the dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// `b`
    Bool(bool),
    /// `s`
    Str(&'a str),
    /// `(tt)`
    U64Pair(u64, u64),
}

impl Value<'_> {
    /// The serialized value and its type string.
    fn serialize(&self) -> (Vec<u8>, &'static str) {
        match *self {
            Value::Bool(b) => (vec![u8::from(b)], "b"),
            Value::Str(s) => {
                let mut v = s.as_bytes().to_vec();
                v.push(0);
                (v, "s")
            }
            Value::U64Pair(a, b) => {
                let mut v = a.to_le_bytes().to_vec();
                v.extend_from_slice(&b.to_le_bytes());
                (v, "(tt)")
            }
        }
    }
}

/// The size of each framing offset of a container whose body is `body`
/// bytes long and which has `offsets` of them: the smallest that can
/// address the whole container.
fn offset_size(body: usize, offsets: usize) -> usize {
    [1usize, 2, 4, 8].into_iter().find(|w| *w == 8 || body + offsets * w < (1usize << (8 * w))).unwrap_or(8)
}

fn push_offset(out: &mut Vec<u8>, value: usize, size: usize) {
    out.extend_from_slice(&(value as u64).to_le_bytes()[..size]);
}

fn pad_to_8(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
}

/// One `{sv}` entry: the key, the variant 8-aligned after it (its value,
/// a zero byte, its type string), and the key's end as the entry's one
/// framing offset.
fn dict_entry(key: &str, value: &Value) -> Vec<u8> {
    let mut e = key.as_bytes().to_vec();
    e.push(0);
    let key_end = e.len();
    pad_to_8(&mut e);
    let (data, ty) = value.serialize();
    e.extend_from_slice(&data);
    e.push(0);
    e.extend_from_slice(ty.as_bytes());
    let size = offset_size(e.len(), 1);
    push_offset(&mut e, key_end, size);
    e
}

/// Serialize `a{sv}` with these entries, in this order. The entries are
/// 8-aligned (a variant's alignment); the end of each is framed after the
/// last one.
pub fn vardict(entries: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ends = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        pad_to_8(&mut out);
        out.extend_from_slice(&dict_entry(key, value));
        ends.push(out.len());
    }
    let size = offset_size(out.len(), ends.len());
    for end in ends {
        push_offset(&mut out, end, size);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// What Debian trixie's ostree-prepare-root 2025.2 wrote to
    /// /run/ostree-booted for a deployment directory with device 27 and
    /// inode 96894: plain, and with etc.transient and sysroot.readonly.
    const OSTREE_2025_2: &str = "6261636b696e672d726f6f742d6465766963652d696e6f6465000000000000001b000000000000007e7a01000000000000287474291a0000726f6f742e7472616e7369656e7400000000620f00000000737973726f6f742d726f0000000000000000620b364c64";
    const OSTREE_2025_2_TRANSIENT_ETC: &str = "6261636b696e672d726f6f742d6465766963652d696e6f6465000000000000001b000000000000007e7a01000000000000287474291a0000726f6f742e7472616e7369656e7400000000620f00000000737973726f6f742d726f0000000000000100620b000000007472616e7369656e742d6574630000002f72756e2f6f73747265652f7472616e7369656e742d6574630000730e364c6495";

    #[test]
    fn byte_for_byte_what_ostree_writes() {
        let plain = vardict(&[
            ("backing-root-device-inode", Value::U64Pair(27, 96894)),
            ("root.transient", Value::Bool(false)),
            ("sysroot-ro", Value::Bool(false)),
        ]);
        assert_eq!(plain, unhex(OSTREE_2025_2));
        let transient = vardict(&[
            ("backing-root-device-inode", Value::U64Pair(27, 96894)),
            ("root.transient", Value::Bool(false)),
            ("sysroot-ro", Value::Bool(true)),
            ("transient-etc", Value::Str("/run/ostree/transient-etc")),
        ]);
        assert_eq!(transient, unhex(OSTREE_2025_2_TRANSIENT_ETC));
    }

    #[test]
    fn empty_and_large_dictionaries() {
        assert_eq!(vardict(&[]), Vec::<u8>::new());
        // One string entry of 300 bytes: the entry needs 2-byte offsets, and so does the array.
        let long = "x".repeat(300);
        let v = vardict(&[("k", Value::Str(&long))]);
        // key "k\0", padding to 8, 301 bytes of string, "\0s", the key's end (2 bytes).
        let entry = 8 + 301 + 2 + 2;
        assert_eq!(v.len(), entry + 2);
        assert_eq!(&v[entry - 2..entry], &[2, 0], "the key ends at 2");
        assert_eq!(&v[entry..], &(entry as u16).to_le_bytes(), "the entry ends at {entry}");
    }

    #[test]
    fn offset_sizes() {
        assert_eq!(offset_size(0, 0), 1);
        assert_eq!(offset_size(254, 1), 1);
        assert_eq!(offset_size(255, 1), 2);
        assert_eq!(offset_size(65533, 1), 2);
        assert_eq!(offset_size(65534, 1), 4);
    }
}
