//! Sealed secrets through the real agent: a value sealed for one reservation opens only in that
//! reservation. An attacker who copies a victim's sealed env value and zdb password off the chain
//! into a reservation of their own on the same node (same workload and env names) gets an Error
//! result for those workloads, never the plaintext; the victim's workloads, and their updates,
//! keep working.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gridchain_primitives::Pair;
use gridchain_rpc_api::GridApiClient;
use gridchain_runtime::{
    reservations::{
        self, Deployment, EnvValue, EnvVar, Reservation, ReservationState, Workload,
        WorkloadResult, WorkloadSpec, WorkloadState, ZdbMode,
    },
    twins, Call,
};

const ENV_SECRET: &str = "victim-env-s3cret-7f3a";
const ZDB_SECRET: &str = "victim-zdb-s3cret-91c2";

/// A zdb namespace `store` and a container `web` whose env API_KEY is sealed.
fn victim_deployment<'a>(to: impl Fn(&'a str) -> SealFor<'a>) -> Deployment {
    Deployment {
        metadata: "victim".into(),
        workloads: vec![
            Workload {
                name: "store".into(),
                spec: WorkloadSpec::ZdbNamespace {
                    size: 16 * MIB,
                    mode: ZdbMode::User,
                    password: Some(seal_zdb_password(to("store"), ZDB_SECRET.as_bytes())),
                    public: false,
                },
            },
            Workload {
                name: "web".into(),
                spec: WorkloadSpec::Container {
                    image: IMAGE.into(),
                    cpu: 1,
                    memory: 32 * MIB,
                    rootfs_size: 32 * MIB,
                    entrypoint: "sleep 3600".into(),
                    env: vec![
                        EnvVar {
                            name: "GREETING".into(),
                            value: EnvValue::Plain("hello".into()),
                        },
                        EnvVar {
                            name: "API_KEY".into(),
                            value: EnvValue::Sealed(seal_env(
                                to("web"),
                                "API_KEY",
                                ENV_SECRET.as_bytes(),
                            )),
                        },
                    ],
                    mounts: vec![],
                    networks: vec![],
                    registry_auth: None,
                    restart: Default::default(),
                    health_check: None,
                },
            },
        ],
    }
}

fn result<'a>(r: &'a Reservation, workload: &str) -> &'a WorkloadResult {
    r.results
        .iter()
        .find(|w| w.name == workload)
        .unwrap_or_else(|| panic!("no result for {workload}: {:#?}", r.results))
}

fn all_reported(r: &Reservation) -> bool {
    r.results.len() == r.deployment.workloads.len()
}

/// The container of reservation `id`'s workload `workload` on node `tag`.
fn container_of(tag: &str, id: u64, workload: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=gridchain.node={tag}"),
            "--filter",
            &format!("label=gridchain.reservation={id}"),
            "--filter",
            &format!("label=gridchain.workload={workload}"),
        ])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 1, "one container for r{id}-{workload}: {ids:?}");
    ids[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_secret_copied_into_another_owners_reservation_does_not_open() {
    ensure_image();
    let dir = tempfile::tempdir().unwrap();
    let grid = local_grid(dir.path(), "seal").await;
    let (client, chain) = (&grid.client, grid.chain);
    let zdb_addr = zdb_addr();
    let (_cleanup, node_id, tag) =
        start_agent(&grid, dir.path(), &[grid.chain_node.ws_url()], &zdb_addr).await;
    let node = grid.node_key.public();
    let (victim, attacker) = (Pair::dev("Bob"), Pair::dev("Charlie"));
    let victim_account = victim.public();
    send(
        client,
        chain,
        &attacker,
        Call::Twins(twins::Call::CreateTwin {
            name: "charlie".into(),
            endpoint: String::new(),
        }),
    )
    .await;

    // The victim's reservation: Ok, the secrets opened in its container and namespace.
    send(
        client,
        chain,
        &victim,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: victim_deployment(|workload| SealFor {
                chain,
                owner: &victim_account,
                node: &node,
                workload,
            }),
        }),
    )
    .await;
    let victim_id = GridApiClient::reservations_by_owner(client, victim.public().to_string(), None)
        .await
        .unwrap()[0]
        .id;
    wait_for(client, victim_id, "the victim's workloads Ok", all_ok).await;
    let victim_web = container_of(&tag, victim_id, "web");
    assert!(
        docker_env(&victim_web).contains(&format!("API_KEY={ENV_SECRET}\n")),
        "the victim's container has its secret"
    );

    // The attacker reads the victim's reservation off the chain and reserves the same workloads
    // (same names, same env name, the sealed bytes copied verbatim) on the same node, plus a
    // volume that needs no secret.
    let seen = GridApiClient::reservation(client, victim_id, None)
        .await
        .unwrap()
        .unwrap();
    let mut stolen = seen.deployment.clone();
    stolen.metadata = "attacker".into();
    stolen.workloads.push(Workload {
        name: "scratch".into(),
        spec: WorkloadSpec::Volume { size: 16 * MIB },
    });
    send(
        client,
        chain,
        &attacker,
        Call::Reservations(reservations::Call::Reserve {
            node_id,
            deployment: stolen,
        }),
    )
    .await;
    let attacker_id =
        GridApiClient::reservations_by_owner(client, attacker.public().to_string(), None)
            .await
            .unwrap()[0]
            .id;
    let r = wait_for(
        client,
        attacker_id,
        "results for the attacker's workloads",
        all_reported,
    )
    .await;

    let web = result(&r, "web");
    assert_eq!(
        web.state,
        WorkloadState::Error,
        "the victim's sealed env value opened in the attacker's reservation: {web:?}"
    );
    assert!(
        web.message.contains("env API_KEY")
            && web
                .message
                .contains("does not open in this reservation's context"),
        "{}",
        web.message
    );
    let store = result(&r, "store");
    assert_eq!(
        store.state,
        WorkloadState::Error,
        "the victim's sealed zdb password opened in the attacker's reservation: {store:?}"
    );
    assert!(
        store.message.contains("zdb password")
            && store
                .message
                .contains("does not open in this reservation's context"),
        "{}",
        store.message
    );
    assert_eq!(
        result(&r, "scratch").state,
        WorkloadState::Ok,
        "workloads without secrets proceed"
    );
    for w in &r.results {
        assert!(!w.message.contains(ENV_SECRET) && !w.message.contains(ZDB_SECRET));
    }

    // Nothing of the attacker's carries the secrets: only the victim's container has the
    // env value, and the attacker has no namespace.
    for container in docker_ps(&tag) {
        if container != victim_web {
            assert!(
                !docker_env(&container).contains(ENV_SECRET),
                "container {container} carries the victim's secret"
            );
        }
    }
    let namespaces = zdb_namespaces(&zdb_addr).await;
    assert!(
        !namespaces.contains(&format!("r{attacker_id}-store")),
        "the attacker's namespace was created with the victim's password: {namespaces:?}"
    );
    assert!(namespaces.contains(&format!("r{victim_id}-store")));

    // The victim updates the reservation keeping the same sealed bytes (only the plain env
    // changes): same owner, node and workload, so they still open.
    let mut update = seen.deployment.clone();
    if let WorkloadSpec::Container { env, .. } = &mut update.workloads[1].spec {
        env[0].value = EnvValue::Plain("bonjour".into());
    }
    send(
        client,
        chain,
        &victim,
        Call::Reservations(reservations::Call::UpdateReservation {
            id: victim_id,
            deployment: update,
        }),
    )
    .await;
    let r = wait_for(client, victim_id, "the victim's version 2 Ok", |r| {
        r.version == 2 && all_ok(r)
    })
    .await;
    assert_eq!(r.state, ReservationState::Deployed);
    let env = docker_env(&container_of(&tag, victim_id, "web"));
    assert!(
        env.contains(&format!("API_KEY={ENV_SECRET}\n")) && env.contains("GREETING=bonjour\n"),
        "{env}"
    );
    let mut conn = redis::Client::open(format!("redis://{zdb_addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("SELECT")
        .arg(format!("r{victim_id}-store"))
        .arg(ZDB_SECRET)
        .query_async::<()>(&mut conn)
        .await
        .expect("the victim's namespace opens with its password");

    // The agent never wrote the plaintext to its log.
    let log = agent_log(dir.path());
    assert!(!log.is_empty());
    assert!(
        !log.contains(ENV_SECRET) && !log.contains(ZDB_SECRET),
        "the agent's log holds a secret"
    );
}
