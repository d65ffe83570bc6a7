use super::*;
use gridchain_primitives::{Overlay, Pair};
use std::collections::BTreeMap;

fn with_ctx(f: impl FnOnce(&mut Context<Event>)) {
    let backend = BTreeMap::new();
    let mut ctx = Context::new(Overlay::new(&backend));
    f(&mut ctx);
}

fn create(ctx: &mut Context<Event>, who: AccountId, name: &str) -> Result<(), Error> {
    dispatch(
        ctx,
        who,
        Call::CreateTwin {
            name: name.into(),
            endpoint: "relay.example:443".into(),
        },
    )
}

#[test]
fn create_twin_indexes_by_id_account_and_name() {
    with_ctx(|ctx| {
        let alice = Pair::dev("Alice").public();
        create(ctx, alice, "Alice").unwrap();
        assert_eq!(
            ctx.events().last().unwrap().event,
            Event::TwinCreated {
                id: 1,
                account: alice,
                name: "Alice".into()
            }
        );
        let twin = twin(ctx, 1).unwrap();
        assert_eq!(twin.account, alice);
        assert_eq!(twin_of(ctx, &alice), Some(twin.clone()));
        assert_eq!(twin_by_name(ctx, "alice"), Some(twin));
        assert_eq!(next_id(ctx), 2);
    });
}

#[test]
fn create_twin_errors_change_nothing() {
    with_ctx(|ctx| {
        let alice = Pair::dev("Alice").public();
        let bob = Pair::dev("Bob").public();
        create(ctx, alice, "alice").unwrap();
        let events = ctx.events().len();
        assert_eq!(create(ctx, alice, "other"), Err(Error::AlreadyHasTwin(1)));
        assert_eq!(
            create(ctx, bob, "ALICE"),
            Err(Error::NameTaken("ALICE".into()))
        );
        assert_eq!(create(ctx, bob, ""), Err(Error::InvalidName));
        assert_eq!(create(ctx, bob, "a b"), Err(Error::InvalidName));
        assert_eq!(create(ctx, bob, &"x".repeat(65)), Err(Error::InvalidName));
        assert_eq!(
            dispatch(
                ctx,
                bob,
                Call::CreateTwin {
                    name: "bob".into(),
                    endpoint: "x".repeat(257)
                }
            ),
            Err(Error::InvalidEndpoint)
        );
        assert_eq!(
            dispatch(
                ctx,
                bob,
                Call::CreateTwin {
                    name: "bob".into(),
                    endpoint: "a\nb".into()
                }
            ),
            Err(Error::InvalidEndpoint)
        );
        assert_eq!(twin_of(ctx, &bob), None);
        assert_eq!(next_id(ctx), 2);
        assert_eq!(ctx.events().len(), events);
    });
}

#[test]
fn update_twin_renames_and_frees_the_old_name() {
    with_ctx(|ctx| {
        let alice = Pair::dev("Alice").public();
        let bob = Pair::dev("Bob").public();
        create(ctx, alice, "alice").unwrap();
        create(ctx, bob, "bob").unwrap();
        dispatch(
            ctx,
            alice,
            Call::UpdateTwin {
                name: "alice2".into(),
                endpoint: "new".into(),
            },
        )
        .unwrap();
        assert_eq!(
            ctx.events().last().unwrap().event,
            Event::TwinUpdated {
                id: 1,
                name: "alice2".into(),
                endpoint: "new".into()
            }
        );
        assert_eq!(twin_by_name(ctx, "alice"), None);
        assert_eq!(twin_by_name(ctx, "alice2").unwrap().endpoint, "new");
        // Same name, other case: allowed (it is the twin's own name).
        dispatch(
            ctx,
            alice,
            Call::UpdateTwin {
                name: "Alice2".into(),
                endpoint: "new".into(),
            },
        )
        .unwrap();
        assert_eq!(
            dispatch(
                ctx,
                alice,
                Call::UpdateTwin {
                    name: "bob".into(),
                    endpoint: "".into()
                }
            ),
            Err(Error::NameTaken("bob".into()))
        );
        assert_eq!(
            dispatch(
                ctx,
                alice,
                Call::UpdateTwin {
                    name: "no way".into(),
                    endpoint: "".into()
                }
            ),
            Err(Error::InvalidName)
        );
        assert_eq!(
            dispatch(
                ctx,
                alice,
                Call::UpdateTwin {
                    name: "ok".into(),
                    endpoint: "\u{7}".into()
                }
            ),
            Err(Error::InvalidEndpoint)
        );
        let carol = Pair::dev("Charlie").public();
        assert_eq!(
            dispatch(
                ctx,
                carol,
                Call::UpdateTwin {
                    name: "c".into(),
                    endpoint: "".into()
                }
            ),
            Err(Error::NoTwin)
        );
    });
}

#[test]
fn delete_twin_refuses_while_referenced() {
    with_ctx(|ctx| {
        let alice = Pair::dev("Alice").public();
        create(ctx, alice, "alice").unwrap();
        add_reference(ctx, 1);
        assert_eq!(
            dispatch(ctx, alice, Call::DeleteTwin),
            Err(Error::TwinInUse {
                id: 1,
                references: 1
            })
        );
        remove_reference(ctx, 1);
        dispatch(ctx, alice, Call::DeleteTwin).unwrap();
        assert_eq!(
            ctx.events().last().unwrap().event,
            Event::TwinDeleted { id: 1 }
        );
        assert_eq!(twin(ctx, 1), None);
        assert_eq!(twin_by_name(ctx, "alice"), None);
        assert_eq!(dispatch(ctx, alice, Call::DeleteTwin), Err(Error::NoTwin));
        // The name and the account are free again; ids are never reused.
        create(ctx, alice, "alice").unwrap();
        assert_eq!(twin_id_of(ctx, &alice), Some(2));
    });
}
