#![no_main]
//! A block device's first bytes: superblocks (ext4, xfs, btrfs, vfat, erofs), GPT, MBR.
use libfuzzer_sys::fuzz_target;
use rootstock_boot::probe::{PartitionTable, probe_superblock, read_gpt};

fuzz_target!(|data: &[u8]| {
    let bytes = data.to_vec();
    let _ = probe_superblock(&bytes);
    let _ = read_gpt(&bytes);
    let _ = PartitionTable::read(&bytes);
});
