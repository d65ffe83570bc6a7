use super::*;
use gridchain_primitives::{Bytes, Pair};
use std::collections::BTreeMap;

#[test]
fn remark_emits_hash_and_nonce_counts_up() {
    let backend = BTreeMap::new();
    let mut ctx: Context<Event> = Context::new(Overlay::new(&backend));
    let who = Pair::dev("Alice").public();
    assert_eq!(nonce(&ctx, &who), 0);
    dispatch(
        &mut ctx,
        who,
        Call::Remark {
            data: Bytes(b"hi".to_vec()),
        },
    )
    .unwrap();
    assert_eq!(
        ctx.events()[0].event,
        Event::Remarked {
            who,
            hash: Hash::of(b"hi")
        }
    );
    inc_nonce(&mut ctx, &who);
    inc_nonce(&mut ctx, &who);
    assert_eq!(nonce(&ctx, &who), 2);
}

#[test]
fn failed_transaction_drops_writes_and_events() {
    let backend = BTreeMap::new();
    let mut ctx: Context<Event> = Context::new(Overlay::new(&backend));
    let who = Pair::dev("Alice").public();
    let result: Result<(), &str> = ctx.transactional(|ctx| {
        inc_nonce(ctx, &who);
        ctx.deposit_event(Event::Remarked {
            who,
            hash: Hash::ZERO,
        });
        Err("fail")
    });
    assert!(result.is_err());
    assert_eq!(nonce(&ctx, &who), 0);
    assert!(ctx.events().is_empty());
    ctx.transactional(|ctx| {
        inc_nonce(ctx, &who);
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(nonce(&ctx, &who), 1);
}

#[test]
fn initialize_records_genesis_hash_on_block_one_only() {
    let backend = BTreeMap::new();
    let mut ctx: Context<Event> = Context::new(Overlay::new(&backend));
    let genesis = Hash::of(b"genesis");
    on_initialize(&mut ctx, 1, genesis);
    on_initialize(&mut ctx, 2, Hash::of(b"one"));
    assert_eq!(
        ctx.overlay.get_decoded::<Hash>(&genesis_hash_key()),
        Some(genesis)
    );
    assert_eq!(block_number(&ctx), 2);
    ctx.deposit_event(Event::Remarked {
        who: AccountId::default(),
        hash: Hash::ZERO,
    });
    on_finalize(&mut ctx);
    let stored: Vec<EventRecord<Event>> = ctx.overlay.get_decoded(&events_key()).unwrap();
    assert_eq!(stored.len(), 1);
}
