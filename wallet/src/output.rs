//! What commands print: one JSON document or human text on stdout, progress on stderr.

use clap::ValueEnum;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// A command's result in both forms; `main` prints the one asked for.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub json: serde_json::Value,
    pub text: String,
}

impl Rendered {
    pub fn new(json: serde_json::Value, text: impl Into<String>) -> Self {
        Rendered {
            json,
            text: text.into(),
        }
    }

    /// Nothing more to print: the command streamed its output as it came (logs, exec).
    pub fn streamed() -> Self {
        Rendered::new(serde_json::Value::Null, "")
    }

    /// Prints to stdout; a closed stdout (`grid block | head -1`) is not an error.
    pub fn print(&self, format: OutputFormat) {
        if self.json.is_null() && self.text.is_empty() {
            return;
        }
        let body = match format {
            OutputFormat::Text => self.text.trim_end().to_string(),
            OutputFormat::Json => {
                serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "null".into())
            }
        };
        let _ = writeln!(std::io::stdout().lock(), "{body}");
    }
}

/// Status line of a transaction on stderr (`ready → in block #12 → final`), shown only in text
/// mode on a terminal.
pub struct Progress {
    enabled: bool,
    started: bool,
}

impl Progress {
    pub fn new(format: OutputFormat) -> Self {
        Progress {
            enabled: format == OutputFormat::Text && std::io::stderr().is_terminal(),
            started: false,
        }
    }

    /// Appends one step to the status line.
    pub fn step(&mut self, status: &str) {
        if !self.enabled {
            return;
        }
        if self.started {
            eprint!(" → {status}");
        } else {
            eprint!("{status}");
            self.started = true;
        }
    }

    /// Ends the status line.
    pub fn finish(&mut self) {
        if self.enabled && self.started {
            eprintln!();
            self.started = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
