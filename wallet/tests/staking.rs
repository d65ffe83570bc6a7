//! `grid staking` against a real `gridnode --dev` (build it first: `cargo build -p gridnode`).
//!
//! //Bob bonds 2,000 GRID and validates; the set announced at the end of the epoch shows him
//! from the first height of the epoch after next. The test does not wait for that height: with
//! Bob in the set and no Bob node, the dev chain depends on Alice's power alone. Then Bob chills
//! and unbonds. Bad input is refused before anything is sent; runtime errors carry the pallet's
//! error name.

#![allow(clippy::unwrap_used)]

mod common;

use common::{grid, DevNode, GridRun};
use gridchain_primitives::Pair;
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// 1 GRID in units.
const GRID: u128 = 1_000_000_000_000;

fn run(keystore: &Path, rpc: &str, args: &[&str]) -> GridRun {
    let mut all = args.to_vec();
    all.extend(["--rpc", rpc]);
    grid(keystore, &all)
}

fn nonce(keystore: &Path, rpc: &str, address: &str) -> u64 {
    let balance = run(keystore, rpc, &["balance", address, "--output", "json"]);
    balance.assert_code(0);
    balance.json()["nonce"].as_u64().unwrap()
}

#[test]
fn bond_validate_scheduled_set_chill_unbond() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keystore.json");
    let node = DevNode::start(&keystore);
    let ws = node.ws_url.as_str();
    let alice = Pair::dev("Alice").public().to_string();
    let bob = Pair::dev("Bob").public().to_string();
    grid(&keystore, &["key", "add", "bob", "//Bob"]).assert_code(0);

    // Bad input: one error line, exit 1, nothing submitted.
    let bob_nonce = nonce(&keystore, ws, &bob);
    let bad: &[(&[&str], &str)] = &[
        (
            &["staking", "bond", "2000", "--from", "nobody"],
            "no key named 'nobody'",
        ),
        (&["staking", "bond", "2000"], "no signer"),
        (
            &["staking", "bond", "1.2.3", "--from", "bob"],
            "not a decimal number",
        ),
        (&["staking", "bond", "-5", "--from", "bob"], "negative"),
        (
            &["staking", "bond", "0", "--from", "bob"],
            "greater than zero",
        ),
        (
            &["staking", "unbond", "1.0000000000001", "--from", "bob"],
            "more than 12 decimal places",
        ),
        (
            &[
                "staking",
                "validate",
                "--commission",
                "100.5",
                "--from",
                "bob",
            ],
            "above 100%",
        ),
        (
            &[
                "staking",
                "validate",
                "--commission",
                "abc",
                "--from",
                "bob",
            ],
            "not a percentage",
        ),
        (
            &[
                "staking",
                "validate",
                "--consensus-key",
                "nokey",
                "--from",
                "bob",
            ],
            "invalid --consensus-key",
        ),
        (
            &[
                "staking",
                "validate",
                "--consensus-key",
                "0x1234",
                "--from",
                "bob",
            ],
            "not a valid secret URI",
        ),
        (&["staking", "validators", "--at", "0"], "genesis"),
        (
            &["staking", "validators", "--at", "1000000"],
            "no validator set for height 1000000 yet",
        ),
    ];
    for (args, message) in bad {
        let out = run(&keystore, ws, args);
        out.assert_code(1);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
    let json = run(
        &keystore,
        ws,
        &[
            "staking",
            "validate",
            "--commission",
            "101",
            "--from",
            "bob",
            "--output",
            "json",
        ],
    );
    json.assert_code(1);
    assert_eq!(json.json()["error"]["exitCode"], 1);
    assert_eq!(
        run(&keystore, ws, &["staking", "bond", "--from", "bob"]).code,
        2,
        "missing amount is a usage error"
    );
    assert_eq!(
        nonce(&keystore, ws, &bob),
        bob_nonce,
        "nothing was submitted"
    );

    // Runtime errors: exit 5 with the pallet's error name; the fee is paid.
    let charlie = Pair::dev("Charlie").public().to_string();
    let below = run(
        &keystore,
        ws,
        &["staking", "bond", "10", "--from", "//Charlie"],
    );
    below.assert_code(5);
    assert!(
        below.stderr.contains("validators::BelowMinBond"),
        "{}",
        below.stderr
    );
    assert_eq!(nonce(&keystore, ws, &charlie), 1);
    let not_candidate = run(
        &keystore,
        ws,
        &[
            "staking",
            "chill",
            "--from",
            "//Charlie",
            "--output",
            "json",
        ],
    );
    not_candidate.assert_code(5);
    assert!(not_candidate.stderr.contains("validators::NotCandidate"));
    assert_eq!(not_candidate.json()["success"], false);

    // Bob bonds 2,000 GRID (one line of text) and validates with his own key.
    let bond = run(&keystore, ws, &["staking", "bond", "2000", "--from", "bob"]);
    bond.assert_code(0);
    assert_eq!(bond.stdout.trim().lines().count(), 1, "{}", bond.stdout);
    assert!(
        bond.stdout.starts_with(&format!(
            "{bob} bonded 2000 GRID (bond now 2000 GRID); transaction 0x"
        )),
        "{}",
        bond.stdout
    );
    let validate = run(
        &keystore,
        ws,
        &[
            "staking",
            "validate",
            "--commission",
            "2.5",
            "--from",
            "bob",
            "--output",
            "json",
        ],
    );
    validate.assert_code(0);
    let validate = validate.json();
    assert_eq!(validate["account"], bob);
    assert_eq!(validate["consensusKey"], bob);
    assert_eq!(validate["commission"], 25_000_000);
    let block = validate["transaction"]["blockNumber"].as_u64().unwrap();
    let epoch_length = 10; // dev chain spec
    let chosen_in = (block / epoch_length + 1) * epoch_length - 1;
    let effective = (block / epoch_length + 2) * epoch_length;
    assert_eq!(validate["nextSetChosenIn"], chosen_in);
    assert_eq!(validate["nextSetSignsFrom"], effective);

    // Until the end of the epoch only Alice signs and nothing is scheduled; then the set with
    // Bob is announced for `effective`.
    let deadline = Instant::now() + Duration::from_secs(60);
    let announced = loop {
        let set = run(&keystore, ws, &["staking", "validators", "--json"]);
        set.assert_code(0);
        let set = set.json();
        let height = set["height"].as_u64().unwrap();
        if !set["scheduled"].is_null() {
            assert!(height > chosen_in, "{set}");
            break set;
        }
        assert!(
            height <= chosen_in + 1,
            "no change announced by #{height}: {set}"
        );
        assert!(Instant::now() < deadline, "no change announced: {set}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let height = announced["height"].as_u64().unwrap();
    assert!(
        height < effective,
        "read before the change took effect: {announced}"
    );
    let active = announced["validators"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{announced}");
    assert_eq!(active[0]["account"], alice);
    assert_eq!(active[0]["power"], 100_000);
    let scheduled = &announced["scheduled"];
    assert_eq!(scheduled["effectiveHeight"], effective);
    let next = scheduled["validators"].as_array().unwrap();
    assert_eq!(next.len(), 2, "{announced}");
    let bob_entry = next
        .iter()
        .find(|v| v["account"] == bob)
        .expect("Bob scheduled");
    assert_eq!(bob_entry["consensusKey"], bob);
    assert_eq!(bob_entry["power"], 2_000);
    assert!(next
        .iter()
        .any(|v| v["account"] == alice && v["power"] == 100_000));

    // The same height in text: the state it is read from is fixed, so the answer is too.
    let text = run(
        &keystore,
        ws,
        &["staking", "validators", "--at", &height.to_string()],
    );
    text.assert_code(0);
    assert!(
        text.stdout.contains(&format!(
            "validators of height {height}: 1 validator, total power 100000"
        )),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(&format!(
            "scheduled from height {effective}: 2 validators, total power 102000"
        )),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains(&format!("{bob}  consensus key {bob}  power 2000")),
        "{}",
        text.stdout
    );
    // Height 1 was signed by Alice alone, with nothing scheduled then.
    let first = run(
        &keystore,
        ws,
        &["staking", "validators", "--at", "1", "--json"],
    );
    first.assert_code(0);
    let first = first.json();
    assert_eq!(first["height"], 1);
    assert_eq!(first["validators"].as_array().unwrap().len(), 1);
    assert!(first["scheduled"].is_null());

    // Chill (over HTTP, polled until final), then unbond everything.
    let chill = run(
        &keystore,
        &node.http_url,
        &["staking", "chill", "--from", "bob"],
    );
    chill.assert_code(0);
    assert!(
        chill.stdout.contains("is no longer a validator candidate"),
        "{}",
        chill.stdout
    );
    let unbond = run(
        &keystore,
        ws,
        &[
            "staking", "unbond", "2000", "--from", "bob", "--output", "json",
        ],
    );
    unbond.assert_code(0);
    let unbond = unbond.json();
    assert_eq!(unbond["amount"], (2_000 * GRID).to_string());
    assert_eq!(unbond["bonded"], "0");
    let unbond_block = unbond["transaction"]["blockNumber"].as_u64().unwrap();
    assert_eq!(unbond["releaseAt"], unbond_block + 20); // dev unbondingPeriod
    let balance = run(&keystore, ws, &["balance", "bob", "--output", "json"]);
    assert_eq!(balance.json()["reserved"], (2_000 * GRID).to_string());

    // Nothing has matured yet.
    let withdraw = run(&keystore, ws, &["staking", "withdraw", "--from", "bob"]);
    withdraw.assert_code(5);
    assert!(
        withdraw.stderr.contains("validators::NothingToWithdraw"),
        "{}",
        withdraw.stderr
    );
}
