//! On-disk formats of data records and index entries.
//!
//! Data file: a 16-byte header (`ZDBDATA\0`, version u32, file id u32) followed by
//! records. A record is a 30-byte header then the key then the value; all
//! integers are little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4 | CRC32C of bytes 4..30 of the header followed by the key |
//! | 4  | 4 | CRC32C of the value |
//! | 8  | 1 | key length |
//! | 9  | 1 | flags (bit 0: deletion marker) |
//! | 10 | 4 | value length |
//! | 14 | 4 | timestamp (unix seconds) |
//! | 18 | 4 | offset of the previous record in this file (0: none) |
//! | 22 | 4 | file id of this key's previous version (0: none) |
//! | 26 | 4 | offset of this key's previous version |
//!
//! Splitting the CRC in two lets a reader validate the framing (header + key)
//! without reading the value, and keeps the value CRC around as a cheap
//! "did the value change" check.
//!
//! Index file: an 8-byte magic (`ZDBIDX\0\x01`) followed by entries, each a
//! 26-byte header then the key: CRC32C of the rest (u32), key length (u8),
//! flags (u8), value length, timestamp, data file id, offset, value CRC (u32 each).

use crate::error::StoreError;

pub const DATA_MAGIC: &[u8; 8] = b"ZDBDATA\0";
pub const DATA_VERSION: u32 = 1;
pub const DATA_FILE_HEADER_LEN: u32 = 16;
pub const RECORD_HEADER_LEN: usize = 30;
pub const INDEX_MAGIC: &[u8; 8] = b"ZDBIDX\0\x01";
pub const INDEX_ENTRY_HEADER_LEN: usize = 26;
pub const MAX_KEY_LEN: usize = 255;

pub const FLAG_DELETED: u8 = 1;

/// Where a record lives: data file id and byte offset of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub file: u32,
    pub offset: u32,
}

impl Loc {
    /// Encoding used for the cursors of `SCAN`, `KEYCUR` and `HISTORY`.
    pub fn to_cursor(self) -> [u8; 8] {
        let mut c = [0u8; 8];
        c[..4].copy_from_slice(&self.file.to_le_bytes());
        c[4..].copy_from_slice(&self.offset.to_le_bytes());
        c
    }

    pub fn from_cursor(bytes: &[u8]) -> Option<Loc> {
        let bytes: &[u8; 8] = bytes.try_into().ok()?;
        let (file, offset) = bytes.split_at(4);
        Some(Loc {
            file: u32::from_le_bytes(file.try_into().ok()?),
            offset: u32::from_le_bytes(offset.try_into().ok()?),
        })
    }
}

/// Decoded fixed part of a data record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub header_crc: u32,
    pub value_crc: u32,
    pub key_len: u8,
    pub flags: u8,
    pub value_len: u32,
    pub timestamp: u32,
    pub prev_record: u32,
    pub prev_version: Option<Loc>,
}

impl RecordHeader {
    pub fn is_deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }

    /// Bytes the whole record occupies.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + self.key_len as u64 + self.value_len as u64
    }

    /// Parses the fixed header; the CRC is checked separately with [`RecordHeader::verify`].
    pub fn decode(bytes: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let prev_file = u32_at(22);
        RecordHeader {
            header_crc: u32_at(0),
            value_crc: u32_at(4),
            key_len: bytes[8],
            flags: bytes[9],
            value_len: u32_at(10),
            timestamp: u32_at(14),
            prev_record: u32_at(18),
            prev_version: (prev_file != 0).then(|| Loc {
                file: prev_file,
                offset: u32_at(26),
            }),
        }
    }

    /// Checks the header CRC against the raw header bytes and key.
    pub fn verify(raw: &[u8; RECORD_HEADER_LEN], key: &[u8]) -> bool {
        let header = RecordHeader::decode(raw);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&raw[4..]), key);
        crc == header.header_crc && key.len() == header.key_len as usize
    }
}

/// Fields of a record to be written.
pub struct NewRecord<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u8,
    pub timestamp: u32,
    pub prev_record: u32,
    pub prev_version: Option<Loc>,
    /// CRC32C of `value`, when the caller already has it.
    pub value_crc: u32,
}

impl NewRecord<'_> {
    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        debug_assert!(self.key.len() <= MAX_KEY_LEN);
        let start = out.len();
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.value_crc.to_le_bytes());
        out.push(self.key.len() as u8);
        out.push(self.flags);
        out.extend_from_slice(&(self.value.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.prev_record.to_le_bytes());
        let prev = self.prev_version.unwrap_or(Loc { file: 0, offset: 0 });
        out.extend_from_slice(&prev.file.to_le_bytes());
        out.extend_from_slice(&prev.offset.to_le_bytes());
        out.extend_from_slice(self.key);
        let crc = crc32c::crc32c(&out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(self.value);
    }

    pub fn encoded_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + self.key.len() as u64 + self.value.len() as u64
    }
}

/// Encodes a data file header.
pub fn data_file_header(file_id: u32) -> [u8; DATA_FILE_HEADER_LEN as usize] {
    let mut h = [0u8; DATA_FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(DATA_MAGIC);
    h[8..12].copy_from_slice(&DATA_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&file_id.to_le_bytes());
    h
}

/// One entry of the index log: the state of a key after one data record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry<K = Vec<u8>> {
    pub key: K,
    pub flags: u8,
    pub value_len: u32,
    pub timestamp: u32,
    pub loc: Loc,
    pub value_crc: u32,
}

impl<K: AsRef<[u8]>> IndexEntry<K> {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let key = self.key.as_ref();
        let start = out.len();
        out.extend_from_slice(&[0u8; 4]);
        out.push(key.len() as u8);
        out.push(self.flags);
        out.extend_from_slice(&self.value_len.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.loc.file.to_le_bytes());
        out.extend_from_slice(&self.loc.offset.to_le_bytes());
        out.extend_from_slice(&self.value_crc.to_le_bytes());
        out.extend_from_slice(key);
        let crc = crc32c::crc32c(&out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

impl IndexEntry {
    /// Decodes the entry at the front of `bytes`; returns it and its length.
    /// `Ok(None)` means the bytes end mid-entry (a torn tail).
    pub fn decode(bytes: &[u8]) -> Result<Option<(IndexEntry, usize)>, StoreError> {
        Ok(IndexEntry::decode_ref(bytes)?.map(|(e, n)| {
            (
                IndexEntry {
                    key: e.key.to_vec(),
                    flags: e.flags,
                    value_len: e.value_len,
                    timestamp: e.timestamp,
                    loc: e.loc,
                    value_crc: e.value_crc,
                },
                n,
            )
        }))
    }
}

/// A decoded index entry borrowing its key, and its encoded length.
pub type DecodedRef<'a> = (IndexEntry<&'a [u8]>, usize);

impl<'a> IndexEntry<&'a [u8]> {
    /// Like [`IndexEntry::decode`], with the key borrowed from `bytes` (no allocation).
    pub fn decode_ref(bytes: &'a [u8]) -> Result<Option<DecodedRef<'a>>, StoreError> {
        if bytes.len() < INDEX_ENTRY_HEADER_LEN {
            return Ok(None);
        }
        let key_len = bytes[4] as usize;
        let total = INDEX_ENTRY_HEADER_LEN + key_len;
        if bytes.len() < total {
            return Ok(None);
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if crc32c::crc32c(&bytes[4..total]) != u32_at(0) {
            return Err(StoreError::Corrupt {
                file: 0,
                offset: 0,
                reason: "index entry CRC mismatch",
            });
        }
        Ok(Some((
            IndexEntry {
                key: &bytes[INDEX_ENTRY_HEADER_LEN..total],
                flags: bytes[5],
                value_len: u32_at(6),
                timestamp: u32_at(10),
                loc: Loc {
                    file: u32_at(14),
                    offset: u32_at(18),
                },
                value_crc: u32_at(22),
            },
            total,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_crc() {
        let value = b"hello world";
        let rec = NewRecord {
            key: b"key",
            value,
            flags: 0,
            timestamp: 42,
            prev_record: 16,
            prev_version: Some(Loc {
                file: 3,
                offset: 99,
            }),
            value_crc: crc32c::crc32c(value),
        };
        let mut buf = Vec::new();
        rec.encode_into(&mut buf);
        assert_eq!(buf.len() as u64, rec.encoded_len());
        let raw: [u8; RECORD_HEADER_LEN] = buf[..RECORD_HEADER_LEN].try_into().expect("len");
        let h = RecordHeader::decode(&raw);
        assert_eq!(h.key_len, 3);
        assert_eq!(h.value_len, 11);
        assert_eq!(h.timestamp, 42);
        assert_eq!(h.prev_record, 16);
        assert_eq!(
            h.prev_version,
            Some(Loc {
                file: 3,
                offset: 99
            })
        );
        assert!(RecordHeader::verify(&raw, b"key"));
        assert!(!RecordHeader::verify(&raw, b"kez"));
        let mut flipped = raw;
        flipped[14] ^= 1;
        assert!(!RecordHeader::verify(&flipped, b"key"));
    }

    #[test]
    fn index_entry_roundtrip_and_torn_tail() {
        let e = IndexEntry {
            key: b"abc".to_vec(),
            flags: FLAG_DELETED,
            value_len: 7,
            timestamp: 1,
            loc: Loc {
                file: 2,
                offset: 300,
            },
            value_crc: 5,
        };
        let mut buf = Vec::new();
        e.encode_into(&mut buf);
        let (d, n) = IndexEntry::decode(&buf).expect("ok").expect("complete");
        assert_eq!((d, n), (e, buf.len()));
        assert!(IndexEntry::decode(&buf[..buf.len() - 1])
            .expect("ok")
            .is_none());
        buf[10] ^= 0xff;
        assert!(IndexEntry::decode(&buf).is_err());
    }

    #[test]
    fn cursor_roundtrip() {
        let l = Loc {
            file: 7,
            offset: 1234,
        };
        assert_eq!(Loc::from_cursor(&l.to_cursor()), Some(l));
        assert_eq!(Loc::from_cursor(b"short"), None);
    }
}
