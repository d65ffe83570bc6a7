//! Head and transaction subscriptions, read proofs a light client can check, metrics.

use gridchain_primitives::{decode_untrusted, Pair, ReadProof};
use gridchain_rpc_api::{
    AuthorApiClient, ChainApiClient, GridchainApiClient, StateApiClient, TransactionStatus,
};
use gridchain_runtime::{balances, Call};
use gridchain_tests::{chain_context, signed, DevNode};
use parity_scale_codec::Decode;
use std::io::{Read, Write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalized_heads_are_consecutive_and_watch_reports_finality() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), 200).await;
    let client = node.client().await;
    let chain = chain_context(&client).await;

    let mut heads = client.subscribe_finalized_heads().await.unwrap();
    let mut previous = heads.next().await.unwrap().unwrap();
    for _ in 0..5 {
        let head = heads.next().await.unwrap().unwrap();
        assert_eq!(head.number, previous.number + 1);
        assert_eq!(head.parent_hash, previous.hash());
        assert!(head.timestamp_ms > previous.timestamp_ms);
        previous = head;
    }

    let bob = Pair::dev("Bob").public();
    let xt = signed(
        &Pair::dev("Eve"),
        Call::Balances(balances::Call::Transfer {
            dest: bob,
            amount: 5,
        }),
        0,
        1_000,
        0,
        chain,
    );
    let mut watch = client.submit_and_watch_extrinsic(xt).await.unwrap();
    let mut statuses = Vec::new();
    while let Some(status) = watch.next().await {
        let status = status.unwrap();
        let done = matches!(status, TransactionStatus::Finalized(_));
        statuses.push(status);
        if done {
            break;
        }
    }
    let TransactionStatus::Finalized(block_hash) = statuses.last().cloned().unwrap() else {
        panic!("{statuses:?}")
    };
    assert_eq!(
        statuses,
        vec![
            TransactionStatus::Ready,
            TransactionStatus::InBlock(block_hash),
            TransactionStatus::Finalized(block_hash)
        ]
    );
    let block = client.block(Some(block_hash)).await.unwrap().unwrap();
    assert_eq!(block.block.extrinsics.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_proofs_verify_against_the_header_state_root() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), 200).await;
    let client = node.client().await;
    let alice = Pair::dev("Alice").public();
    let key = balances::account_key(&alice);
    let absent = balances::account_key(&Pair::dev("never used").public());

    let proof = client
        .read_proof(vec![key.clone().into(), absent.clone().into()], None)
        .await
        .unwrap();
    // A light client trusts only the header.
    let header = client.header(Some(proof.at)).await.unwrap().unwrap();
    let present: ReadProof = decode_untrusted("proof", &proof.proof[0].0).unwrap();
    let missing: ReadProof = decode_untrusted("proof", &proof.proof[1].0).unwrap();
    present.verify(header.state_root).unwrap();
    missing.verify(header.state_root).unwrap();
    assert_eq!(present.key, key);
    assert_eq!(missing.value, None);
    let data = balances::AccountData::decode(&mut &present.value.clone().unwrap()[..]).unwrap();
    let stored = client
        .storage(key.into(), Some(proof.at))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(stored.0), present.value);
    assert!(data.free > 0);
    let mut forged = present.clone();
    forged.value = Some(
        balances::AccountData {
            free: data.free * 2,
            reserved: 0,
        }
        .encode_to_vec(),
    );
    assert!(forged.verify(header.state_root).is_err());
    assert!(client.account(alice.to_string()).await.unwrap().free > 0);
}

trait EncodeToVec {
    fn encode_to_vec(&self) -> Vec<u8>;
}
impl<T: parity_scale_codec::Encode> EncodeToVec for T {
    fn encode_to_vec(&self) -> Vec<u8> {
        self.encode()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_report_heights() {
    let dir = tempfile::tempdir().unwrap();
    let node = DevNode::start(&dir.path().join("node"), 100).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", node.metrics_port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    for name in [
        "gridchain_block_height{status=\"best\"}",
        "gridchain_block_height{status=\"finalized\"}",
        "gridchain_txpool_transactions",
        "gridchain_block_execution_seconds_count",
        "gridchain_peers",
    ] {
        assert!(body.contains(name), "metrics lack {name}:\n{body}");
    }
    let best: f64 = body
        .lines()
        .find(|l| l.starts_with("gridchain_block_height{status=\"best\"}"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert!(best >= 1.0);
}
