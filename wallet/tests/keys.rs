//! `grid key …` against a temporary keystore: no node needed.

mod common;

use common::{grid, grid_with_password, TEST_PASSWORD};
use gridchain_primitives::{hash::encode_hex, Pair};
use std::{fs, os::unix::fs::PermissionsExt};

fn mode_of(path: &std::path::Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn generate_prints_a_mnemonic_that_derives_the_printed_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    let run = grid(&keystore, &["key", "generate", "--output", "json"]);
    run.assert_code(0);
    let json = run.json();
    let mnemonic = json["mnemonic"].as_str().expect("mnemonic");
    assert_eq!(mnemonic.split_whitespace().count(), 12);
    let pair = Pair::from_uri(mnemonic).expect("valid mnemonic");
    assert_eq!(json["address"], pair.public().to_string());
    assert_eq!(json["publicKey"], encode_hex(&pair.public().0));
    assert!(!keystore.exists(), "generate without --save stores nothing");

    let text = grid(&keystore, &["key", "generate"]);
    text.assert_code(0);
    assert!(text.stdout.contains("mnemonic:"), "{}", text.stdout);
}

#[test]
fn inspect_secret_uri_and_address_without_leaking_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    let alice = Pair::dev("Alice");
    let address = alice.public().to_string();

    let run = grid(
        &keystore,
        &["key", "inspect", "//Alice", "--output", "json"],
    );
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["address"], address);
    assert_eq!(json["publicKey"], encode_hex(&alice.public().0));
    assert!(json.get("secretSeed").is_none());
    let seed = encode_hex(&alice.seed());
    assert!(!run.stdout.contains(&seed[2..]));

    let shown = grid(
        &keystore,
        &[
            "key",
            "inspect",
            "//Alice",
            "--show-secret",
            "--output",
            "json",
        ],
    );
    shown.assert_code(0);
    assert_eq!(shown.json()["secretSeed"], seed);

    let by_seed = grid(&keystore, &["key", "inspect", &seed, "--output", "json"]);
    by_seed.assert_code(0);
    assert_eq!(by_seed.json()["address"], address);

    let by_address = grid(&keystore, &["key", "inspect", &address, "--output", "json"]);
    by_address.assert_code(0);
    let json = by_address.json();
    assert_eq!(json["publicKey"], encode_hex(&alice.public().0));
    assert_eq!(json["prefix"], 42);

    let phrase = Pair::generate_mnemonic();
    let derived = grid(&keystore, &["key", "inspect", &format!("{phrase}//stash")]);
    derived.assert_code(0);
    let expected = Pair::from_uri(&format!("{phrase}//stash")).expect("derive");
    assert!(derived.stdout.contains(&expected.public().to_string()));
    assert!(!derived.stdout.contains(&phrase));

    grid(&keystore, &["key", "inspect", "not a mnemonic at all"]).assert_code(1);
    grid(&keystore, &["key", "inspect", "5NotAnAddress"]).assert_code(1);
}

#[test]
fn add_list_remove_keep_the_keystore_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("config").join("keystore.json");

    let added = grid(
        &keystore,
        &["key", "add", "alice", "//Alice", "--output", "json"],
    );
    added.assert_code(0);
    assert_eq!(
        added.json()["address"],
        Pair::dev("Alice").public().to_string()
    );
    assert_eq!(mode_of(&keystore), 0o600);

    let saved = grid(
        &keystore,
        &["key", "generate", "--save", "fresh", "--output", "json"],
    );
    saved.assert_code(0);
    let fresh_address = saved.json()["address"].clone();
    assert_eq!(mode_of(&keystore), 0o600);

    grid(&keystore, &["key", "add", "alice", "//Bob"]).assert_code(1);
    grid(&keystore, &["key", "add", "bad name", "//Bob"]).assert_code(1);
    grid(&keystore, &["key", "add", "bob", "no such words"]).assert_code(1);

    let listed = grid(&keystore, &["key", "list", "--output", "json"]);
    listed.assert_code(0);
    let keys = listed.json()["keys"].clone();
    assert_eq!(keys.as_array().map(Vec::len), Some(2));
    assert_eq!(keys[0]["name"], "alice");
    assert_eq!(keys[1]["name"], "fresh");
    assert_eq!(keys[1]["address"], fresh_address);
    assert!(
        !listed.stdout.contains("//Alice"),
        "list never shows secrets"
    );

    let text = grid(&keystore, &["key", "list"]);
    assert!(text.stdout.contains("alice"));
    assert!(!text.stdout.contains("//Alice"));

    let inspected = grid(&keystore, &["key", "inspect", "alice", "--output", "json"]);
    inspected.assert_code(0);
    assert_eq!(inspected.json()["name"], "alice");

    grid(&keystore, &["key", "remove", "alice"]).assert_code(0);
    grid(&keystore, &["key", "remove", "alice"]).assert_code(1);
    let listed = grid(&keystore, &["key", "list", "--output", "json"]);
    assert_eq!(listed.json()["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(mode_of(&keystore), 0o600);

    fs::set_permissions(&keystore, fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = grid(&keystore, &["key", "list"]);
    refused.assert_code(1);
    assert!(refused.stderr.contains("chmod 600"), "{}", refused.stderr);
    let refused_signer = grid(&keystore, &["transfer", "fresh", "1", "--from", "fresh"]);
    refused_signer.assert_code(1);
}

/// An address nobody listens on: a command that gets this far resolved its signer.
const NO_NODE: &str = "http://127.0.0.1:9";

#[test]
fn grid_password_encrypts_the_keystore_and_unlocks_signing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    let bob = Pair::dev("Bob").public().to_string();
    grid(&keystore, &["key", "add", "alice", "//Alice"]).assert_code(0);
    let phrase = Pair::generate_mnemonic();
    grid(&keystore, &["key", "add", "words", &phrase]).assert_code(0);
    let on_disk = fs::read_to_string(&keystore).expect("read");
    assert!(on_disk.contains("\"version\": 2"), "{on_disk}");
    for secret in ["//Alice", phrase.as_str(), TEST_PASSWORD] {
        assert!(!on_disk.contains(secret), "{secret:?} on disk:\n{on_disk}");
    }

    // Names and addresses need no passphrase.
    let listed = grid_with_password(&keystore, None, &["key", "list", "--output", "json"]);
    listed.assert_code(0);
    assert_eq!(
        listed.json()["keys"][0]["address"],
        Pair::dev("Alice").public().to_string()
    );
    grid_with_password(&keystore, None, &["key", "inspect", "alice"]).assert_code(0);
    grid_with_password(&keystore, None, &["balance", "alice", "--rpc", NO_NODE]).assert_code(3);

    // Signing with a stored key: the right passphrase gets as far as the (absent) node.
    let transfer = ["transfer", &bob, "1", "--from", "alice", "--rpc", NO_NODE];
    grid(&keystore, &transfer).assert_code(3);
    let shown = grid(
        &keystore,
        &[
            "key",
            "inspect",
            "alice",
            "--show-secret",
            "--output",
            "json",
        ],
    );
    shown.assert_code(0);
    assert_eq!(
        shown.json()["secretSeed"],
        encode_hex(&Pair::dev("Alice").seed())
    );

    // A wrong passphrase: one clear error, exit 1, nothing changed.
    let wrong = grid_with_password(&keystore, Some("guess"), &transfer);
    wrong.assert_code(1);
    assert!(
        wrong.stderr.contains("wrong keystore passphrase"),
        "{}",
        wrong.stderr
    );
    grid_with_password(&keystore, Some("guess"), &["key", "add", "bob", "//Bob"]).assert_code(1);
    assert_eq!(fs::read_to_string(&keystore).expect("read"), on_disk);

    // No passphrase and no terminal: one line saying to set GRID_PASSWORD.
    let missing = grid_with_password(&keystore, None, &transfer);
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("set GRID_PASSWORD"),
        "{}",
        missing.stderr
    );
    let empty = grid_with_password(&keystore, Some(""), &transfer);
    empty.assert_code(1);
    assert!(
        empty.stderr.contains("may not be empty"),
        "{}",
        empty.stderr
    );
    let new_store = dir.path().join("new.json");
    grid_with_password(&new_store, None, &["key", "add", "alice", "//Alice"]).assert_code(1);
    assert!(!new_store.exists());

    // A secret URI on the command line needs no passphrase at all.
    let direct = ["transfer", &bob, "1", "--from", "//Alice", "--rpc", NO_NODE];
    grid_with_password(&keystore, None, &direct).assert_code(3);

    // Removing from an encrypted keystore needs no passphrase.
    grid_with_password(&keystore, None, &["key", "remove", "words"]).assert_code(0);
}

#[test]
fn a_version_1_keystore_is_read_then_encrypted_by_the_first_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    fs::write(
        &keystore,
        r#"{"version": 1, "keys": {"alice": {"secretUri": "//Alice"}}}"#,
    )
    .expect("write");
    fs::set_permissions(&keystore, fs::Permissions::from_mode(0o600)).expect("chmod");
    let bob = Pair::dev("Bob").public().to_string();
    let transfer = ["transfer", &bob, "1", "--from", "alice", "--rpc", NO_NODE];
    grid_with_password(&keystore, None, &transfer).assert_code(3);
    grid_with_password(&keystore, None, &["key", "list"]).assert_code(0);

    grid_with_password(&keystore, None, &["key", "encrypt"]).assert_code(1);
    let encrypted = grid(&keystore, &["key", "encrypt", "--output", "json"]);
    encrypted.assert_code(0);
    assert_eq!(encrypted.json()["encryptedNow"], true);
    let on_disk = fs::read_to_string(&keystore).expect("read");
    assert!(!on_disk.contains("//Alice"), "{on_disk}");
    assert_eq!(mode_of(&keystore), 0o600);
    grid_with_password(&keystore, None, &transfer).assert_code(1);
    grid(&keystore, &transfer).assert_code(3);
    let again = grid_with_password(&keystore, None, &["key", "encrypt", "--output", "json"]);
    again.assert_code(0);
    assert_eq!(again.json()["encryptedNow"], false);
}

#[test]
fn errors_in_json_mode_are_one_json_document() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    let run = grid(&keystore, &["key", "remove", "nobody", "--output", "json"]);
    run.assert_code(1);
    let json = run.json();
    assert_eq!(json["error"]["exitCode"], 1);
    assert!(json["error"]["message"].as_str().is_some());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = dir.path().join("keystore.json");
    assert_eq!(grid(&keystore, &["key", "frobnicate"]).code, 2);
    assert_eq!(grid(&keystore, &["transfer"]).code, 2);
    let help = grid(&keystore, &["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"));
    assert!(help.stdout.contains("primitives/src/account.rs"));
}
