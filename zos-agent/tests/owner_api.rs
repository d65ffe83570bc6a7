//! The owner API through the real agent, the real Docker daemon and a dev chain: the owner
//! reads logs, runs commands (with and without a TTY) and reads events, through the client
//! library and through `grid`; anyone else, a forged signature, a replayed, expired or
//! misdirected request, and an impostor endpoint are refused.

mod common;

use common::*;
use gridchain_primitives::{Hash, Pair};
use gridchain_rpc_api::ChainApiClient;
use gridchain_runtime::reservations::{Deployment, WorkloadSpec, WorkloadState};
use std::{
    io::{Read, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};
use zos_owner_api::{
    channel::ChannelError, request::now_ms, Action, ClientError, ClientFrame, ExecQuery, LogsQuery,
    OutputStream, RefusalCode, Request, ServerFrame, Session,
};

/// A container that says hello on both streams, then ticks every 100 ms.
fn talker() -> Deployment {
    let mut d = container_only("web", IMAGE);
    let WorkloadSpec::Container { entrypoint, .. } = &mut d.workloads[0].spec else {
        unreachable!()
    };
    *entrypoint = "sh -c 'echo first-line; echo to-stderr >&2; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.1; done'".into();
    d
}

fn logs(workload: Option<&str>, follow: bool, tail: Option<u32>) -> Action {
    Action::Logs(LogsQuery {
        workload: workload.map(str::to_string),
        follow,
        tail,
        since_secs: None,
    })
}

struct Api {
    endpoint: String,
    node: gridchain_primitives::AccountId,
    genesis: Hash,
    node_id: u32,
}

impl Api {
    fn request(&self, id: u64, action: Action) -> Request {
        Request::new(self.genesis, self.node_id, id, action)
    }

    async fn open(&self, request: Request, key: &Pair) -> Result<Session, ClientError> {
        zos_owner_api::connect(&self.endpoint, &self.node, &request.sign(key)).await
    }
}

fn refused(outcome: Result<Session, ClientError>) -> RefusalCode {
    match outcome {
        Err(ClientError::Refused { code, .. }) => code,
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the request was accepted"),
    }
}

/// Reads output frames until `done` holds for what was read (stdout and stderr apart), or the
/// answer ends; returns (stdout, stderr, last frame).
async fn read_until(
    session: &mut Session,
    done: impl Fn(&str, &str) -> bool,
) -> (String, String, ServerFrame) {
    let (mut out, mut err) = (String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline.into(), session.recv())
            .await
            .expect("output in 30 s")
            .expect("a frame");
        match &frame {
            ServerFrame::Output { stream, data, .. } => {
                let text = String::from_utf8_lossy(data);
                match stream {
                    OutputStream::Stdout => out.push_str(&text),
                    OutputStream::Stderr => err.push_str(&text),
                }
                if done(&out, &err) {
                    return (out, err, frame);
                }
            }
            _ => return (out, err, frame),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_reads_logs_runs_commands_and_reads_events_and_nobody_else_can() {
    let agent = grid_with_agent("owner-api").await;
    let (grid, node_id) = (&agent.grid, agent.node_id);
    let bob = Pair::dev("Bob");
    let id = reserve(grid, &bob, node_id, talker()).await;
    wait_for(&grid.client, id, "web running", |r| {
        r.results
            .first()
            .is_some_and(|w| w.state == WorkloadState::Ok)
    })
    .await;
    let (endpoint, node) = owner_api_of(&grid.client, node_id).await;
    let api = Api {
        endpoint,
        node,
        genesis: grid.client.block_hash(Some(0)).await.unwrap().unwrap(),
        node_id,
    };

    // Logs, both streams, to the end.
    let mut session = api
        .open(api.request(id, logs(Some("web"), false, None)), &bob)
        .await
        .unwrap();
    let (out, err, last) = read_until(&mut session, |_, _| false).await;
    assert_eq!(last, ServerFrame::End);
    assert!(out.starts_with("first-line\n"), "{out}");
    assert_eq!(err, "to-stderr\n");

    // Tail and follow: new lines keep coming until the client hangs up.
    let mut session = api
        .open(api.request(id, logs(None, true, Some(1))), &bob)
        .await
        .unwrap();
    let (out, _, _) = read_until(&mut session, |out, _| out.matches("tick-").count() >= 5).await;
    assert!(
        !out.contains("first-line"),
        "tail 1 sent the first line: {out}"
    );
    drop(session);

    // Exec: stdin in, output and the exit code out.
    let exec = |cmd: &str, tty: bool| {
        Action::Exec(ExecQuery {
            workload: "web".into(),
            cmd: vec!["sh".into(), "-c".into(), cmd.into()],
            tty,
            size: Some((80, 24)),
        })
    };
    let mut session = api
        .open(
            api.request(
                id,
                exec("read x; echo got-$x; echo oops >&2; exit 3", false),
            ),
            &bob,
        )
        .await
        .unwrap();
    session
        .send(&ClientFrame::Stdin(b"hello\n".to_vec()))
        .await
        .unwrap();
    let (out, err, last) = read_until(&mut session, |_, _| false).await;
    assert_eq!((out.as_str(), err.as_str()), ("got-hello\n", "oops\n"));
    assert_eq!(last, ServerFrame::Exited { code: 3 });
    // With a TTY of the size asked for (set just after the command starts, as `docker exec -t`
    // does: the command waits for it).
    let sized = "until [ \"$(stty size 2>/dev/null)\" = '24 80' ]; do sleep 0.05; done; stty size";
    let mut session = api
        .open(api.request(id, exec(sized, true)), &bob)
        .await
        .unwrap();
    let (out, _, last) = read_until(&mut session, |_, _| false).await;
    assert_eq!(out.trim(), "24 80");
    assert_eq!(last, ServerFrame::Exited { code: 0 });

    // Events: the container started, the state reported, the commands run.
    let mut session = api
        .open(api.request(id, Action::Events), &bob)
        .await
        .unwrap();
    let mut kinds = Vec::new();
    loop {
        match session.recv().await.unwrap() {
            ServerFrame::Event(e) => kinds.push((e.workload, e.kind, e.message)),
            ServerFrame::End => break,
            other => panic!("{other:?}"),
        }
    }
    for kind in ["started", "state", "exec"] {
        assert!(
            kinds.iter().any(|(w, k, _)| w == "web" && k == kind),
            "no {kind} event: {kinds:?}"
        );
    }
    assert!(
        kinds.iter().any(|(_, k, m)| k == "state" && m == "Ok"),
        "{kinds:?}"
    );

    // Refusals, each with its own code; none of them ran anything.
    let alice = Pair::dev("Alice");
    let events = || api.request(id, Action::Events);
    assert_eq!(
        refused(api.open(events(), &alice).await),
        RefusalCode::NotOwner
    );
    let mut forged = events().sign(&alice);
    forged.signer = bob.public();
    let outcome = zos_owner_api::connect(&api.endpoint, &api.node, &forged).await;
    assert_eq!(refused(outcome), RefusalCode::BadSignature);
    let once = events().sign(&bob);
    zos_owner_api::connect(&api.endpoint, &api.node, &once)
        .await
        .unwrap();
    let again = zos_owner_api::connect(&api.endpoint, &api.node, &once).await;
    assert_eq!(refused(again), RefusalCode::Replayed);
    let mut old = events();
    old.issued_at_ms = now_ms() - 5 * 60_000;
    assert_eq!(refused(api.open(old, &bob).await), RefusalCode::Expired);
    let mut other_node = events();
    other_node.node_id = node_id + 1;
    assert_eq!(
        refused(api.open(other_node, &bob).await),
        RefusalCode::WrongNode
    );
    let mut other_chain = events();
    other_chain.genesis = Hash([7; 32]);
    assert_eq!(
        refused(api.open(other_chain, &bob).await),
        RefusalCode::WrongChain
    );
    let missing = api.request(id + 1000, Action::Events);
    assert_eq!(
        refused(api.open(missing, &bob).await),
        RefusalCode::NoSuchReservation
    );
    let no_workload = api.request(id, logs(Some("db"), false, None));
    assert_eq!(
        refused(api.open(no_workload, &bob).await),
        RefusalCode::NoSuchWorkload
    );

    // An endpoint that cannot prove the node's key gets no request.
    let impostor =
        zos_owner_api::connect(&api.endpoint, &alice.public(), &events().sign(&bob)).await;
    assert!(
        matches!(
            impostor,
            Err(ClientError::Channel(ChannelError::WrongNode { .. }))
        ),
        "{:?}",
        impostor.err()
    );

    // One owner holds at most 8 streams; a stream the client drops frees its slot.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            api.open(api.request(id, logs(None, true, Some(0))), &bob)
                .await
                .unwrap(),
        );
    }
    let busy = api
        .open(api.request(id, logs(None, true, Some(0))), &bob)
        .await;
    assert_eq!(refused(busy), RefusalCode::Busy);
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match api
            .open(api.request(id, logs(None, true, Some(0))), &bob)
            .await
        {
            Ok(_) => break,
            Err(ClientError::Refused {
                code: RefusalCode::Busy,
                ..
            }) => {
                assert!(Instant::now() < deadline, "a dropped stream kept its slot");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    drop(held);

    cli(&agent, id);
    cancel_and_wait_removed(grid, &bob, id, &agent.tag).await;
}

/// `grid reservation logs|exec|events` as a user types them, the shell under a real TTY.
fn cli(agent: &AgentGrid, id: u64) {
    let grid_bin = gridchain_tests::binary("grid");
    let rpc = agent.grid.chain_node.ws_url();
    let run = |args: &[&str]| {
        let out = Command::new(&grid_bin)
            .args(["--rpc", &rpc, "reservation"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let id = id.to_string();
    let (code, out, err) = run(&["logs", &id, "--tail", "3", "--from", "//Bob"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().all(|l| l.starts_with("tick-")), "{out}");

    // --follow until the reader goes away (`| head -1`): grid ends with it.
    let mut follow = Command::new(&grid_bin)
        .args([
            "--rpc",
            &rpc,
            "reservation",
            "logs",
            &id,
            "--follow",
            "--tail",
            "1",
        ])
        .args(["--from", "//Bob"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 5];
    follow
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"tick-");
    let deadline = Instant::now() + Duration::from_secs(30);
    while follow.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "logs --follow kept going with no reader"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (code, out, _) = run(&[
        "exec",
        &id,
        "web",
        "--from",
        "//Bob",
        "--",
        "sh",
        "-c",
        "echo hi; exit 7",
    ]);
    assert_eq!((code, out.as_str()), (Some(7), "hi\n"));

    let (code, out, err) = run(&["events", &id, "--from", "//Bob"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("started"), "{out}");

    // Someone else: refused by the node, exit 4, one readable line.
    let (code, _, err) = run(&["logs", &id, "--from", "//Alice"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("refused (8)") && err.contains("does not own"),
        "{err}"
    );

    // `-it` under a pseudo-terminal, as a person at a keyboard would run it.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = Command::new(&grid_bin)
        .args([
            "--rpc",
            &rpc,
            "reservation",
            "exec",
            &id,
            "web",
            "-it",
            "--from",
            "//Bob",
            "--",
            "sh",
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..n]);
            let _ = tx.send(String::from_utf8_lossy(&seen).to_string());
        }
    });
    // The shell's prompt, then a command typed as keys (the sum is computed in the container).
    // Everything the terminal showed so far (each message is the whole of it).
    let mut screen = String::new();
    let mut wait_for_text = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !screen.contains(text) {
            screen = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {text:?} on the terminal in 30 s: {screen:?}"));
        }
    };
    wait_for_text("# ");
    master.write_all(b"echo pty-$((6*7)); tty\r").unwrap();
    wait_for_text("pty-42");
    wait_for_text("/dev/pts/");
    master.write_all(b"exit 5\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "grid exec -it did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(5));
}
