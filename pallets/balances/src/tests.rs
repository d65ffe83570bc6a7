use super::*;
use gridchain_primitives::{Overlay, Pair};
use std::collections::BTreeMap;

fn accounts() -> (AccountId, AccountId) {
    (Pair::dev("Alice").public(), Pair::dev("Bob").public())
}

fn with_ctx(f: impl FnOnce(&mut Context<Event>)) {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    f(&mut ctx);
}

#[test]
fn transfer_moves_value_and_conserves_issuance() {
    with_ctx(|ctx| {
        let (alice, bob) = accounts();
        endow(ctx, alice, 1_000).unwrap();
        dispatch(
            ctx,
            alice,
            Call::Transfer {
                dest: bob,
                amount: 300,
            },
        )
        .unwrap();
        assert_eq!(account(ctx, &alice).free, 700);
        assert_eq!(account(ctx, &bob).free, 300);
        assert_eq!(total_issuance(ctx), 1_000);
        assert_eq!(
            ctx.events().last().unwrap().event,
            Event::Transfer {
                from: alice,
                to: bob,
                amount: 300
            }
        );
    });
}

#[test]
fn transfer_errors_change_nothing() {
    with_ctx(|ctx| {
        let (alice, bob) = accounts();
        endow(ctx, alice, 100).unwrap();
        assert_eq!(
            dispatch(
                ctx,
                alice,
                Call::Transfer {
                    dest: bob,
                    amount: 101
                }
            ),
            Err(Error::InsufficientBalance {
                needed: 101,
                available: 100
            })
        );
        assert_eq!(
            dispatch(
                ctx,
                alice,
                Call::Transfer {
                    dest: bob,
                    amount: 0
                }
            ),
            Err(Error::ZeroAmount)
        );
        assert_eq!(account(ctx, &alice).free, 100);
        assert_eq!(account(ctx, &bob), AccountData::default());
    });
}

#[test]
fn transfer_to_self_is_a_no_op() {
    with_ctx(|ctx| {
        let (alice, _) = accounts();
        endow(ctx, alice, 100).unwrap();
        transfer(ctx, alice, alice, 60).unwrap();
        assert_eq!(account(ctx, &alice).free, 100);
        assert_eq!(total_issuance(ctx), 100);
    });
}

#[test]
fn transfer_all_empties_the_account_and_removes_it() {
    with_ctx(|ctx| {
        let (alice, bob) = accounts();
        endow(ctx, alice, 100).unwrap();
        dispatch(ctx, alice, Call::TransferAll { dest: bob }).unwrap();
        assert_eq!(ctx.overlay.get(&account_key(&alice)), None);
        assert_eq!(account(ctx, &bob).free, 100);
        // Nothing left: transferring all of zero is refused.
        assert_eq!(
            dispatch(ctx, alice, Call::TransferAll { dest: bob }),
            Err(Error::ZeroAmount)
        );
    });
}

#[test]
fn overflow_is_refused() {
    with_ctx(|ctx| {
        let (alice, bob) = accounts();
        endow(ctx, alice, Balance::MAX).unwrap();
        assert_eq!(endow(ctx, bob, 1), Err(Error::Overflow));
        assert_eq!(account(ctx, &bob).free, 0);
    });
}

#[test]
fn reserve_and_unreserve() {
    with_ctx(|ctx| {
        let (alice, _) = accounts();
        endow(ctx, alice, 100).unwrap();
        reserve(ctx, alice, 40).unwrap();
        assert_eq!(
            account(ctx, &alice),
            AccountData {
                free: 60,
                reserved: 40
            }
        );
        assert_eq!(
            reserve(ctx, alice, 61),
            Err(Error::InsufficientBalance {
                needed: 61,
                available: 60
            })
        );
        assert_eq!(
            unreserve(ctx, alice, 41),
            Err(Error::InsufficientReserved {
                needed: 41,
                available: 40
            })
        );
        unreserve(ctx, alice, 40).unwrap();
        assert_eq!(
            account(ctx, &alice),
            AccountData {
                free: 100,
                reserved: 0
            }
        );
        assert_eq!(total_issuance(ctx), 100);
    });
}

#[test]
fn fees_move_to_the_recipient() {
    with_ctx(|ctx| {
        let (alice, bob) = accounts();
        endow(ctx, alice, 100).unwrap();
        assert!(can_withdraw(ctx, &alice, 100).is_ok());
        assert_eq!(
            can_withdraw(ctx, &alice, 101),
            Err(Error::InsufficientBalance {
                needed: 101,
                available: 100
            })
        );
        pay_fee(ctx, alice, bob, 10).unwrap();
        assert_eq!(account(ctx, &bob).free, 10);
        assert_eq!(total_issuance(ctx), 100);
        assert!(pay_fee(ctx, alice, bob, 1_000).is_err());
    });
}

#[test]
fn error_names_are_stable() {
    let e = Error::InsufficientBalance {
        needed: 2,
        available: 1,
    }
    .into_dispatch_error();
    assert_eq!(e.pallet, "balances");
    assert_eq!(e.error, "InsufficientBalance");
    assert_eq!(e.message, "insufficient free balance: need 2, have 1");
}

#[test]
fn mint_and_burn_keep_issuance_equal_to_balances_plus_burned() {
    with_ctx(|ctx| {
        let (alice, bob) = accounts();
        endow(ctx, alice, 1_000).unwrap();
        mint(ctx, bob, 50).unwrap();
        assert_eq!(
            ctx.events().last().unwrap().event,
            Event::Minted {
                who: bob,
                amount: 50
            }
        );
        burn(ctx, alice, 200).unwrap();
        assert_eq!(
            ctx.events().last().unwrap().event,
            Event::Burned {
                who: alice,
                amount: 200
            }
        );
        assert_eq!(total_issuance(ctx), 1_050);
        assert_eq!(burned(ctx), 200);
        assert_eq!(account(ctx, &alice).free + account(ctx, &bob).free, 850);
        assert_eq!(
            burn(ctx, bob, 51),
            Err(Error::InsufficientBalance {
                needed: 51,
                available: 50
            })
        );
        assert_eq!(burn(ctx, bob, 0), Err(Error::ZeroAmount));
        assert_eq!(mint(ctx, bob, 0), Err(Error::ZeroAmount));
        pay(ctx, &alice, &bob, 10).unwrap();
        assert_eq!(account(ctx, &bob).free, 60);
        assert_eq!(burned(ctx), 200);
    });
}
