use super::*;
use gridchain_primitives::{finality, ChainContext, Pair};
use gridchain_runtime::{balances, build_genesis, BlockBuilder, Call, GenesisConfig, SPEC_VERSION};

fn genesis(storage: &Storage) -> Header {
    let config = GenesisConfig {
        balances: vec![(Pair::dev("Alice").public(), 1_000_000_000_000_000)],
        ..Default::default()
    };
    let changes = build_genesis(&config).unwrap();
    let prepared = storage.prepare_state(&changes, 0).unwrap();
    let header = gridchain_runtime::genesis_header(prepared.root);
    storage.commit_genesis(&header, &changes, prepared).unwrap();
    header
}

/// Builds and commits a block with `n` transfers from Alice.
fn commit_transfers(
    storage: &Storage,
    parent: &Header,
    first_nonce: u64,
    n: u64,
) -> (Block, StateChanges) {
    let chain = ChainContext {
        genesis_hash: storage.genesis_hash().unwrap().unwrap(),
        spec_version: SPEC_VERSION,
    };
    let mut builder = BlockBuilder::new(
        storage,
        chain,
        parent.hash(),
        parent.number + 1,
        parent.timestamp_ms + 1_000,
        Pair::dev("Alice").public(),
    )
    .unwrap();
    for nonce in first_nonce..first_nonce + n {
        let call = Call::Balances(balances::Call::Transfer {
            dest: Pair::dev("Bob").public(),
            amount: 1,
        });
        let xt = Extrinsic::sign(&Pair::dev("Alice"), call, nonce, 1_000, 0, chain);
        builder
            .push(xt.clone(), xt.encoded_size(), true)
            .unwrap()
            .unwrap();
    }
    let built = builder.finish();
    let prepared = storage.prepare_state(&built.changes, built.number).unwrap();
    let block = Block {
        header: built.header(prepared.root),
        extrinsics: built.extrinsics,
    };
    let certificate = certificate_for(&block);
    // Proposals kept for this height (incl. the highest possible key) go with the commit.
    storage
        .put_pending_proposal(&block.hash(), b"proposal")
        .unwrap();
    storage
        .put_pending_proposal(&Hash([0xff; 32]), b"other")
        .unwrap();
    storage
        .commit_block(&block, &certificate, &built.changes, prepared)
        .unwrap();
    assert!(storage.pending_proposals().unwrap().is_empty());
    assert_eq!(
        storage.certificate(block.header.number).unwrap(),
        Some(certificate)
    );
    (block, built.changes)
}

/// A certificate signed by //Alice alone (storage does not check signatures; consensus does).
fn certificate_for(block: &Block) -> CommitCertificate {
    let alice = Pair::dev("Alice");
    let signature = alice.sign(&finality::vote_sign_bytes(
        Hash::ZERO,
        finality::PRECOMMIT,
        block.header.number,
        0,
        Some(block.hash()),
        &alice.public(),
    ));
    CommitCertificate {
        height: block.header.number,
        round: 0,
        block_hash: block.hash(),
        signatures: vec![(alice.public(), signature)],
    }
}

#[test]
fn certificate_for_another_block_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let g = genesis(&storage);
    let (b1, _) = commit_transfers(&storage, &g, 0, 1);
    let changes = StateChanges::new();
    let prepared = storage.prepare_state(&changes, 2).unwrap();
    let block = Block {
        header: Header {
            number: 2,
            parent_hash: b1.hash(),
            state_root: prepared.root,
            ..b1.header.clone()
        },
        extrinsics: vec![],
    };
    let mut wrong = certificate_for(&block);
    wrong.block_hash = b1.hash();
    assert!(matches!(
        storage.commit_block(&block, &wrong, &changes, prepared),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(storage.best_hash().unwrap(), Some(b1.hash()));
    assert_eq!(storage.certificate(2).unwrap(), None);
}

#[test]
fn blocks_state_and_indexes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (genesis_header, b1, b2) = {
        let storage = Storage::open(dir.path()).unwrap();
        let g = genesis(&storage);
        let (b1, _) = commit_transfers(&storage, &g, 0, 3);
        let (b2, _) = commit_transfers(&storage, &b1.header, 3, 2);
        (g, b1, b2)
    };
    let storage = Storage::open(dir.path()).unwrap();
    assert_eq!(storage.genesis_hash().unwrap(), Some(genesis_header.hash()));
    assert_eq!(storage.best_hash().unwrap(), Some(b2.hash()));
    assert_eq!(storage.finalized_hash().unwrap(), Some(b2.hash()));
    assert_eq!(storage.hash_of(1).unwrap(), Some(b1.hash()));
    assert_eq!(storage.block(&b1.hash()).unwrap(), Some(b1.clone()));
    let xt = &b2.extrinsics[1];
    assert_eq!(
        storage.tx_location(&xt.hash()).unwrap(),
        Some(TxLocation {
            block_number: 2,
            index: 1
        })
    );
    assert_eq!(storage.tx_location(&Hash::ZERO).unwrap(), None);
    assert_eq!(storage.hash_of(3).unwrap(), None);
}

#[test]
fn versioned_state_and_read_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let g = genesis(&storage);
    let (b1, _) = commit_transfers(&storage, &g, 0, 1);
    let (b2, _) = commit_transfers(&storage, &b1.header, 1, 1);
    let bob_key = balances::account_key(&Pair::dev("Bob").public());

    assert_eq!(storage.state_at(&bob_key, 0).unwrap(), None);
    let at1 = storage.state_at(&bob_key, 1).unwrap().unwrap();
    let at2 = storage.state_at(&bob_key, 2).unwrap().unwrap();
    assert_ne!(at1, at2);
    assert_eq!(storage.state(&bob_key).unwrap(), Some(at2.clone()));

    for (header, expected) in [(&g, None), (&b1.header, Some(at1)), (&b2.header, Some(at2))] {
        let proof = storage.read_proof(&bob_key, header.number).unwrap();
        assert_eq!(proof.value, expected);
        proof.verify(header.state_root).unwrap();
        // The same proof must not verify against another root or a changed value.
        assert!(proof.verify(Hash::of(b"other root")).is_err());
        let mut lie = proof.clone();
        lie.value = Some(b"forged".to_vec());
        assert!(lie.verify(header.state_root).is_err());
    }
}

#[test]
fn state_root_depends_only_on_state() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (sa, sb) = (
        Storage::open(a.path()).unwrap(),
        Storage::open(b.path()).unwrap(),
    );
    assert_eq!(genesis(&sa), genesis(&sb));
    let mut changes = StateChanges::new();
    changes.insert(b"x".to_vec(), Some(b"1".to_vec()));
    changes.insert(b"y".to_vec(), Some(b"2".to_vec()));
    let ra = sa.prepare_state(&changes, 1).unwrap().root;
    assert_eq!(ra, sb.prepare_state(&changes, 1).unwrap().root);
    changes.insert(b"y".to_vec(), Some(b"3".to_vec()));
    assert_ne!(ra, sa.prepare_state(&changes, 1).unwrap().root);
}

#[test]
fn mismatched_prepared_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let g = genesis(&storage);
    let prepared = storage.prepare_state(&StateChanges::new(), 1).unwrap();
    let header = Header {
        number: 1,
        parent_hash: g.hash(),
        state_root: Hash::of(b"wrong"),
        ..g.clone()
    };
    let block = Block {
        header,
        extrinsics: vec![],
    };
    assert!(matches!(
        storage.commit_block(
            &block,
            &certificate_for(&block),
            &StateChanges::new(),
            prepared
        ),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(storage.best_hash().unwrap(), Some(g.hash()));
    assert!(storage
        .commit_genesis(
            &g,
            &StateChanges::new(),
            storage.prepare_state(&StateChanges::new(), 0).unwrap()
        )
        .is_err());
}

#[test]
fn an_unsynced_commit_is_atomic_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let hash = {
        let storage = Storage::open(dir.path()).unwrap();
        let g = genesis(&storage);
        let changes = StateChanges::new();
        let prepared = storage.prepare_state(&changes, 1).unwrap();
        let block = Block {
            header: Header {
                number: 1,
                parent_hash: g.hash(),
                timestamp_ms: 1,
                state_root: prepared.root,
                ..g.clone()
            },
            extrinsics: vec![],
        };
        storage
            .commit_block_unsynced(&block, &certificate_for(&block), &changes, prepared)
            .unwrap();
        block.hash()
    };
    // Closed without any sync (as after the process is killed): everything of the block is back.
    let storage = Storage::open(dir.path()).unwrap();
    assert_eq!(storage.best_hash().unwrap(), Some(hash));
    assert_eq!(storage.hash_of(1).unwrap(), Some(hash));
    assert_eq!(storage.certificate(1).unwrap().unwrap().block_hash, hash);
}
