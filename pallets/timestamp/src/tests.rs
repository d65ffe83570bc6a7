use super::*;
use gridchain_primitives::Overlay;
use std::collections::BTreeMap;

#[test]
fn time_must_increase() {
    let backend = BTreeMap::new();
    let mut ctx: Context<()> = Context::new(Overlay::new(&backend));
    assert_eq!(now(&ctx), 0);
    on_initialize(&mut ctx, 1_000).unwrap();
    assert_eq!(now(&ctx), 1_000);
    assert_eq!(
        on_initialize(&mut ctx, 1_000),
        Err(Error::NotIncreasing {
            previous_ms: 1_000,
            now_ms: 1_000
        })
    );
    assert_eq!(
        on_initialize(&mut ctx, 999),
        Err(Error::NotIncreasing {
            previous_ms: 1_000,
            now_ms: 999
        })
    );
    on_initialize(&mut ctx, 1_001).unwrap();
    assert_eq!(now(&ctx), 1_001);
}

#[test]
fn error_name() {
    assert_eq!(
        Error::NotIncreasing {
            previous_ms: 1,
            now_ms: 1
        }
        .name(),
        "NotIncreasing"
    );
}
