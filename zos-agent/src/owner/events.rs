//! The event log of each reservation on this node: what happened to its workloads as the agent
//! saw it (pulls, starts, exits with their code, OOM kills, restarts, health changes, the states
//! it reported), for its owner to read (`grid reservation events`).
//!
//! One JSON line per event in `<data dir>/events/<reservation>.jsonl`, so the history survives an
//! agent restart; a file past [`MAX_FILE_BYTES`] is cut to its newest half, and the file goes
//! with its reservation. Events are information, not state: they are appended without
//! fsync, and a torn last line is skipped when read.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};
use zos_owner_api::{request::now_ms, EventRecord};

const MAX_FILE_BYTES: u64 = 256 * 1024;
/// The most events a read returns.
pub const KEEP: usize = 500;

#[derive(Clone)]
pub struct EventLog {
    dir: PathBuf,
    /// Serialises appends and cuts (one writer per file at a time).
    lock: Arc<Mutex<()>>,
}

impl EventLog {
    pub fn open(dir: &Path) -> std::io::Result<EventLog> {
        std::fs::create_dir_all(dir)?;
        Ok(EventLog {
            dir: dir.to_path_buf(),
            lock: Arc::new(Mutex::new(())),
        })
    }

    fn path(&self, reservation: u64) -> PathBuf {
        self.dir.join(format!("{reservation}.jsonl"))
    }

    /// Appends an event; a failure is logged (the workload is not affected by it).
    pub fn record(&self, reservation: u64, workload: &str, kind: &str, message: &str) {
        let event = EventRecord {
            at_ms: now_ms(),
            workload: workload.to_string(),
            kind: kind.to_string(),
            message: message.to_string(),
        };
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.append(reservation, &event) {
            tracing::warn!(reservation, error = %e, "cannot record a workload event");
        }
    }

    fn append(&self, reservation: u64, event: &EventRecord) -> std::io::Result<()> {
        let path = self.path(reservation);
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&line)?;
        if file.metadata()?.len() > MAX_FILE_BYTES {
            // Cut to the newest lines that fill half the limit, so cuts stay rare.
            let text = std::fs::read(&path)?;
            let mut start = text.len().saturating_sub(MAX_FILE_BYTES as usize / 2);
            while start > 0 && text[start - 1] != b'\n' {
                start += 1;
            }
            crate::persist::write_bytes(&path, &text[start.min(text.len())..])?;
        }
        Ok(())
    }

    fn read_file(&self, path: &Path) -> Vec<EventRecord> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut events: Vec<EventRecord> = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let cut = events.len().saturating_sub(KEEP);
        events.drain(..cut);
        events
    }

    /// The reservation's events, oldest first (at most [`KEEP`]).
    pub fn read(&self, reservation: u64) -> Vec<EventRecord> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.read_file(&self.path(reservation))
    }

    /// Forgets the events of every reservation not in `live`.
    pub fn retain(&self, live: &BTreeSet<u64>) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| !live.contains(&id)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_reopening_are_cut_when_large_and_go_with_their_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        log.record(7, "web", "started", "");
        log.record(7, "web", "exited", "exit code 3");
        log.record(8, "db", "state", "Ok");
        let again = EventLog::open(dir.path()).unwrap();
        let events = again.read(7);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].message, "exit code 3");

        // A torn last line (a crash mid-append) is skipped.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("7.jsonl"))
            .unwrap();
        file.write_all(b"{\"atMs\":1,\"wor").unwrap();
        assert_eq!(again.read(7).len(), 2);

        let long = "x".repeat(1_000);
        for _ in 0..400 {
            log.record(9, "web", "exited", &long);
        }
        let size = std::fs::metadata(dir.path().join("9.jsonl")).unwrap().len();
        assert!(size <= MAX_FILE_BYTES + 2_000, "{size}");
        let kept = log.read(9);
        assert!(kept.len() >= 100 && kept.len() <= KEEP, "{}", kept.len());
        assert!(
            kept.iter().all(|e| e.message == long),
            "a cut line survived"
        );

        log.retain(&BTreeSet::from([8]));
        assert!(log.read(7).is_empty());
        assert_eq!(log.read(8).len(), 1);
    }
}
