//! The in-memory tail of a namespace's active data file.
//!
//! Records are appended here, and [`Tail::unwritten`] is what a commit hands
//! to the OS. Written bytes are not thrown away at once: within a byte budget
//! shared by all namespaces (`--cache`), the most recent ones stay, so a read
//! of a recently written record (a `GET`, or `SET`'s "is the value unchanged"
//! check) is a memory copy instead of a `pread`, and keeping them costs writes
//! nothing. Data files are append-only and a tail belongs to one file, so these
//! bytes can never be stale; they go when the file is sealed or flushed, or
//! when the namespace has been idle for a while.
//!
//! The bytes live in chunks that each hold whole records, so dropping the
//! oldest ones is O(1) and never moves the rest.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Size of a chunk; a record larger than this gets a chunk of its own.
const CHUNK_BYTES: usize = 256 * 1024;

/// Memory for written bytes kept in tails, shared by all namespaces. Bytes
/// not yet handed to the OS are always kept, whatever the budget says.
#[derive(Debug)]
pub struct TailBudget {
    limit: usize,
    used: AtomicUsize,
}

impl TailBudget {
    pub fn new(limit: usize) -> Self {
        TailBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    fn over(&self, extra: usize) -> bool {
        self.used.load(Ordering::Relaxed) + extra > self.limit
    }
}

#[derive(Debug)]
struct Chunk {
    /// File offset of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
    /// What the chunk was charged to the budget (its capacity when made).
    charged: usize,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

#[derive(Debug)]
pub struct Tail {
    /// File offset of the first byte kept; everything before it is on disk.
    start: u64,
    chunks: VecDeque<Chunk>,
    /// Bytes charged to the budget: the capacity of the chunks held.
    charged: usize,
    budget: Arc<TailBudget>,
}

impl Tail {
    /// An empty tail of a file whose bytes up to `end` are all on disk.
    pub fn new(end: u64, budget: Arc<TailBudget>) -> Self {
        Tail {
            start: end,
            chunks: VecDeque::new(),
            charged: 0,
            budget,
        }
    }

    /// File offset just past the last appended byte.
    pub fn end(&self) -> u64 {
        self.chunks.back().map_or(self.start, Chunk::end)
    }

    /// File offset of the first byte held in memory.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Forgets every byte (all of them must be on disk) and restarts at `end`.
    pub fn reset(&mut self, end: u64) {
        self.chunks.clear();
        self.release(self.charged);
        self.start = end;
    }

    /// Room for one record of `len` bytes at the end, as a vector to append
    /// the encoded record to. `written` is the file offset up to which bytes
    /// are on disk: only those can be dropped to stay within the budget.
    pub fn record_buffer(&mut self, len: usize, written: u64) -> &mut Vec<u8> {
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.bytes.capacity() - c.bytes.len() >= len);
        if !fits {
            let capacity = len.max(CHUNK_BYTES);
            while self.budget.over(capacity)
                && self.chunks.front().is_some_and(|c| c.end() <= written)
            {
                self.drop_oldest();
            }
            let start = self.end();
            self.chunks.push_back(Chunk {
                start,
                bytes: Vec::with_capacity(capacity),
                charged: capacity,
            });
            self.charged += capacity;
            self.budget.used.fetch_add(capacity, Ordering::Relaxed);
        }
        &mut self
            .chunks
            .back_mut()
            .expect("a chunk was just ensured")
            .bytes
    }

    /// Copies `buf.len()` bytes at file offset `offset`; the range must lie
    /// within `start()..end()`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        let first = self.chunks.partition_point(|c| c.end() <= offset);
        let mut done = 0;
        for c in self.chunks.range(first..) {
            if done == buf.len() {
                break;
            }
            let from = (offset + done as u64 - c.start) as usize;
            let n = (c.bytes.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&c.bytes[from..from + n]);
            done += n;
        }
        assert_eq!(done, buf.len(), "tail read outside the bytes held");
    }

    /// The `len` bytes at file offset `offset`, if held and within one chunk
    /// (a record always is).
    pub fn slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        if offset < self.start {
            return None;
        }
        let c = self
            .chunks
            .get(self.chunks.partition_point(|c| c.end() <= offset))?;
        let from = (offset - c.start) as usize;
        c.bytes.get(from..from + len)
    }

    /// The bytes from file offset `written` to the end, as (offset, bytes) runs.
    pub fn unwritten(&self, written: u64) -> impl Iterator<Item = (u64, &[u8])> {
        let first = self.chunks.partition_point(|c| c.end() <= written);
        self.chunks.range(first..).map(move |c| {
            let from = written.saturating_sub(c.start) as usize;
            (c.start + from as u64, &c.bytes[from..])
        })
    }

    /// Drops every chunk whose bytes are all on disk (an idle namespace gives
    /// its share of the budget back).
    pub fn drop_written(&mut self, written: u64) {
        while self.chunks.front().is_some_and(|c| c.end() <= written) {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(c) = self.chunks.pop_front() {
            self.start = c.end();
            self.release(c.charged);
        }
    }

    fn release(&mut self, bytes: usize) {
        self.charged -= bytes;
        self.budget.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.release(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(t: &mut Tail, written: u64, record: &[u8]) -> u64 {
        let at = t.end();
        t.record_buffer(record.len(), written)
            .extend_from_slice(record);
        at
    }

    #[test]
    fn reads_across_chunks_and_keeps_unwritten_bytes_over_budget() {
        let budget = Arc::new(TailBudget::new(2 * CHUNK_BYTES));
        let used = || budget.used.load(Ordering::Relaxed);
        let mut t = Tail::new(16, budget.clone());
        let big = vec![7u8; CHUNK_BYTES - 100];
        let a = append(&mut t, 16, &big);
        let b = append(&mut t, 16, &[1u8; 200]);
        assert_eq!((a, b), (16, 16 + big.len() as u64));
        let mut buf = [0u8; 110];
        t.read(b - 10, &mut buf);
        assert_eq!(&buf[..10], &[7u8; 10]);
        assert_eq!(&buf[10..], &[1u8; 100]);
        let runs: Vec<(u64, usize)> = t.unwritten(20).map(|(o, r)| (o, r.len())).collect();
        assert_eq!(runs, vec![(20, big.len() - 4), (b, 200)]);

        // nothing is on disk yet: a third chunk goes over budget, nothing is dropped
        let c = append(&mut t, 16, &vec![2u8; CHUNK_BYTES]);
        assert_eq!((t.start(), used()), (16, 3 * CHUNK_BYTES));
        // once written, the oldest chunks make room for the next one
        let written = t.end();
        append(&mut t, written, b"next");
        assert_eq!((t.start(), used()), (c, 2 * CHUNK_BYTES));
        t.drop_written(written);
        assert_eq!(t.start(), written);
        assert_eq!(used(), CHUNK_BYTES);
        t.drop_written(t.end());
        assert_eq!((t.start(), t.end(), used()), (t.end(), written + 4, 0));
    }

    #[test]
    fn budget_is_given_back_on_reset_and_drop() {
        let budget = Arc::new(TailBudget::new(1 << 20));
        let mut t = Tail::new(16, budget.clone());
        append(&mut t, 16, b"record");
        assert_eq!(budget.used.load(Ordering::Relaxed), CHUNK_BYTES);
        t.reset(16);
        assert_eq!((t.start(), t.end()), (16, 16));
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
        append(&mut t, 16, b"record");
        drop(t);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
    }
}
