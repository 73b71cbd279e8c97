//! The resumable progress of a warm-up run, kept in a sidecar JSON state file.
//!
//! Records `[0, rows_done)` of the input have been acknowledged by the server (or were
//! malformed); rows that failed are listed in `failed` and re-sent by the next run. The file
//! is rewritten atomically (tmp file + rename) after every acknowledged batch.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const STATE_VERSION: u32 = 1;
/// Malformed rows kept in the state file (and the summary); the count is always exact.
pub const MAX_MALFORMED_KEPT: usize = 1000;

/// Identifies the input file's content cheaply: size, mtime and a hash of the first KiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub size: u64,
    pub mtime_ns: u128,
    pub head_sha256: String,
}

impl Fingerprint {
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut head = Vec::with_capacity(1024);
        std::fs::File::open(path)?
            .take(1024)
            .read_to_end(&mut head)?;
        let digest = Sha256::digest(&head);
        Ok(Fingerprint {
            size: meta.len(),
            mtime_ns,
            head_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// Where the rows go: progress against one server is not progress against another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `admin` (POST /admin/cache/entries) or `gateway` (POST /v1/chat/completions).
    pub mode: String,
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records read (good and malformed), from the start of the file.
    pub read: u64,
    /// Rows sent and acknowledged (whatever their outcome).
    pub sent: u64,
    pub inserted: u64,
    /// Admin mode: the server already had the entry.
    pub duplicates: u64,
    /// Gateway mode: the gateway answered from the cache (`x-deja-cache: hit-*`).
    pub cached: u64,
    /// Gateway mode: answered but not cached (`x-deja-cache: bypass`).
    #[serde(default)]
    pub bypassed: u64,
    pub malformed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRow {
    pub index: u64,
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedRow {
    pub line: u64,
    pub reason: String,
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub version: u32,
    pub input: PathBuf,
    pub fingerprint: Fingerprint,
    pub target: Target,
    /// Records (good and malformed, 0-based index) below this are done.
    pub rows_done: u64,
    /// The line the last done record started on (for humans).
    pub last_line: u64,
    pub counters: Counters,
    /// Rows that failed; a resumed run re-sends them.
    pub failed: Vec<FailedRow>,
    /// The first [`MAX_MALFORMED_KEPT`] malformed rows.
    pub malformed: Vec<MalformedRow>,
    /// Every record of the input has been processed.
    pub complete: bool,
    /// Unix seconds of the last save.
    pub updated_at: u64,
}

/// What [`Progress::load_or_new`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No state file (or `--restart`).
    Fresh,
    /// A matching state file: resume from it.
    Resumed,
    /// A state file for something else (other file content, server or mode): ignored.
    Mismatch(String),
}

impl Progress {
    pub fn new(input: PathBuf, fingerprint: Fingerprint, target: Target) -> Progress {
        Progress {
            version: STATE_VERSION,
            input,
            fingerprint,
            target,
            rows_done: 0,
            last_line: 0,
            counters: Counters::default(),
            failed: Vec::new(),
            malformed: Vec::new(),
            complete: false,
            updated_at: 0,
        }
    }

    /// The default state file: `FILE.deja-warmup.json` next to the input.
    pub fn default_path(input: &Path) -> PathBuf {
        let mut name = input.file_name().unwrap_or_default().to_os_string();
        name.push(".deja-warmup.json");
        input.with_file_name(name)
    }

    /// Load `state_path` if it matches `fresh` (same input path, fingerprint and target);
    /// otherwise return `fresh`.
    pub fn load_or_new(state_path: &Path, fresh: Progress) -> (Progress, Loaded) {
        let text = match std::fs::read_to_string(state_path) {
            Ok(t) => t,
            Err(_) => return (fresh, Loaded::Fresh),
        };
        let old: Progress = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                return (
                    fresh,
                    Loaded::Mismatch(format!("unreadable state file ({e})")),
                )
            }
        };
        let why = if old.version != STATE_VERSION {
            Some(format!("state file version {}", old.version))
        } else if old.input != fresh.input {
            Some(format!("state file is for {}", old.input.display()))
        } else if old.fingerprint != fresh.fingerprint {
            Some("the input changed since the state file was written".to_string())
        } else if old.target != fresh.target {
            Some(format!(
                "state file is for {} mode at {}",
                old.target.mode, old.target.url
            ))
        } else {
            None
        };
        match why {
            None => (old, Loaded::Resumed),
            Some(w) => (fresh, Loaded::Mismatch(w)),
        }
    }

    /// Write atomically: a tmp file in the same directory, fsync, rename.
    pub fn save(&mut self, state_path: &Path) -> std::io::Result<()> {
        self.updated_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut tmp_name = state_path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = state_path.with_file_name(tmp_name);
        let body = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, state_path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    pub fn failed_count(&self) -> u64 {
        self.failed.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            mode: "admin".into(),
            url: "http://x".into(),
        }
    }

    #[test]
    fn default_path_is_next_to_the_input() {
        assert_eq!(
            Progress::default_path(Path::new("/a/b/data.csv")),
            PathBuf::from("/a/b/data.csv.deja-warmup.json")
        );
    }

    #[test]
    fn save_load_roundtrip_and_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{}\n").unwrap();
        let state = dir.path().join("st.json");
        let fp = Fingerprint::of(&input).unwrap();
        let (mut p, how) =
            Progress::load_or_new(&state, Progress::new(input.clone(), fp.clone(), target()));
        assert_eq!(how, Loaded::Fresh);
        p.rows_done = 7;
        p.counters.inserted = 5;
        p.failed.push(FailedRow {
            index: 3,
            line: 4,
            reason: "boom".into(),
        });
        p.save(&state).unwrap();
        // No tmp file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        let (q, how) =
            Progress::load_or_new(&state, Progress::new(input.clone(), fp.clone(), target()));
        assert_eq!(how, Loaded::Resumed);
        assert_eq!(q.rows_done, 7);
        assert_eq!(q.failed, p.failed);

        let other = Target {
            mode: "gateway".into(),
            url: "http://x".into(),
        };
        let (q, how) = Progress::load_or_new(&state, Progress::new(input.clone(), fp, other));
        assert!(matches!(how, Loaded::Mismatch(_)));
        assert_eq!(q.rows_done, 0);

        std::fs::write(&input, "{}\n{}\n").unwrap();
        let fp2 = Fingerprint::of(&input).unwrap();
        let (q, how) = Progress::load_or_new(&state, Progress::new(input, fp2, target()));
        assert!(matches!(how, Loaded::Mismatch(ref w) if w.contains("changed")));
        assert_eq!(q.rows_done, 0);
    }
}
