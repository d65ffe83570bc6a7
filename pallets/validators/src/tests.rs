#![allow(clippy::unwrap_used)]

use super::*;
use gridchain_primitives::{Hash, Overlay, Pair, StateChanges};
use proptest::prelude::*;
use std::collections::BTreeMap;

const UNIT: Balance = POWER_UNIT;

#[derive(Debug, Clone, PartialEq)]
enum TestEvent {
    Balances(pallet_balances::Event),
    Validators(Event),
}
impl From<pallet_balances::Event> for TestEvent {
    fn from(e: pallet_balances::Event) -> Self {
        TestEvent::Balances(e)
    }
}
impl From<Event> for TestEvent {
    fn from(e: Event) -> Self {
        TestEvent::Validators(e)
    }
}

type Ctx<'a> = Context<'a, TestEvent>;

fn acc(name: &str) -> AccountId {
    Pair::dev(name).public()
}
fn alice() -> AccountId {
    acc("Alice")
}
fn bob() -> AccountId {
    acc("Bob")
}
fn charlie() -> AccountId {
    acc("Charlie")
}
fn dave() -> AccountId {
    acc("Dave")
}

fn test_config() -> StakingConfig {
    StakingConfig {
        epoch_length: 5,
        unbonding_period: 10,
        max_validators: 3,
        min_bond: 10 * UNIT,
        block_reward: 0,
    }
}

/// Alice, Bob, Charlie and Dave funded with 1,000 units each; Alice a genesis validator with
/// 100; block number 0.
fn with_ctx(f: impl FnOnce(&mut Ctx)) {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    for who in [alice(), bob(), charlie(), dave()] {
        pallet_balances::endow(&mut ctx, who, 1_000 * UNIT).unwrap();
    }
    build_genesis(&mut ctx, &test_config(), &[(alice(), 100 * UNIT)]).unwrap();
    f(&mut ctx);
}

fn events(ctx: &Ctx) -> Vec<Event> {
    ctx.events()
        .iter()
        .filter_map(|r| match &r.event {
            TestEvent::Validators(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn last_event(ctx: &Ctx) -> Event {
    events(ctx).pop().expect("an event")
}

fn set_block(ctx: &mut Ctx, number: BlockNumber) {
    pallet_system::on_initialize(ctx, number, Hash::ZERO);
}

/// Runs the blocks after the current one up to `last` inclusive, each ending with `on_finalize`.
fn run_to(ctx: &mut Ctx, last: BlockNumber) {
    let from = pallet_system::block_number(ctx) + 1;
    for n in from..=last {
        set_block(ctx, n);
        on_finalize(ctx, n, alice());
    }
}

fn reserved(ctx: &Ctx, who: &AccountId) -> Balance {
    pallet_balances::account(ctx, who).reserved
}
fn free(ctx: &Ctx, who: &AccountId) -> Balance {
    pallet_balances::account(ctx, who).free
}

fn bond_and_validate(ctx: &mut Ctx, who: AccountId, amount: Balance) {
    dispatch(ctx, who, Call::Bond { amount }).unwrap();
    dispatch(
        ctx,
        who,
        Call::Validate {
            consensus_key: who,
            commission: 0,
        },
    )
    .unwrap();
}

fn info(who: AccountId, power: u64) -> ValidatorInfo {
    ValidatorInfo {
        account: who,
        consensus_key: who,
        power,
    }
}

fn sorted(mut set: Vec<ValidatorInfo>) -> Vec<ValidatorInfo> {
    set.sort_by_key(|v| v.consensus_key);
    set
}

/// The overlay's changes applied to an empty map: the state a node would hand to the read API.
fn materialize(changes: StateChanges) -> BTreeMap<Vec<u8>, Vec<u8>> {
    changes
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

// ---- genesis ----

#[test]
fn genesis_bonds_from_the_funded_balance_and_sets_the_active_set() {
    with_ctx(|ctx| {
        assert_eq!(free(ctx, &alice()), 900 * UNIT);
        assert_eq!(reserved(ctx, &alice()), 100 * UNIT);
        assert_eq!(pallet_balances::total_issuance(ctx), 4_000 * UNIT);
        assert_eq!(
            ledger(ctx, &alice()),
            Some(Ledger {
                bonded: 100 * UNIT,
                unbonding: vec![]
            })
        );
        assert_eq!(
            candidate(ctx, &alice()),
            Some(Candidate {
                consensus_key: alice(),
                commission: 0
            })
        );
        assert_eq!(key_owner(ctx, &alice()), Some(alice()));
        assert_eq!(
            active_set(ctx),
            ValidatorSet {
                since: 0,
                validators: vec![info(alice(), 100)]
            }
        );
        assert_eq!(scheduled_set(ctx), None);
        assert_eq!(config(ctx), test_config());
    });
}

#[test]
fn genesis_refuses_bad_validators_and_parameters() {
    let backend = BTreeMap::new();
    let mut ctx: Ctx = Context::new(Overlay::new(&backend));
    pallet_balances::endow(&mut ctx, alice(), 50 * UNIT).unwrap();
    let ok = test_config();
    // Not funded enough.
    let err = build_genesis(&mut ctx, &ok, &[(alice(), 100 * UNIT)]).unwrap_err();
    assert!(err.contains("insufficient free balance"), "{err}");
    // Below the minimum bond.
    let err = build_genesis(&mut ctx, &ok, &[(alice(), UNIT)]).unwrap_err();
    assert!(err.contains("minimum bond"), "{err}");
    // Listed twice.
    let err =
        build_genesis(&mut ctx, &ok, &[(alice(), 10 * UNIT), (alice(), 10 * UNIT)]).unwrap_err();
    assert!(err.contains("twice"), "{err}");
    // More than max_validators.
    let four: Vec<_> = ["A", "B", "C", "D"]
        .iter()
        .map(|n| (acc(n), UNIT))
        .collect();
    assert!(build_genesis(&mut ctx, &ok, &four)
        .unwrap_err()
        .contains("maxValidators"));
    // Parameters.
    for bad in [
        StakingConfig {
            epoch_length: 0,
            ..ok.clone()
        },
        StakingConfig {
            max_validators: 0,
            ..ok.clone()
        },
        StakingConfig {
            max_validators: MAX_VALIDATORS + 1,
            ..ok.clone()
        },
        StakingConfig {
            min_bond: UNIT - 1,
            ..ok.clone()
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
        assert!(build_genesis(&mut ctx, &bad, &[]).is_err());
    }
    assert_eq!(StakingConfig::default().check(), Ok(()));
}

// ---- bond ----

#[test]
fn bond_reserves_free_balance_and_keeps_issuance() {
    with_ctx(|ctx| {
        dispatch(ctx, bob(), Call::Bond { amount: 20 * UNIT }).unwrap();
        assert_eq!(
            last_event(ctx),
            Event::Bonded {
                who: bob(),
                amount: 20 * UNIT
            }
        );
        assert!(ctx.events().iter().any(|r| r.event
            == TestEvent::Balances(pallet_balances::Event::Reserved {
                who: bob(),
                amount: 20 * UNIT
            })));
        // Adding to a bond may be below the minimum by itself.
        dispatch(ctx, bob(), Call::Bond { amount: UNIT }).unwrap();
        assert_eq!(ledger(ctx, &bob()).unwrap().bonded, 21 * UNIT);
        assert_eq!(reserved(ctx, &bob()), 21 * UNIT);
        assert_eq!(free(ctx, &bob()), 979 * UNIT);
        assert_eq!(pallet_balances::total_issuance(ctx), 4_000 * UNIT);
        // Bonding alone does not make a candidate.
        assert_eq!(candidate(ctx, &bob()), None);
    });
}

#[test]
fn bond_errors_change_nothing() {
    with_ctx(|ctx| {
        let before = events(ctx).len();
        assert_eq!(
            dispatch(ctx, bob(), Call::Bond { amount: 0 }),
            Err(Error::ZeroAmount)
        );
        assert_eq!(
            dispatch(ctx, bob(), Call::Bond { amount: 9 * UNIT }),
            Err(Error::BelowMinBond {
                bonded: 9 * UNIT,
                min_bond: 10 * UNIT
            })
        );
        assert_eq!(
            dispatch(
                ctx,
                bob(),
                Call::Bond {
                    amount: 1_001 * UNIT
                }
            ),
            Err(Error::InsufficientBalance {
                needed: 1_001 * UNIT,
                available: 1_000 * UNIT
            })
        );
        assert_eq!(
            dispatch(ctx, alice(), Call::Bond { amount: u128::MAX }),
            Err(Error::Overflow)
        );
        assert_eq!(ledger(ctx, &bob()), None);
        assert_eq!(reserved(ctx, &bob()), 0);
        assert_eq!(events(ctx).len(), before);
    });
}

// ---- unbond / withdraw ----

#[test]
fn unbond_queues_chunks_that_merge_within_a_block() {
    with_ctx(|ctx| {
        set_block(ctx, 3);
        dispatch(ctx, alice(), Call::Unbond { amount: 5 * UNIT }).unwrap();
        assert_eq!(
            last_event(ctx),
            Event::Unbonded {
                who: alice(),
                amount: 5 * UNIT,
                release_at: 13
            }
        );
        dispatch(ctx, alice(), Call::Unbond { amount: 5 * UNIT }).unwrap();
        set_block(ctx, 4);
        dispatch(ctx, alice(), Call::Unbond { amount: UNIT }).unwrap();
        assert_eq!(
            ledger(ctx, &alice()).unwrap(),
            Ledger {
                bonded: 89 * UNIT,
                unbonding: vec![
                    UnbondingChunk {
                        amount: 10 * UNIT,
                        release_at: 13
                    },
                    UnbondingChunk {
                        amount: UNIT,
                        release_at: 14
                    },
                ]
            }
        );
        // Still reserved, still a candidate.
        assert_eq!(reserved(ctx, &alice()), 100 * UNIT);
        assert!(candidate(ctx, &alice()).is_some());
    });
}

#[test]
fn unbond_errors_change_nothing() {
    with_ctx(|ctx| {
        let before = events(ctx).len();
        assert_eq!(
            dispatch(ctx, bob(), Call::Unbond { amount: UNIT }),
            Err(Error::NotBonded)
        );
        assert_eq!(
            dispatch(ctx, alice(), Call::Unbond { amount: 0 }),
            Err(Error::ZeroAmount)
        );
        assert_eq!(
            dispatch(ctx, alice(), Call::Unbond { amount: 101 * UNIT }),
            Err(Error::InsufficientBond {
                requested: 101 * UNIT,
                bonded: 100 * UNIT
            })
        );
        assert_eq!(
            dispatch(ctx, alice(), Call::Unbond { amount: 95 * UNIT }),
            Err(Error::BelowMinBond {
                bonded: 5 * UNIT,
                min_bond: 10 * UNIT
            })
        );
        assert_eq!(ledger(ctx, &alice()).unwrap().bonded, 100 * UNIT);
        assert_eq!(events(ctx).len(), before);
    });
}

#[test]
fn unbond_with_only_unbonding_left_is_not_bonded() {
    with_ctx(|ctx| {
        dispatch(ctx, alice(), Call::Unbond { amount: 100 * UNIT }).unwrap();
        assert_eq!(
            dispatch(ctx, alice(), Call::Unbond { amount: UNIT }),
            Err(Error::NotBonded)
        );
    });
}

#[test]
fn too_many_unbonding_chunks() {
    with_ctx(|ctx| {
        for n in 1..=MAX_UNBONDING_CHUNKS as u64 {
            set_block(ctx, n);
            dispatch(ctx, alice(), Call::Unbond { amount: 1 }).unwrap();
        }
        set_block(ctx, 100);
        assert_eq!(
            dispatch(ctx, alice(), Call::Unbond { amount: 1 }),
            Err(Error::TooManyUnbondingChunks)
        );
        // Withdrawing the matured chunks makes room again.
        dispatch(ctx, alice(), Call::WithdrawUnbonded).unwrap();
        dispatch(ctx, alice(), Call::Unbond { amount: 1 }).unwrap();
    });
}

#[test]
fn unbonding_everything_ends_the_candidacy() {
    with_ctx(|ctx| {
        dispatch(ctx, alice(), Call::Unbond { amount: 100 * UNIT }).unwrap();
        let evs = events(ctx);
        assert_eq!(
            evs[evs.len() - 2..],
            [
                Event::Unbonded {
                    who: alice(),
                    amount: 100 * UNIT,
                    release_at: 10
                },
                Event::Chilled { who: alice() }
            ]
        );
        assert_eq!(candidate(ctx, &alice()), None);
        assert_eq!(key_owner(ctx, &alice()), None);
        assert!(candidates(ctx).is_empty());
    });
}

#[test]
fn withdraw_releases_only_matured_chunks() {
    with_ctx(|ctx| {
        set_block(ctx, 1);
        dispatch(ctx, alice(), Call::Unbond { amount: 30 * UNIT }).unwrap(); // at 11
        set_block(ctx, 2);
        dispatch(ctx, alice(), Call::Unbond { amount: 60 * UNIT }).unwrap(); // at 12
        set_block(ctx, 10);
        assert_eq!(
            dispatch(ctx, alice(), Call::WithdrawUnbonded),
            Err(Error::NothingToWithdraw)
        );
        set_block(ctx, 11);
        dispatch(ctx, alice(), Call::WithdrawUnbonded).unwrap();
        assert_eq!(
            last_event(ctx),
            Event::Withdrawn {
                who: alice(),
                amount: 30 * UNIT
            }
        );
        assert!(ctx.events().iter().any(|r| r.event
            == TestEvent::Balances(pallet_balances::Event::Unreserved {
                who: alice(),
                amount: 30 * UNIT
            })));
        assert_eq!(free(ctx, &alice()), 930 * UNIT);
        assert_eq!(reserved(ctx, &alice()), 70 * UNIT);
        assert_eq!(
            dispatch(ctx, alice(), Call::WithdrawUnbonded),
            Err(Error::NothingToWithdraw)
        );
        // Unbond the rest; withdraw everything once all matured: the ledger goes away.
        dispatch(ctx, alice(), Call::Unbond { amount: 10 * UNIT }).unwrap(); // at 21
        set_block(ctx, 21);
        dispatch(ctx, alice(), Call::WithdrawUnbonded).unwrap();
        assert_eq!(
            last_event(ctx),
            Event::Withdrawn {
                who: alice(),
                amount: 70 * UNIT
            }
        );
        assert_eq!(ledger(ctx, &alice()), None);
        assert_eq!(reserved(ctx, &alice()), 0);
        assert_eq!(free(ctx, &alice()), 1_000 * UNIT);
        assert_eq!(
            dispatch(ctx, alice(), Call::WithdrawUnbonded),
            Err(Error::NotBonded)
        );
    });
}

// ---- validate / chill ----

#[test]
fn validate_registers_and_updates_a_candidate() {
    with_ctx(|ctx| {
        dispatch(ctx, bob(), Call::Bond { amount: 50 * UNIT }).unwrap();
        let key = acc("BobConsensus");
        dispatch(
            ctx,
            bob(),
            Call::Validate {
                consensus_key: key,
                commission: 50_000_000,
            },
        )
        .unwrap();
        assert_eq!(
            last_event(ctx),
            Event::Validating {
                who: bob(),
                consensus_key: key,
                commission: 50_000_000
            }
        );
        assert_eq!(
            candidate(ctx, &bob()),
            Some(Candidate {
                consensus_key: key,
                commission: 50_000_000
            })
        );
        assert_eq!(key_owner(ctx, &key), Some(bob()));
        let mut expected = vec![alice(), bob()];
        expected.sort();
        assert_eq!(candidates(ctx), expected);

        // A new key frees the old one; the list does not grow.
        let key2 = acc("BobConsensus2");
        dispatch(
            ctx,
            bob(),
            Call::Validate {
                consensus_key: key2,
                commission: PERBILL,
            },
        )
        .unwrap();
        assert_eq!(key_owner(ctx, &key), None);
        assert_eq!(key_owner(ctx, &key2), Some(bob()));
        assert_eq!(candidates(ctx), expected);
        // Same key again: only the commission changes.
        dispatch(
            ctx,
            bob(),
            Call::Validate {
                consensus_key: key2,
                commission: 1,
            },
        )
        .unwrap();
        assert_eq!(candidate(ctx, &bob()).unwrap().commission, 1);
        assert_eq!(key_owner(ctx, &key2), Some(bob()));
    });
}

#[test]
fn validate_errors_change_nothing() {
    with_ctx(|ctx| {
        let before = events(ctx).len();
        assert_eq!(
            dispatch(
                ctx,
                bob(),
                Call::Validate {
                    consensus_key: bob(),
                    commission: 0
                }
            ),
            Err(Error::NotBonded)
        );
        dispatch(ctx, bob(), Call::Bond { amount: 10 * UNIT }).unwrap();
        let before_bond = events(ctx).len();
        assert!(before_bond > before);
        assert_eq!(
            dispatch(
                ctx,
                bob(),
                Call::Validate {
                    consensus_key: bob(),
                    commission: PERBILL + 1
                }
            ),
            Err(Error::InvalidCommission {
                commission: PERBILL + 1
            })
        );
        // The all-zero key is a small-order point; 0x0202.. does not decompress.
        for bad in [AccountId([0; 32]), AccountId([2; 32])] {
            assert_eq!(
                dispatch(
                    ctx,
                    bob(),
                    Call::Validate {
                        consensus_key: bad,
                        commission: 0
                    }
                ),
                Err(Error::InvalidConsensusKey)
            );
        }
        assert_eq!(
            dispatch(
                ctx,
                bob(),
                Call::Validate {
                    consensus_key: alice(),
                    commission: 0
                }
            ),
            Err(Error::ConsensusKeyInUse)
        );
        // A bond left below a raised minimum.
        set_config(
            ctx,
            &StakingConfig {
                min_bond: 20 * UNIT,
                ..test_config()
            },
        );
        assert_eq!(
            dispatch(
                ctx,
                bob(),
                Call::Validate {
                    consensus_key: bob(),
                    commission: 0
                }
            ),
            Err(Error::BelowMinBond {
                bonded: 10 * UNIT,
                min_bond: 20 * UNIT
            })
        );
        assert_eq!(candidate(ctx, &bob()), None);
        assert_eq!(candidates(ctx), vec![alice()]);
        assert_eq!(events(ctx).len(), before_bond);
    });
}

#[test]
fn too_many_candidates() {
    with_ctx(|ctx| {
        // Fill the list directly; the limit is what is under test.
        let filler: Vec<AccountId> = (0..MAX_CANDIDATES)
            .map(|i| {
                let mut raw = [0u8; 32];
                raw[..8].copy_from_slice(&(i as u64).to_be_bytes());
                AccountId(raw)
            })
            .collect();
        ctx.overlay.put_encoded(candidates_key(), &filler);
        dispatch(ctx, bob(), Call::Bond { amount: 10 * UNIT }).unwrap();
        assert_eq!(
            dispatch(
                ctx,
                bob(),
                Call::Validate {
                    consensus_key: bob(),
                    commission: 0
                }
            ),
            Err(Error::TooManyCandidates)
        );
        // An existing candidate can still update.
        ctx.overlay.put_encoded(candidates_key(), &{
            let mut l = filler.clone();
            l[0] = alice();
            l
        });
        dispatch(
            ctx,
            alice(),
            Call::Validate {
                consensus_key: alice(),
                commission: 7,
            },
        )
        .unwrap();
    });
}

#[test]
fn chill_removes_the_candidate_and_frees_its_key() {
    with_ctx(|ctx| {
        assert_eq!(dispatch(ctx, bob(), Call::Chill), Err(Error::NotCandidate));
        dispatch(ctx, alice(), Call::Chill).unwrap();
        assert_eq!(last_event(ctx), Event::Chilled { who: alice() });
        assert_eq!(candidate(ctx, &alice()), None);
        assert!(candidates(ctx).is_empty());
        // The bond stays.
        assert_eq!(ledger(ctx, &alice()).unwrap().bonded, 100 * UNIT);
        assert_eq!(reserved(ctx, &alice()), 100 * UNIT);
        // Alice's key is free for Bob now.
        dispatch(ctx, bob(), Call::Bond { amount: 10 * UNIT }).unwrap();
        dispatch(
            ctx,
            bob(),
            Call::Validate {
                consensus_key: alice(),
                commission: 0,
            },
        )
        .unwrap();
        assert_eq!(
            dispatch(ctx, alice(), Call::Chill),
            Err(Error::NotCandidate)
        );
    });
}

// ---- epochs and the set ----

#[test]
fn the_set_changes_at_the_first_height_of_the_epoch_after_next() {
    with_ctx(|ctx| {
        // Epoch length 5: epoch 0 is 0..=4, epoch 1 is 5..=9, epoch 2 is 10..=14.
        set_block(ctx, 2);
        bond_and_validate(ctx, bob(), 200 * UNIT);
        run_to(ctx, 3);
        assert_eq!(
            scheduled_set(ctx),
            None,
            "nothing before the epoch's last block"
        );
        run_to(ctx, 4);
        let new = sorted(vec![info(alice(), 100), info(bob(), 200)]);
        assert_eq!(
            scheduled_set(ctx),
            Some(ValidatorSet {
                since: 10,
                validators: new.clone()
            })
        );
        assert_eq!(
            last_event(ctx),
            Event::ValidatorSetScheduled {
                effective_at: 10,
                validators: new.clone()
            }
        );
        // Known after block 4 for every height through the end of epoch 2.
        for h in 5..10 {
            assert_eq!(
                set_for_height(ctx, h),
                vec![info(alice(), 100)],
                "height {h}"
            );
        }
        for h in 10..15 {
            assert_eq!(set_for_height(ctx, h), new, "height {h}");
        }
        // Nothing changes in between; at the end of block 9 the new set becomes active.
        run_to(ctx, 8);
        assert_eq!(active_set(ctx).since, 0);
        run_to(ctx, 9);
        assert_eq!(
            active_set(ctx),
            ValidatorSet {
                since: 10,
                validators: new.clone()
            }
        );
        assert_eq!(
            scheduled_set(ctx),
            None,
            "same candidates, same set: no change"
        );
        assert!(events(ctx).contains(&Event::ValidatorSetActivated {
            since: 10,
            count: 2
        }));
        assert_eq!(set_for_height(ctx, 10), new);
        assert_eq!(set_for_height(ctx, 100), new);
    });
}

#[test]
fn a_change_made_late_in_an_epoch_still_waits_a_whole_epoch() {
    with_ctx(|ctx| {
        run_to(ctx, 4);
        assert_eq!(scheduled_set(ctx), None);
        // Bob joins in block 5 (epoch 1): chosen at the end of block 9, effective at 15.
        set_block(ctx, 5);
        bond_and_validate(ctx, bob(), 20 * UNIT);
        run_to(ctx, 9);
        assert_eq!(scheduled_set(ctx).unwrap().since, 15);
        assert_eq!(set_for_height(ctx, 14), vec![info(alice(), 100)]);
        assert_eq!(set_for_height(ctx, 15).len(), 2);
        // Bob leaves in block 10; chosen at the end of 14 (the set of 15 takes over as
        // active), effective at 20.
        set_block(ctx, 10);
        dispatch(ctx, bob(), Call::Chill).unwrap();
        run_to(ctx, 14);
        assert_eq!(active_set(ctx).since, 15);
        assert_eq!(active_set(ctx).validators.len(), 2);
        assert_eq!(
            scheduled_set(ctx),
            Some(ValidatorSet {
                since: 20,
                validators: vec![info(alice(), 100)]
            })
        );
    });
}

#[test]
fn selection_orders_by_bond_then_account_and_caps_at_max_validators() {
    with_ctx(|ctx| {
        // max_validators 3: Alice 100, Bob 50, Charlie 50, Dave 50 → Alice and the two
        // lowest accounts among the tied ones.
        for who in [bob(), charlie(), dave()] {
            bond_and_validate(ctx, who, 50 * UNIT);
        }
        let mut tied = [bob(), charlie(), dave()];
        tied.sort();
        let chosen = select(ctx, &test_config());
        let expected = sorted(vec![
            info(alice(), 100),
            info(tied[0], 50),
            info(tied[1], 50),
        ]);
        assert_eq!(chosen, expected);
        // A bigger bond outranks the tie-break.
        dispatch(ctx, tied[2], Call::Bond { amount: UNIT }).unwrap();
        let chosen = select(ctx, &test_config());
        assert!(chosen.iter().any(|v| v.account == tied[2] && v.power == 51));
        assert!(!chosen.iter().any(|v| v.account == tied[1]));
        // Output is sorted by consensus key, not by account or power.
        let key = acc("zzz");
        dispatch(
            ctx,
            alice(),
            Call::Validate {
                consensus_key: key,
                commission: 0,
            },
        )
        .unwrap();
        let chosen = select(ctx, &test_config());
        assert!(chosen
            .windows(2)
            .all(|w| w[0].consensus_key < w[1].consensus_key));
        assert!(chosen
            .iter()
            .any(|v| v.account == alice() && v.consensus_key == key));
    });
}

#[test]
fn candidates_below_the_minimum_are_left_out_and_power_is_whole_tokens() {
    with_ctx(|ctx| {
        bond_and_validate(ctx, bob(), 10 * UNIT + UNIT / 2);
        assert_eq!(
            select(ctx, &test_config()),
            sorted(vec![info(alice(), 100), info(bob(), 10)])
        );
        let higher = StakingConfig {
            min_bond: 11 * UNIT,
            ..test_config()
        };
        assert_eq!(select(ctx, &higher), vec![info(alice(), 100)]);
        assert_eq!(power_of(u128::MAX), MAX_POWER);
        assert!((MAX_POWER as u128) * (MAX_VALIDATORS as u128) <= u64::MAX as u128);
    });
}

#[test]
fn an_empty_selection_keeps_the_current_set() {
    with_ctx(|ctx| {
        dispatch(ctx, alice(), Call::Chill).unwrap();
        run_to(ctx, 20);
        assert_eq!(scheduled_set(ctx), None);
        assert_eq!(
            active_set(ctx),
            ValidatorSet {
                since: 0,
                validators: vec![info(alice(), 100)]
            }
        );
        assert_eq!(set_for_height(ctx, 21), vec![info(alice(), 100)]);
        assert!(!events(ctx)
            .iter()
            .any(|e| matches!(e, Event::ValidatorSetScheduled { .. })));
    });
}

#[test]
fn a_bond_change_changes_power_at_the_next_rotation() {
    with_ctx(|ctx| {
        dispatch(ctx, alice(), Call::Bond { amount: 5 * UNIT }).unwrap();
        run_to(ctx, 4);
        assert_eq!(
            scheduled_set(ctx),
            Some(ValidatorSet {
                since: 10,
                validators: vec![info(alice(), 105)]
            })
        );
    });
}

#[test]
fn read_api_on_a_plain_state() {
    let backend = BTreeMap::new();
    let mut ctx: Ctx = Context::new(Overlay::new(&backend));
    for who in [alice(), bob()] {
        pallet_balances::endow(&mut ctx, who, 1_000 * UNIT).unwrap();
    }
    build_genesis(&mut ctx, &test_config(), &[(alice(), 100 * UNIT)]).unwrap();
    bond_and_validate(&mut ctx, bob(), 30 * UNIT);
    run_to(&mut ctx, 4);
    let state = materialize(ctx.into_parts().0);
    assert_eq!(validator_set_at(&state, 9), vec![info(alice(), 100)]);
    let new = sorted(vec![info(alice(), 100), info(bob(), 30)]);
    assert_eq!(validator_set_at(&state, 10), new);
    assert_eq!(scheduled_change(&state), Some((10, new)));
    let empty = BTreeMap::new();
    assert!(validator_set_at(&empty, 1).is_empty());
    assert_eq!(scheduled_change(&empty), None);
}

#[test]
fn epoch_length_one_rotates_every_block() {
    let backend = BTreeMap::new();
    let mut ctx: Ctx = Context::new(Overlay::new(&backend));
    for who in [alice(), bob()] {
        pallet_balances::endow(&mut ctx, who, 1_000 * UNIT).unwrap();
    }
    let config = StakingConfig {
        epoch_length: 1,
        ..test_config()
    };
    build_genesis(&mut ctx, &config, &[(alice(), 100 * UNIT)]).unwrap();
    set_block(&mut ctx, 1);
    bond_and_validate(&mut ctx, bob(), 30 * UNIT);
    on_finalize(&mut ctx, 1, alice());
    assert_eq!(scheduled_set(&ctx).unwrap().since, 3);
    assert_eq!(set_for_height(&ctx, 2).len(), 1);
    set_block(&mut ctx, 2);
    on_finalize(&mut ctx, 2, alice());
    assert_eq!(active_set(&ctx).since, 3);
    assert_eq!(set_for_height(&ctx, 3).len(), 2);
    assert_eq!(epoch_of(7, 1), 7);
    assert_eq!(epoch_of(7, 5), 1);
    assert!(is_epoch_end(4, 5) && !is_epoch_end(5, 5));
}

// ---- rewards ----

#[test]
fn block_reward_is_minted_to_the_proposer() {
    with_ctx(|ctx| {
        run_to(ctx, 3);
        assert!(!events(ctx)
            .iter()
            .any(|e| matches!(e, Event::BlockRewarded { .. })));
        set_config(
            ctx,
            &StakingConfig {
                block_reward: 3 * UNIT,
                ..test_config()
            },
        );
        let issuance = pallet_balances::total_issuance(ctx);
        set_block(ctx, 4);
        on_finalize(ctx, 4, bob());
        assert_eq!(free(ctx, &bob()), 1_003 * UNIT);
        assert_eq!(pallet_balances::total_issuance(ctx), issuance + 3 * UNIT);
        assert!(events(ctx).contains(&Event::BlockRewarded {
            proposer: bob(),
            amount: 3 * UNIT
        }));
        assert!(ctx.events().iter().any(|r| r.event
            == TestEvent::Balances(pallet_balances::Event::Minted {
                who: bob(),
                amount: 3 * UNIT
            })));
    });
}

// ---- shapes ----

#[test]
fn call_and_event_json_and_error_names() {
    let call = Call::Validate {
        consensus_key: alice(),
        commission: 5,
    };
    let json = serde_json::to_value(&call).unwrap();
    assert_eq!(json["call"], "validate");
    assert_eq!(json["consensusKey"], alice().to_string());
    let json = serde_json::to_value(Call::Bond { amount: 7 }).unwrap();
    assert_eq!(json["amount"], "7");
    let json = serde_json::to_value(Call::WithdrawUnbonded).unwrap();
    assert_eq!(json["call"], "withdrawUnbonded");
    let config: StakingConfig = serde_json::from_str(
        r#"{"epochLength":10,"unbondingPeriod":20,"maxValidators":100,"minBond":"1000000000000","blockReward":"0"}"#,
    )
    .unwrap();
    assert_eq!(config, StakingConfig::default());
    assert_eq!(Error::ConsensusKeyInUse.name(), "ConsensusKeyInUse");
    let e = Error::from(pallet_balances::Error::InsufficientReserved {
        needed: 1,
        available: 0,
    });
    assert_eq!(e.into_dispatch_error().error, "Balances");
    for call in [
        Call::Bond { amount: 1 },
        Call::Unbond { amount: 2 },
        Call::WithdrawUnbonded,
        call,
        Call::Chill,
    ] {
        let encoded = call.encode();
        assert_eq!(Call::decode(&mut &encoded[..]).unwrap(), call);
    }
}

// ---- invariants ----

#[derive(Debug, Clone)]
enum Op {
    Bond(usize, u64),
    Unbond(usize, u64),
    Withdraw(usize),
    Validate(usize, usize),
    Chill(usize),
    Blocks(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..60u64).prop_map(|(a, x)| Op::Bond(a, x)),
        (0..4usize, 0..60u64).prop_map(|(a, x)| Op::Unbond(a, x)),
        (0..4usize).prop_map(Op::Withdraw),
        (0..4usize, 0..5usize).prop_map(|(a, k)| Op::Validate(a, k)),
        (0..4usize).prop_map(Op::Chill),
        (1..8u64).prop_map(Op::Blocks),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn stake_is_exactly_what_is_reserved_and_issuance_is_conserved(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let accounts = [alice(), bob(), charlie(), dave()];
        let keys: Vec<AccountId> = (0..5).map(|i| acc(&format!("key{i}"))).collect();
        let backend = BTreeMap::new();
        let mut ctx: Ctx = Context::new(Overlay::new(&backend));
        for who in accounts {
            pallet_balances::endow(&mut ctx, who, 1_000 * UNIT).unwrap();
        }
        build_genesis(&mut ctx, &test_config(), &[(alice(), 100 * UNIT)]).unwrap();
        let issuance = pallet_balances::total_issuance(&ctx);
        for op in ops {
            // Calls run in a transaction, as in the runtime.
            let (who, call) = match op {
                Op::Bond(a, x) => (accounts[a], Call::Bond { amount: x as u128 * UNIT / 2 }),
                Op::Unbond(a, x) => (accounts[a], Call::Unbond { amount: x as u128 * UNIT / 2 }),
                Op::Withdraw(a) => (accounts[a], Call::WithdrawUnbonded),
                Op::Validate(a, k) => (
                    accounts[a],
                    Call::Validate { consensus_key: keys[k], commission: 0 },
                ),
                Op::Chill(a) => (accounts[a], Call::Chill),
                Op::Blocks(n) => {
                    let last = pallet_system::block_number(&ctx) + n;
                    run_to(&mut ctx, last);
                    continue;
                }
            };
            let _ = ctx.transactional(|ctx| dispatch(ctx, who, call));

            let mut total = 0;
            for who in &accounts {
                let data = pallet_balances::account(&ctx, who);
                let mut stake = 0;
                if let Some(l) = ledger(&ctx, who) {
                    prop_assert!(l.bonded == 0 || l.bonded >= 10 * UNIT);
                    prop_assert!(l.unbonding.len() <= MAX_UNBONDING_CHUNKS);
                    prop_assert!(l.bonded > 0 || !l.unbonding.is_empty());
                    stake = l.bonded + l.unbonding_total();
                }
                prop_assert_eq!(data.reserved, stake, "reserved of {}", who);
                total += data.free + data.reserved;
            }
            prop_assert_eq!(total, issuance);
            prop_assert_eq!(pallet_balances::total_issuance(&ctx), issuance);
            // Candidates, their keys and the list agree; keys are unique.
            let list = candidates(&ctx);
            prop_assert!(list.windows(2).all(|w| w[0] < w[1]));
            for who in &accounts {
                match candidate(&ctx, who) {
                    Some(c) => {
                        prop_assert!(list.contains(who));
                        prop_assert_eq!(key_owner(&ctx, &c.consensus_key), Some(*who));
                        prop_assert!(ledger(&ctx, who).is_some_and(|l| l.bonded > 0));
                    }
                    None => prop_assert!(!list.contains(who)),
                }
            }
            // Every set is non-empty, sorted, with positive power.
            let now = pallet_system::block_number(&ctx);
            for h in now + 1..now + 12 {
                let set = set_for_height(&ctx, h);
                prop_assert!(!set.is_empty());
                prop_assert!(set.windows(2).all(|w| w[0].consensus_key < w[1].consensus_key));
                prop_assert!(set.iter().all(|v| v.power > 0));
            }
        }
    }
}
