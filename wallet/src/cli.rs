//! The command line: global flags, commands and their help text.

use crate::output::OutputFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  general error (bad input, unknown key, keystore problem, node error on a read)
  2  usage error (unknown flag, missing argument)
  3  cannot reach the node, or the RPC connection broke
  4  transaction rejected by the node (shows the JSON-RPC code, e.g. 1006: cannot pay fee)
  5  transaction included in a final block but its call failed (shows the pallet error);
     `reservation watch`, `store reserve`: a workload failed (shows the node's message)
     or was deleted
  6  `store check` found lost or corrupt shards, or `store repair` could not re-create
     all of them (the report is still printed)

Keys come from secret URIs, derived as documented in gridchain-primitives
(primitives/src/account.rs): `//Name` dev keys, BIP39 mnemonics with optional
`//path` hard derivation, or `0x` + 64 hex raw ed25519 seeds. Addresses are
SS58-style, prefix 42.

The keystore encrypts its secrets with a passphrase (Argon2id, XChaCha20-Poly1305):
GRID_PASSWORD if set, else asked on the terminal. Only what needs a secret asks
(signing with --from NAME, key add, key inspect --show-secret); names and addresses
are readable without it.";

const SECRET_URI_HELP: &str = "\
Secret URIs (derivation in primitives/src/account.rs):
  //Name              dev key, seed = blake2b-256(\"gridchain//\" ++ Name)
  <12 or 24 words>    BIP39 mnemonic, seed = first 32 bytes of the BIP39 seed (empty passphrase)
  <mnemonic>//path    one hard derivation step per //segment: blake2b-256(seed ++ \"//path\")
  0x<64 hex>          raw 32-byte ed25519 seed";

/// The gridchain wallet: keys, balances, transfers, blocks and transactions.
#[derive(Debug, Parser)]
#[command(name = "grid", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Node RPC endpoint: ws:// or wss:// (watches transactions) or http:// or https:// (polls).
    #[arg(
        long,
        global = true,
        env = "GRID_RPC",
        default_value = "ws://127.0.0.1:9944"
    )]
    pub rpc: String,

    /// Output format: human text, or exactly one JSON document on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Keystore file [default: $XDG_CONFIG_HOME/grid/keystore.json or
    /// ~/.config/grid/keystore.json].
    #[arg(long, global = true, env = "GRID_KEYSTORE")]
    pub keystore: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect and store keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Free and reserved balance and nonce of an account.
    Balance {
        /// Address, or name of a key in the keystore.
        account: String,
    },
    /// Send GRID to an account, signed by --from; waits until the block is final.
    Transfer(TransferArgs),
    /// Show a block: header and extrinsics.
    Block {
        /// Block number or 0x block hash [default: best block].
        block: Option<String>,
    },
    /// Show a transaction in a final block: block, index, result, fee and events.
    Tx {
        /// 0x transaction hash.
        hash: String,
    },
    /// Zero-Store: files chunked, compressed, encrypted and dispersed over zdb namespaces.
    Store(StoreArgs),
    /// Twins: the grid's identities (create, show).
    #[command(subcommand)]
    Twin(crate::commands::twin::TwinCommand),
    /// Farms (create, show, list).
    #[command(subcommand)]
    Farm(crate::commands::farm::FarmCommand),
    /// 3Nodes: status, health and capacity (list, show).
    #[command(subcommand)]
    Node(crate::commands::node::NodeCommand),
    /// Reserve a deployment (YAML or JSON file) on a node; waits until final, prints its id.
    Reserve(crate::commands::reservation::ReserveArgs),
    /// Reservations (list, show, watch, update, cancel, logs, exec, events).
    #[command(subcommand)]
    Reservation(crate::commands::reservation::ReservationCommand),
    /// Staking: bond, unbond, withdraw, validate, chill, and the validator set.
    #[command(subcommand)]
    Staking(crate::commands::staking::StakingCommand),
}

impl Cli {
    /// `--output`, or JSON when the command's own `--json` shorthand is given.
    pub fn output_format(&self) -> OutputFormat {
        match &self.command {
            Command::Staking(crate::commands::staking::StakingCommand::Validators {
                json: true,
                ..
            }) => OutputFormat::Json,
            _ => self.output,
        }
    }
}

const STORE_HELP: &str = "\
The backend config (JSON) lists the zdb namespaces and the coding parameters:
  {\"version\": 1, \"dataShards\": 4, \"parityShards\": 2,
   \"backends\": [{\"address\": \"10.1.0.7:9900\", \"namespace\": \"zs-a\", \"password\": \"…\"}, …]}
Every file is cut into chunks; each chunk is compressed, encrypted and split into
dataShards + parityShards shards on distinct namespaces: any parityShards of them
may be lost. Keep the printed location string (zs1…) and the key: both are needed
to read the file back. Formats and guarantees: zstor/README.md.

Key: --key-file (64 hex digits, e.g. from `openssl rand -hex 32`), or a passphrase
from --passphrase-file or the GRID_STORE_PASSPHRASE environment variable (Argon2id).";

#[derive(Debug, Args)]
#[command(after_help = STORE_HELP)]
pub struct StoreArgs {
    /// Backend config [default: $XDG_CONFIG_HOME/grid/store.json or ~/.config/grid/store.json].
    #[arg(long, global = true, env = "GRID_STORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Local index of stored files [default: $XDG_DATA_HOME/grid/store-index.json or
    /// ~/.local/share/grid/store-index.json].
    #[arg(long, global = true, env = "GRID_STORE_INDEX")]
    pub index: Option<PathBuf>,
    /// File holding a raw 32-byte key as 64 hex digits.
    #[arg(long, global = true, env = "GRID_STORE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// File holding the passphrase (first line); else GRID_STORE_PASSPHRASE is read.
    #[arg(long, global = true, conflicts_with = "key_file")]
    pub passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Store a file; prints its location string and records it in the local index.
    Put {
        file: PathBuf,
        /// Name to record [default: the file name].
        #[arg(long)]
        name: Option<String>,
        /// Write even if fewer than dataShards + parityShards backends are healthy (at least
        /// dataShards must be); the missing shards are re-created by `repair` later.
        #[arg(long)]
        allow_degraded: bool,
    },
    /// Restore a file (by location string, or name in the local index) into OUTPUT.
    Get {
        /// Location string (zs1…) or a name from `grid store ls`.
        file: String,
        /// Where to write the file (replaced only once the whole file is restored and verified).
        #[arg(value_name = "OUTPUT")]
        destination: PathBuf,
    },
    /// Read every shard and manifest copy and verify their checksums (exit 6 if any is bad).
    Check {
        /// Location string (zs1…) or a name from `grid store ls`.
        file: String,
    },
    /// Re-create lost or corrupt shards (on spare namespaces of the config when a backend is
    /// gone) and store an updated manifest; prints the new location string (exit 6 when some
    /// shards had no backend to go to).
    Repair {
        /// Location string (zs1…) or a name from `grid store ls`.
        file: String,
    },
    /// Files stored from this machine (the local index).
    Ls,
    /// Reserve dataShards + parityShards zdb namespaces on the grid (distinct farms first, then
    /// distinct nodes) in one all-or-nothing transaction, wait until every node reports Ok, and
    /// write the backend config (--config, mode 0600).
    Reserve(crate::commands::store_reserve::StoreReserveArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a new key from a fresh 12-word BIP39 mnemonic and print the mnemonic.
    #[command(after_help = SECRET_URI_HELP)]
    Generate {
        /// Also store the mnemonic in the keystore under this name.
        #[arg(long, value_name = "NAME")]
        save: Option<String>,
    },
    /// Show the address and public key of a secret URI, address or key name.
    #[command(after_help = SECRET_URI_HELP)]
    Inspect {
        /// A secret URI, an address, or the name of a key in the keystore.
        input: String,
        /// Also print the secret seed (0x hex) of a secret URI or key.
        #[arg(long)]
        show_secret: bool,
    },
    /// Store a secret URI in the keystore under a name, encrypted with the keystore passphrase
    /// (GRID_PASSWORD, else asked on the terminal; twice for a new keystore).
    #[command(after_help = SECRET_URI_HELP)]
    Add {
        /// Key name: letters, digits, '-', '_', '.'.
        name: String,
        /// Secret URI; prefer the GRID_SECRET_URI environment variable, which stays out of
        /// shell history.
        #[arg(env = "GRID_SECRET_URI", hide_env_values = true)]
        secret_uri: String,
    },
    /// List the keystore's names and addresses (never secrets; needs no passphrase).
    List,
    /// Delete a key from the keystore (an encrypted keystore needs no passphrase for this).
    Remove {
        /// Key name.
        name: String,
    },
    /// Encrypt a version-1 (plain-text) keystore under a new passphrase. `key add`, `key remove`
    /// and `key generate --save` do it too: plain text is never written.
    Encrypt,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Recipient: address, or name of a key in the keystore.
    pub to: String,
    /// Amount in GRID with up to 12 decimals (e.g. 1.5), or in raw units with --units.
    #[arg(allow_hyphen_values = true)]
    pub amount: String,
    /// Signing key: name of a key in the keystore, or a secret URI.
    #[arg(long, value_name = "NAME|SECRET_URI")]
    pub from: Option<String>,
    /// Read the amount and tip as raw units (10^-12 GRID) instead of GRID.
    #[arg(long)]
    pub units: bool,
    /// Tip for the block producer, on top of the fee (same unit as the amount).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub tip: String,
    /// Return once the node accepted the transaction, without waiting for a final block.
    #[arg(long)]
    pub no_wait: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
