//! `grid store …`: Zero-Store. Files are chunked, compressed, encrypted and dispersed over the
//! zdb namespaces of a backend config (see the `zstor` crate); none of this talks to a node.

use crate::cli::{StoreArgs, StoreCommand};
use crate::failure::Failure;
use crate::output::{OutputFormat, Rendered};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;
use zstor::{
    CheckReport, IndexEntry, KeySource, LocalIndex, Location, PutOptions, Store, StoreConfig,
};

pub fn run(args: StoreArgs, format: OutputFormat) -> Result<Rendered> {
    let index_path = match &args.index {
        Some(path) => path.clone(),
        None => default_path("XDG_DATA_HOME", ".local/share", "store-index.json")?,
    };
    // everything but `ls` needs the backends, the key and the index
    let open = || -> Result<(Store, KeySource, LocalIndex)> {
        let config_path = config_path(args.config.clone())?;
        let store = Store::new(StoreConfig::load(&config_path)?)?;
        Ok((store, key_source(&args)?, LocalIndex::load(&index_path)?))
    };
    match &args.command {
        StoreCommand::Put {
            file,
            name,
            allow_degraded,
        } => {
            let (store, key, mut index) = open()?;
            put(
                &store,
                &key,
                &mut index,
                file,
                name.clone(),
                *allow_degraded,
                format,
            )
        }
        StoreCommand::Get { file, destination } => {
            let (store, key, index) = open()?;
            get(&store, &key, &resolve(&index, file)?, destination, format)
        }
        StoreCommand::Check { file } => {
            let (store, key, index) = open()?;
            check(&store, &key, &resolve(&index, file)?, format)
        }
        StoreCommand::Repair { file } => {
            let (store, key, mut index) = open()?;
            let location = resolve(&index, file)?;
            repair(&store, &key, &mut index, &location, format)
        }
        StoreCommand::Ls => ls(&index_path),
        StoreCommand::Reserve(_) => bail!("`grid store reserve` runs against a node"),
    }
}

/// The backend config: `--config`/`GRID_STORE_CONFIG`, else `$XDG_CONFIG_HOME/grid/store.json`
/// or `~/.config/grid/store.json`.
pub fn config_path(explicit: Option<PathBuf>) -> Result<PathBuf> {
    match explicit {
        Some(path) => Ok(path),
        None => default_path("XDG_CONFIG_HOME", ".config", "store.json"),
    }
}

/// `$VAR/grid/FILE`, else `~/FALLBACK/grid/FILE`.
fn default_path(var: &str, fallback: &str, file: &str) -> Result<PathBuf> {
    let base = match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .with_context(|| format!("cannot place {file}: neither {var} nor HOME is set"))?,
        )
        .join(fallback),
    };
    Ok(base.join("grid").join(file))
}

/// The key: `--key-file` (64 hex digits), else `--passphrase-file`, else `GRID_STORE_PASSPHRASE`.
fn key_source(args: &StoreArgs) -> Result<KeySource> {
    if let Some(path) = &args.key_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read key file {}", path.display()))?,
        );
        return KeySource::raw_key_from_hex(&text)
            .with_context(|| format!("key file {}", path.display()));
    }
    let passphrase = match &args.passphrase_file {
        Some(path) => Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read passphrase file {}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        None => match std::env::var("GRID_STORE_PASSPHRASE") {
            Ok(passphrase) => Zeroizing::new(passphrase),
            Err(_) => bail!(
                "no key: pass --key-file (64 hex digits), --passphrase-file, or set GRID_STORE_PASSPHRASE"
            ),
        },
    };
    if passphrase.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(KeySource::Passphrase(passphrase))
}

/// A location string, or the name of a file in the local index.
fn resolve(index: &LocalIndex, file: &str) -> Result<Location> {
    if file.starts_with(zstor::manifest::LOCATION_PREFIX) {
        return Ok(Location::parse(file)?);
    }
    match index.find_by_name(file).as_slice() {
        [entry] => Ok(Location::parse(&entry.location)?),
        [] => bail!("{file:?} is neither a location string (zs1…) nor a name in the local index"),
        many => bail!(
            "{} files are named {file:?} in the local index: give the location string",
            many.len()
        ),
    }
}

fn put(
    store: &Store,
    key: &KeySource,
    index: &mut LocalIndex,
    file: &Path,
    name: Option<String>,
    allow_degraded: bool,
    format: OutputFormat,
) -> Result<Rendered> {
    let mut input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let total = input.metadata().map(|m| m.len()).ok();
    let name = name.unwrap_or_else(|| {
        file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    });
    let mut progress = Throughput::new("put", total, format);
    let report = store.put(
        &mut input,
        &name,
        key,
        PutOptions { allow_degraded },
        &mut progress,
    )?;
    progress.finish();
    let location = report.location.to_string();
    index.record(IndexEntry {
        name: report.name.clone(),
        location: location.clone(),
        size: report.size,
        chunks: report.chunks,
        stored_at: unix_now(),
    });
    index.save()?;
    let config = store.config();
    let mut text = format!(
        "stored {} ({} bytes, {} chunks, {}+{} shards, {} bytes on the backends, {} manifest copies)\n",
        report.name,
        report.size,
        report.chunks,
        config.data_shards,
        config.parity_shards,
        report.stored_bytes,
        report.manifest_copies
    );
    if report.missing_shards > 0 {
        text.push_str(&format!(
            "degraded: {} shards not written; run `grid store repair` once the backends are back\n",
            report.missing_shards
        ));
    }
    text.push_str(&format!("location: {location}"));
    Ok(Rendered::new(
        json!({
            "location": location,
            "name": report.name,
            "size": report.size,
            "chunks": report.chunks,
            "dataShards": config.data_shards,
            "parityShards": config.parity_shards,
            "storedBytes": report.stored_bytes,
            "missingShards": report.missing_shards,
            "manifestCopies": report.manifest_copies,
        }),
        text,
    ))
}

fn get(
    store: &Store,
    key: &KeySource,
    location: &Location,
    output: &Path,
    format: OutputFormat,
) -> Result<Rendered> {
    // written beside the target and renamed at the end: a failed get leaves no partial file
    let partial = output.with_file_name(format!(
        ".{}.zstor-partial",
        output
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy())
    ));
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut progress = Throughput::new("get", None, format);
    let result = store.get(location, key, &mut writer, &mut progress);
    progress.finish();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            drop(writer);
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    drop(writer);
    std::fs::rename(&partial, output)
        .with_context(|| format!("cannot move the result to {}", output.display()))?;
    let mut text = format!(
        "restored {} ({} bytes, {} chunks) to {}",
        report.name,
        report.size,
        report.chunks,
        output.display()
    );
    if report.reconstructed_chunks > 0 {
        text.push_str(&format!(
            "\n{} chunks were rebuilt from parity: run `grid store check`",
            report.reconstructed_chunks
        ));
    }
    Ok(Rendered::new(
        json!({
            "name": report.name,
            "size": report.size,
            "chunks": report.chunks,
            "reconstructedChunks": report.reconstructed_chunks,
            "output": output,
        }),
        text,
    ))
}

fn check(
    store: &Store,
    key: &KeySource,
    location: &Location,
    format: OutputFormat,
) -> Result<Rendered> {
    let mut progress = Throughput::new("check", None, format);
    let report = store.check(location, key, &mut progress)?;
    progress.finish();
    let rendered = render_check(&report);
    if report.is_healthy() {
        return Ok(rendered);
    }
    let summary = if report.unrecoverable_chunks > 0 {
        format!(
            "{} chunks of {} cannot be recovered",
            report.unrecoverable_chunks, report.name
        )
    } else {
        format!(
            "{} has {} shards or manifest copies lost or corrupt; `grid store repair` restores them",
            report.name,
            report.shards - report.valid + (report.manifest_copies - report.intact_manifest_copies) as u64
        )
    };
    Err(Failure::StoreUnhealthy {
        summary,
        report: Box::new(rendered),
    }
    .into())
}

fn render_check(report: &CheckReport) -> Rendered {
    let backends: Vec<_> = report
        .backends
        .iter()
        .map(|b| {
            json!({
                "backend": b.backend,
                "valid": b.valid,
                "missing": b.missing,
                "corrupt": b.corrupt,
                "unreachable": b.unreachable,
                "error": b.error,
            })
        })
        .collect();
    let mut text = format!(
        "{}: {} bytes, {} chunks\nshards: {} of {} valid, {} missing, {} corrupt, {} unreachable, {} not stored\n\
         manifest copies: {} of {} intact\nunrecoverable chunks: {}\n",
        report.name,
        report.size,
        report.chunks,
        report.valid,
        report.shards,
        report.missing,
        report.corrupt,
        report.unreachable,
        report.not_stored,
        report.intact_manifest_copies,
        report.manifest_copies,
        report.unrecoverable_chunks
    );
    for b in &report.backends {
        text.push_str(&format!(
            "  {:<40} valid {:>6}  missing {:>6}  corrupt {:>6}  unreachable {:>6}{}\n",
            b.backend,
            b.valid,
            b.missing,
            b.corrupt,
            b.unreachable,
            b.error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        ));
    }
    text.push_str(if report.is_healthy() {
        "healthy"
    } else if report.unrecoverable_chunks == 0 {
        "degraded but recoverable"
    } else {
        "DATA LOST"
    });
    Rendered::new(
        json!({
            "name": report.name,
            "size": report.size,
            "chunks": report.chunks,
            "healthy": report.is_healthy(),
            "recoverable": report.unrecoverable_chunks == 0,
            "shards": report.shards,
            "valid": report.valid,
            "missing": report.missing,
            "corrupt": report.corrupt,
            "unreachable": report.unreachable,
            "notStored": report.not_stored,
            "unrecoverableChunks": report.unrecoverable_chunks,
            "manifestCopies": report.manifest_copies,
            "intactManifestCopies": report.intact_manifest_copies,
            "backends": backends,
        }),
        text,
    )
}

fn repair(
    store: &Store,
    key: &KeySource,
    index: &mut LocalIndex,
    location: &Location,
    format: OutputFormat,
) -> Result<Rendered> {
    let mut progress = Throughput::new("repair", None, format);
    let report = store.repair(location, key, &mut progress)?;
    progress.finish();
    let new_location = report.location.to_string();
    if report.changed {
        index.relocate(&location.to_string(), &new_location);
        index.save()?;
    }
    let mut text = if report.changed {
        format!(
            "{}: {} shards re-created\n",
            report.name, report.repaired_shards
        )
    } else if report.unrepaired_shards == 0 {
        format!("{}: nothing to repair\n", report.name)
    } else {
        String::new()
    };
    for (from, to) in &report.moved {
        text.push_str(&format!("moved {from} → {to}\n"));
    }
    text.push_str(&format!("location: {new_location}"));
    let moved: Vec<_> = report
        .moved
        .iter()
        .map(|(from, to)| json!({ "from": from, "to": to }))
        .collect();
    let rendered = Rendered::new(
        json!({
            "name": report.name,
            "chunks": report.chunks,
            "repairedShards": report.repaired_shards,
            "unrepairedShards": report.unrepaired_shards,
            "moved": moved,
            "changed": report.changed,
            "location": new_location,
        }),
        text,
    );
    if report.unrepaired_shards == 0 {
        return Ok(rendered);
    }
    Err(Failure::StoreUnhealthy {
        summary: format!(
            "{} shards of {} could not be re-created: their backends are gone and every other \
             healthy backend already holds a shard of the chunk; add backends to the config",
            report.unrepaired_shards, report.name
        ),
        report: Box::new(rendered),
    }
    .into())
}

fn ls(index_path: &Path) -> Result<Rendered> {
    let index = LocalIndex::load(index_path)?;
    let mut text = String::new();
    for f in &index.files {
        text.push_str(&format!(
            "{:<30} {:>14} bytes  {:>6} chunks  {}\n",
            f.name, f.size, f.chunks, f.location
        ));
    }
    if index.files.is_empty() {
        text.push_str("no files stored from this machine");
    }
    let files = serde_json::to_value(&index.files).context("serialising the index")?;
    Ok(Rendered::new(json!({ "files": files }), text))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `put 120.0 MiB / 1.00 GiB  11%  350.2 MB/s` on stderr, redrawn at most 5 times a second;
/// only in text mode with stderr on a terminal.
struct Throughput {
    verb: &'static str,
    total: Option<u64>,
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
    done: u64,
}

impl Throughput {
    fn new(verb: &'static str, total: Option<u64>, format: OutputFormat) -> Self {
        Throughput {
            verb,
            total,
            enabled: format == OutputFormat::Text && std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_draw: None,
            done: 0,
        }
    }

    fn draw(&self) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / elapsed / 1e6;
        let done = self.done as f64 / (1024.0 * 1024.0);
        let line = match self.total {
            Some(total) if total > 0 => format!(
                "{} {done:.1} MiB / {:.1} MiB  {:>3}%  {rate:.1} MB/s",
                self.verb,
                total as f64 / (1024.0 * 1024.0),
                self.done * 100 / total
            ),
            _ => format!("{} {done:.1} MiB  {rate:.1} MB/s", self.verb),
        };
        eprint!("\r\x1b[2K{line}");
    }

    fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            self.draw();
            eprintln!();
            self.last_draw = None;
        }
    }
}

impl zstor::Progress for Throughput {
    fn advance(&mut self, bytes: u64) {
        self.done = bytes;
        if !self.enabled {
            return;
        }
        let due = self
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
        if due {
            self.draw();
            self.last_draw = Some(Instant::now());
        }
    }
}
