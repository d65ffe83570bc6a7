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
  5  transaction included in a final block but its call failed (shows the pallet error)

Keys come from secret URIs, derived as documented in gridchain-primitives
(primitives/src/account.rs): `//Name` dev keys, BIP39 mnemonics with optional
`//path` hard derivation, or `0x` + 64 hex raw ed25519 seeds. Addresses are
SS58-style, prefix 42.";

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
    /// Store a secret URI in the keystore under a name.
    #[command(after_help = SECRET_URI_HELP)]
    Add {
        /// Key name: letters, digits, '-', '_', '.'.
        name: String,
        /// Secret URI; prefer the GRID_SECRET_URI environment variable, which stays out of
        /// shell history.
        #[arg(env = "GRID_SECRET_URI", hide_env_values = true)]
        secret_uri: String,
    },
    /// List the keystore's names and addresses (never secrets).
    List,
    /// Delete a key from the keystore.
    Remove {
        /// Key name.
        name: String,
    },
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
