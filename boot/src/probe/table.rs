//! A whole disk's partition table, GPT or MBR, as far as it names partitions.

use super::bytes::ReadAt;
use super::gpt::{GptError, GptPartition, read_gpt};
use super::mbr::read_mbr;

/// What a whole disk's partition table says about its partitions' identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionTable {
    Gpt(Vec<GptPartition>),
    /// An MBR (DOS) table: the kernel's `PARTUUID` of partition N is
    /// `SSSSSSSS-NN` (disk signature, partition number in hex); no labels.
    Mbr {
        disk_signature: u32,
    },
    /// No table that gives partitions an identity.
    Unknown,
}

impl PartitionTable {
    /// Reads the GPT, or the MBR when there is no GPT header. A GPT header
    /// that is present but invalid is an error (it is not read as an MBR).
    pub fn read<R: ReadAt + ?Sized>(disk: &R) -> Result<PartitionTable, GptError> {
        match read_gpt(disk) {
            Ok(parts) => Ok(PartitionTable::Gpt(parts)),
            Err(GptError::NotFound) => Ok(match read_mbr(disk)? {
                Some(disk_signature) => PartitionTable::Mbr { disk_signature },
                None => PartitionTable::Unknown,
            }),
            Err(e) => Err(e),
        }
    }

    /// `(PARTUUID, PARTLABEL)` of partition `number` (1-based).
    pub fn lookup(&self, number: u32) -> (Option<String>, Option<String>) {
        match self {
            PartitionTable::Gpt(parts) => match parts.iter().find(|p| p.number == number) {
                Some(p) => (Some(p.partuuid.clone()), Some(p.partlabel.clone()).filter(|l| !l.is_empty())),
                None => (None, None),
            },
            PartitionTable::Mbr { disk_signature } => {
                (Some(format!("{disk_signature:08x}-{number:02x}")), None)
            }
            PartitionTable::Unknown => (None, None),
        }
    }
}
