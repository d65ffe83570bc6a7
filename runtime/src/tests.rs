use super::*;
use gridchain_primitives::{decode_untrusted, AccountId, ChainContext, Hash, Pair, StateChanges};
use proptest::prelude::*;
use std::collections::BTreeMap;

const UNIT: u128 = 1_000_000_000_000;

fn chain() -> ChainContext {
    ChainContext {
        genesis_hash: Hash::of(b"test genesis"),
        spec_version: SPEC_VERSION,
    }
}

fn genesis() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let config = GenesisConfig {
        balances: vec![
            (Pair::dev("Alice").public(), 100 * UNIT),
            (Pair::dev("Bob").public(), 10 * UNIT),
        ],
        ..Default::default()
    };
    apply(BTreeMap::new(), build_genesis(&config).unwrap())
}

fn apply(
    mut state: BTreeMap<Vec<u8>, Vec<u8>>,
    changes: StateChanges,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    for (k, v) in changes {
        match v {
            Some(v) => state.insert(k, v),
            None => state.remove(&k),
        };
    }
    state
}

fn transfer(from: &Pair, to: AccountId, amount: u128, nonce: u64) -> Extrinsic {
    Extrinsic::sign(
        from,
        Call::Balances(balances::Call::Transfer { dest: to, amount }),
        nonce,
        100,
        0,
        chain(),
    )
}

fn free(state: &BTreeMap<Vec<u8>, Vec<u8>>, who: &AccountId) -> u128 {
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(state));
    balances::account(&ctx, who).free
}

fn issuance(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> u128 {
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(state));
    balances::total_issuance(&ctx)
}

fn builder(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> BlockBuilder<'_> {
    BlockBuilder::new(
        state,
        chain(),
        Hash::of(b"parent"),
        1,
        1_000,
        Pair::dev("Charlie").public(),
    )
    .unwrap()
}

#[test]
fn transfer_block_pays_fees_to_proposer_and_conserves_issuance() {
    let state = genesis();
    let (alice, bob, charlie) = (Pair::dev("Alice"), Pair::dev("Bob"), Pair::dev("Charlie"));
    let mut b = builder(&state);
    let xt = transfer(&alice, bob.public(), 5 * UNIT, 0);
    let len = xt.encoded_size();
    let fee = extrinsic_fee(&xt, len);
    assert_eq!(b.push(xt, len, true).unwrap(), Ok(()));
    let built = b.finish();
    let state = apply(state, built.changes);
    assert_eq!(free(&state, &alice.public()), 95 * UNIT - fee);
    assert_eq!(free(&state, &bob.public()), 15 * UNIT);
    assert_eq!(free(&state, &charlie.public()), fee);
    assert_eq!(issuance(&state), 110 * UNIT);
    assert!(built
        .events
        .iter()
        .any(|r| r.event == Event::System(system::Event::ExtrinsicSuccess { fee })));
}

#[test]
fn failed_call_pays_fee_bumps_nonce_and_changes_nothing_else() {
    let state = genesis();
    let bob = Pair::dev("Bob");
    let mut b = builder(&state);
    let xt = transfer(&bob, Pair::dev("Alice").public(), 1_000 * UNIT, 0);
    let len = xt.encoded_size();
    let fee = extrinsic_fee(&xt, len);
    let outcome = b.push(xt, len, true).unwrap();
    assert_eq!(outcome.unwrap_err().error, "InsufficientBalance");
    let built = b.finish();
    let state = apply(state, built.changes);
    assert_eq!(free(&state, &bob.public()), 10 * UNIT - fee);
    assert_eq!(free(&state, &Pair::dev("Alice").public()), 100 * UNIT);
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(&state));
    assert_eq!(system::nonce(&ctx, &bob.public()), 1);
    assert!(!built
        .events
        .iter()
        .any(|r| matches!(r.event, Event::Balances(balances::Event::Transfer { .. }))));
}

#[test]
fn invalid_transactions_are_refused_and_change_nothing() {
    let state = genesis();
    let alice = Pair::dev("Alice");
    let bob = Pair::dev("Bob").public();
    let mut b = builder(&state);

    // Signed for another chain.
    let other = ChainContext {
        genesis_hash: Hash::of(b"other"),
        ..chain()
    };
    let xt = Extrinsic::sign(
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: bob,
            amount: 1,
        }),
        0,
        100,
        0,
        other,
    );
    assert_eq!(
        b.push(xt.clone(), xt.encoded_size(), true),
        Err(InvalidTransaction::BadSignature)
    );
    // Signed for another runtime version.
    let old = ChainContext {
        spec_version: SPEC_VERSION + 1,
        ..chain()
    };
    let xt = Extrinsic::sign(
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: bob,
            amount: 1,
        }),
        0,
        100,
        0,
        old,
    );
    assert_eq!(
        b.push(xt.clone(), xt.encoded_size(), true),
        Err(InvalidTransaction::BadSignature)
    );
    // Future nonce.
    let xt = transfer(&alice, bob, 1, 5);
    assert_eq!(
        b.push(xt.clone(), xt.encoded_size(), true),
        Err(InvalidTransaction::Future {
            expected: 0,
            got: 5
        })
    );
    // Expired.
    let xt = Extrinsic::sign(
        &alice,
        Call::Balances(balances::Call::Transfer {
            dest: bob,
            amount: 1,
        }),
        0,
        0,
        0,
        chain(),
    );
    assert_eq!(
        b.push(xt.clone(), xt.encoded_size(), true),
        Err(InvalidTransaction::Expired {
            valid_until: 0,
            block: 1
        })
    );
    // Too large.
    assert!(matches!(
        b.push(transfer(&alice, bob, 1, 0), MAX_EXTRINSIC_BYTES + 1, true),
        Err(InvalidTransaction::TooLarge { .. })
    ));
    // Cannot pay the fee.
    let poor = Pair::dev("Nobody");
    let xt = transfer(&poor, bob, 1, 0);
    assert!(matches!(
        b.push(xt.clone(), xt.encoded_size(), true),
        Err(InvalidTransaction::Payment { available: 0, .. })
    ));
    assert!(b.is_empty());

    // Stale after one good transaction.
    let xt = transfer(&alice, bob, 1, 0);
    b.push(xt.clone(), xt.encoded_size(), true)
        .unwrap()
        .unwrap();
    assert_eq!(
        b.push(xt.clone(), xt.encoded_size(), true),
        Err(InvalidTransaction::Stale {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(b.len(), 1);
}

#[test]
fn validate_transaction_matches_pool_rules() {
    let state = genesis();
    let alice = Pair::dev("Alice");
    let bob = Pair::dev("Bob").public();
    let xt = transfer(&alice, bob, 1, 3);
    let v = validate_transaction(&state, chain(), 1, &xt, xt.encoded_size()).unwrap();
    assert_eq!(v.account_nonce, 0);
    assert_eq!(v.fee, extrinsic_fee(&xt, xt.encoded_size()));
    let mut bad = xt.clone();
    bad.signature.0[0] ^= 1;
    assert_eq!(
        validate_transaction(&state, chain(), 1, &bad, bad.encoded_size()),
        Err(InvalidTransaction::BadSignature)
    );
    assert!(matches!(
        validate_transaction(&state, chain(), 101, &xt, xt.encoded_size()),
        Err(InvalidTransaction::Expired { .. })
    ));
}

#[test]
fn executing_a_built_block_reproduces_it_and_detects_tampering() {
    let state = genesis();
    let alice = Pair::dev("Alice");
    let mut b = builder(&state);
    for nonce in 0..10 {
        let xt = transfer(&alice, Pair::dev("Bob").public(), UNIT, nonce);
        b.push(xt.clone(), xt.encoded_size(), true)
            .unwrap()
            .unwrap();
    }
    let built = b.finish();
    let header = built.header(Hash::of(b"root"));
    let block = Block {
        header,
        extrinsics: built.extrinsics.clone(),
    };
    let again = execute_block(&state, chain(), &block).unwrap();
    assert_eq!(again.changes, built.changes);
    assert_eq!(again.events, built.events);

    let mut reordered = block.clone();
    reordered.extrinsics.swap(0, 1);
    assert!(matches!(
        execute_block(&state, chain(), &reordered),
        Err(BlockError::InvalidExtrinsic {
            index: 0,
            error: InvalidTransaction::Future { .. }
        })
    ));
    let mut forged = block.clone();
    forged.extrinsics[3].signature.0[5] ^= 1;
    assert_eq!(
        execute_block(&state, chain(), &forged).err(),
        Some(BlockError::InvalidExtrinsic {
            index: 3,
            error: InvalidTransaction::BadSignature
        })
    );
    let mut dropped = block.clone();
    dropped.extrinsics.pop();
    assert!(matches!(
        execute_block(&state, chain(), &dropped),
        Err(BlockError::ExtrinsicsRoot { .. })
    ));
}

#[test]
fn block_time_must_increase() {
    let state = genesis();
    let b = builder(&state);
    let state = apply(state.clone(), b.finish().changes);
    let err = BlockBuilder::new(&state, chain(), Hash::ZERO, 2, 1_000, AccountId::default()).err();
    assert!(matches!(err, Some(BlockError::Timestamp(_))));
}

#[test]
fn genesis_refuses_duplicates() {
    let alice = Pair::dev("Alice").public();
    let config = GenesisConfig {
        balances: vec![(alice, 1), (alice, 2)],
        ..Default::default()
    };
    assert!(build_genesis(&config).is_err());
}

#[test]
fn call_json_shape() {
    let call = Call::Balances(balances::Call::Transfer {
        dest: Pair::dev("Bob").public(),
        amount: 7,
    });
    let json = serde_json::to_value(&call).unwrap();
    assert_eq!(json["pallet"], "balances");
    assert_eq!(json["call"], "transfer");
    assert_eq!(json["amount"], "7");
}

fn staking_genesis(reward: u128) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let config = GenesisConfig {
        balances: vec![
            (Pair::dev("Alice").public(), 1_000 * UNIT),
            (Pair::dev("Bob").public(), 1_000 * UNIT),
        ],
        validators: vec![(Pair::dev("Alice").public(), 100 * UNIT)],
        staking: validators::StakingConfig {
            epoch_length: 4,
            unbonding_period: 8,
            max_validators: 10,
            min_bond: UNIT,
            block_reward: reward,
        },
        ..Default::default()
    };
    apply(BTreeMap::new(), build_genesis(&config).unwrap())
}

/// Builds block `number` on `state` with `xts`, re-executes it as an importing node would, and
/// returns the state after it.
fn next_block(
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    number: u64,
    xts: Vec<Extrinsic>,
) -> (BTreeMap<Vec<u8>, Vec<u8>>, BuiltBlock) {
    let mut b = BlockBuilder::new(
        &state,
        chain(),
        Hash::of(&number.to_le_bytes()),
        number,
        1_000 * number,
        Pair::dev("Charlie").public(),
    )
    .unwrap();
    for xt in xts {
        let len = xt.encoded_size();
        b.push(xt, len, true).unwrap().unwrap();
    }
    let built = b.finish();
    let block = Block {
        header: built.header(Hash::of(b"root")),
        extrinsics: built.extrinsics.clone(),
    };
    let again = execute_block(&state, chain(), &block).unwrap();
    assert_eq!(again.changes, built.changes);
    (apply(state, built.changes.clone()), built)
}

#[test]
fn genesis_bonds_validators_from_their_balance() {
    let state = staking_genesis(0);
    let alice = Pair::dev("Alice").public();
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(&state));
    assert_eq!(
        balances::account(&ctx, &alice),
        balances::AccountData {
            free: 900 * UNIT,
            reserved: 100 * UNIT
        }
    );
    assert_eq!(issuance(&state), 2_000 * UNIT);
    assert_eq!(
        validators::validator_set_at(&state, 1),
        vec![validators::ValidatorInfo {
            account: alice,
            consensus_key: alice,
            power: 100
        }]
    );
    // Unfunded or invalid staking genesis is refused.
    let config = GenesisConfig {
        validators: vec![(Pair::dev("Nobody").public(), 100 * UNIT)],
        ..Default::default()
    };
    assert!(matches!(
        build_genesis(&config),
        Err(GenesisError::Validators(_))
    ));
}

#[test]
fn validator_set_changes_exactly_at_the_announced_height() {
    let (alice, bob) = (Pair::dev("Alice"), Pair::dev("Bob"));
    let reward = UNIT / 10;
    let mut state = staking_genesis(reward);
    let initial_issuance = issuance(&state);
    let old = validators::validator_set_at(&state, 1);
    let new = {
        let mut set = vec![
            validators::ValidatorInfo {
                account: alice.public(),
                consensus_key: alice.public(),
                power: 100,
            },
            validators::ValidatorInfo {
                account: bob.public(),
                consensus_key: bob.public(),
                power: 250,
            },
        ];
        set.sort_by(|a, b| a.consensus_key.cmp(&b.consensus_key));
        set
    };
    // Epochs of 4 blocks: 0..=3, 4..=7, 8..=11. Bob bonds and validates in block 2; the set is
    // chosen at the end of block 3 and signs from height 8 on.
    let mut announced = None;
    let mut seen = Vec::new();
    let mut states = vec![state.clone()];
    for number in 1..=12u64 {
        // The node asks the state after block number - 1 which set signs `number`.
        seen.push(validators::validator_set_at(&state, number));
        let xts = if number == 2 {
            let bond = Call::Validators(validators::Call::Bond { amount: 250 * UNIT });
            let validate = Call::Validators(validators::Call::Validate {
                consensus_key: bob.public(),
                commission: 10_000_000,
            });
            vec![
                Extrinsic::sign(&bob, bond, 0, 100, 0, chain()),
                Extrinsic::sign(&bob, validate, 1, 100, 0, chain()),
            ]
        } else {
            vec![]
        };
        let (after, built) = next_block(state, number, xts);
        state = after;
        states.push(state.clone());
        assert!(built.events.iter().any(|r| r.event
            == Event::Validators(validators::Event::BlockRewarded {
                proposer: Pair::dev("Charlie").public(),
                amount: reward
            })));
        if number == 3 {
            announced = validators::scheduled_change(&state);
            // Already known for the whole of epoch 2.
            for h in 8..12 {
                assert_eq!(validators::validator_set_at(&state, h), new);
            }
            assert_eq!(validators::validator_set_at(&state, 7), old);
        }
        if number == 7 {
            // Activated for height 8; the candidates did not change: nothing more scheduled.
            assert!(built.events.iter().any(|r| r.event
                == Event::Validators(validators::Event::ValidatorSetActivated {
                    since: 8,
                    count: 2
                })));
            assert_eq!(validators::scheduled_change(&state), None);
        }
    }
    assert_eq!(announced, Some((8, new.clone())));
    for (i, set) in seen.iter().enumerate() {
        let height = i as u64 + 1;
        let expected = if height < 8 { &old } else { &new };
        assert_eq!(set, expected, "set of height {height}");
    }
    // What sync assumes before checking certificate signatures: from any state, the signers of
    // every height up to the horizon are among the keys it names. Epoch ends 3 and 7: from the
    // state after block 2 only the old set is known (to 7); after 3, old and new (to 11).
    for (best, known_state) in states.iter().enumerate() {
        let (horizon, keys) = validators::signers_known_until(known_state, best as u64);
        let expected_horizon = (best as u64 + 1) / 4 * 4 + 7;
        assert_eq!(horizon, expected_horizon, "horizon from block {best}");
        for height in best as u64 + 1..=horizon.min(12) {
            let set = validators::validator_set_at(&states[height as usize - 1], height);
            for v in set {
                assert!(
                    keys.contains(&v.consensus_key),
                    "from block {best}: signer of height {height} unknown"
                );
            }
        }
    }
    let (_, keys_at_2) = validators::signers_known_until(&states[2], 2);
    assert!(!keys_at_2.contains(&bob.public()));
    // The only new tokens are the block rewards.
    assert_eq!(issuance(&state), initial_issuance + 12 * reward);
    let ctx: Context = Context::new(gridchain_primitives::Overlay::new(&state));
    assert_eq!(balances::account(&ctx, &bob.public()).reserved, 250 * UNIT);
}

#[test]
fn validators_call_json_shape() {
    let call = Call::Validators(validators::Call::Unbond { amount: 3 });
    let json = serde_json::to_value(&call).unwrap();
    assert_eq!(json["pallet"], "validators");
    assert_eq!(json["call"], "unbond");
    assert_eq!(json["amount"], "3");
    // Appended last: the existing pallets keep their SCALE indices.
    assert_eq!(call.encode()[0], 6);
    assert_eq!(
        Event::Validators(validators::Event::Chilled {
            who: AccountId::default()
        })
        .encode()[0],
        7
    );
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_untrusted::<Extrinsic>("extrinsic", &bytes);
        let _ = decode_untrusted::<Block>("block", &bytes);
    }

    #[test]
    fn decoding_mutated_extrinsics_never_panics(flip in 0usize..200, byte in any::<u8>()) {
        let mut bytes = transfer(&Pair::dev("Alice"), Pair::dev("Bob").public(), 1, 0).encode();
        let i = flip % bytes.len();
        bytes[i] = byte;
        let _ = decode_untrusted::<Extrinsic>("extrinsic", &bytes);
        bytes.truncate(i);
        prop_assert!(decode_untrusted::<Extrinsic>("extrinsic", &bytes).is_err());
    }
}

// ---- weights and fees (issue #13 item 5) ----

fn signed(call: Call, nonce: u64) -> Extrinsic {
    Extrinsic::sign(&Pair::dev("Alice"), call, nonce, 100, 0, chain())
}

/// A remark padded to exactly `len` encoded bytes.
fn remark_of_len(len: usize) -> Extrinsic {
    let base = signed(
        Call::System(system::Call::Remark {
            data: gridchain_primitives::Bytes(vec![]),
        }),
        0,
    )
    .encoded_size();
    // The data's compact length prefix grows from 1 to 2 bytes at 64 and 4 at 16,384.
    let mut n = len - base;
    loop {
        let xt = signed(
            Call::System(system::Call::Remark {
                data: gridchain_primitives::Bytes(vec![0; n]),
            }),
            0,
        );
        match xt.encoded_size().cmp(&len) {
            std::cmp::Ordering::Equal => return xt,
            std::cmp::Ordering::Greater => n -= 1,
            std::cmp::Ordering::Less => unreachable!("shrinking the data never undershoots"),
        }
    }
}

fn reserve_call(workloads: usize) -> Call {
    use reservations::{Deployment, Workload, WorkloadSpec};
    Call::Reservations(reservations::Call::Reserve {
        node_id: 1,
        deployment: Deployment {
            metadata: String::new(),
            workloads: (0..workloads)
                .map(|i| Workload {
                    name: format!("v{i}"),
                    spec: WorkloadSpec::Volume { size: tfgrid::GIB },
                })
                .collect(),
        },
    })
}

#[test]
fn the_weights_are_measured() {
    // A weight of 0 would make the block weight limit and the weight fee meaningless: the
    // bootstrap file had zeros, the benchmark writes real figures.
    assert!(
        weight::call_weight(&Call::Balances(balances::Call::Transfer {
            dest: Pair::dev("Bob").public(),
            amount: 1
        }))
        .compute
            > 0
    );
    let one = signed(reserve_call(1), 0);
    assert!(weight::call_weight(&one.call).per_byte > 0);
}

#[test]
fn a_call_that_costs_more_work_pays_more_than_one_of_the_same_size() {
    // On the old rule (base + bytes) both paid the same.
    let reserve = signed(reserve_call(reservations::MAX_WORKLOADS), 0);
    let len = reserve.encoded_size();
    let remark = remark_of_len(len);
    assert_eq!(remark.encoded_size(), len);
    let reserve_weight = weight::extrinsic_weight(&reserve.call, len);
    let remark_weight = weight::extrinsic_weight(&remark.call, len);
    assert!(
        reserve_weight > remark_weight,
        "reserve {reserve_weight} ps, remark {remark_weight} ps"
    );
    assert!(extrinsic_fee(&reserve, len) > extrinsic_fee(&remark, len));
    assert_eq!(
        extrinsic_fee(&reserve, len),
        BASE_FEE + BYTE_FEE * len as u128 + WEIGHT_FEE * reserve_weight as u128
    );
}

#[test]
fn every_call_at_the_largest_size_fits_in_a_block() {
    // A call heavier than a block's budget could never be included: `TooHeavy` would refuse it
    // at the pool. None of today's calls comes close, at the largest extrinsic.
    let calls = [
        reserve_call(reservations::MAX_WORKLOADS),
        remark_of_len(MAX_EXTRINSIC_BYTES).call,
        Call::Validators(validators::Call::Chill),
    ];
    for call in calls {
        let weight = weight::extrinsic_weight(&call, MAX_EXTRINSIC_BYTES);
        assert!(
            weight < weight::MAX_EXTRINSICS_WEIGHT / 10,
            "{call:?} weighs {weight}"
        );
    }
}

#[test]
fn a_block_holds_extrinsics_up_to_its_weight_limit_and_no_further() {
    let mut config = GenesisConfig {
        balances: vec![(Pair::dev("Alice").public(), 1_000_000 * UNIT)],
        ..Default::default()
    };
    config.balances.push((Pair::dev("Bob").public(), UNIT));
    let state = apply(BTreeMap::new(), build_genesis(&config).unwrap());
    let mut b = builder(&state);
    let bob = Pair::dev("Bob").public();
    let one = transfer(&Pair::dev("Alice"), bob, 1, 0);
    let per_transfer = weight::extrinsic_weight(&one.call, one.encoded_size());
    let fits = (weight::MAX_EXTRINSICS_WEIGHT / per_transfer) as u64;
    // The byte limit is not what stops this block.
    assert!(fits as usize * one.encoded_size() < MAX_BLOCK_BYTES);
    let mut nonce = 0;
    let refused = loop {
        let xt = Extrinsic::sign(
            &Pair::dev("Alice"),
            one.call.clone(),
            nonce,
            100,
            0,
            chain(),
        );
        let len = xt.encoded_size();
        match b.push(xt.clone(), len, false) {
            Ok(outcome) => outcome.unwrap(),
            Err(error) => break (xt, error),
        }
        nonce += 1;
        assert!(nonce <= fits, "more transfers than the weight limit allows");
    };
    assert_eq!(refused.1, InvalidTransaction::ExhaustsResources);
    assert_eq!(nonce, fits);
    assert!(b.block_weight() <= weight::MAX_EXTRINSICS_WEIGHT);
    assert!(b.block_weight() + per_transfer > weight::MAX_EXTRINSICS_WEIGHT);
    // Nothing of the refused one entered the block; it is valid for the next.
    assert_eq!(b.len() as u64, fits);
    let built = b.finish();
    let state = apply(state, built.changes);
    let mut next = BlockBuilder::new(
        &state,
        chain(),
        Hash::of(b"parent"),
        2,
        2_000,
        Pair::dev("Charlie").public(),
    )
    .unwrap();
    let len = refused.0.encoded_size();
    assert_eq!(next.push(refused.0, len, false).unwrap(), Ok(()));
}
