//! Images from a real registry (Debian's `docker-registry` on loopback) through the real Docker
//! daemon: pulled when missing, shared, reported with their digest, failures in the registry's
//! words, private images only with their own credentials, and unused images collected.
//! Through the real agent on a dev chain: a private image pulled with credentials sealed in the
//! reservation, and refused to another owner without them.

mod common;

use common::*;
use gridchain_primitives::Pair;
use gridchain_runtime::reservations::{
    self, ReservationState, ResultData, WorkloadSpec, WorkloadState,
};
use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};
use zos_agent::provision::image::{
    ImageStatus, Images, RegistryAuth,
    RegistryPolicy::{AllowPrivate, PublicOnly},
};

fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_local_defaults().unwrap()
}

/// What Docker says `image` takes on disk.
fn image_size(image: &str) -> u64 {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("an image size")
}

/// Asks until the answer is no longer `Pulling` (the pull runs in the background).
async fn settle(images: &Images, image: &str, auth: Option<&RegistryAuth>) -> ImageStatus {
    settle_within(images, image, auth, u64::MAX).await
}

/// [`settle`] for a workload whose root filesystem may take `max_bytes`.
async fn settle_within(
    images: &Images,
    image: &str,
    auth: Option<&RegistryAuth>,
    max_bytes: u64,
) -> ImageStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = images.ensure(image, auth, max_bytes).await;
        if status != ImageStatus::Pulling {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{image} still pulling after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_missing_image_is_pulled_once_and_runs_by_digest() {
    let registry = Registry::start(None);
    let (reference, digest) = registry.push("grid/pull-once", "1").await;
    let book = tempfile::tempdir().unwrap();
    let images = Images::new(
        docker(),
        Some(book.path().join("images.json")),
        AllowPrivate,
    );

    // Two workloads asking at once share one pull.
    assert_eq!(
        images.ensure(&reference, None, u64::MAX).await,
        ImageStatus::Pulling
    );
    assert_eq!(
        images.ensure(&reference, None, u64::MAX).await,
        ImageStatus::Pulling
    );
    let status = settle(&images, &reference, None).await;
    assert_eq!(
        status,
        ImageStatus::Ready {
            digest: digest.clone(),
            size: image_size(&digest)
        }
    );
    assert!(images.take_settled(), "the end of a pull is signalled");
    // Pinned by that digest: the same image, ready.
    assert_eq!(
        settle(&images, &digest, None).await,
        ImageStatus::Ready {
            digest: digest.clone(),
            size: image_size(&digest)
        }
    );
    // The book survives a restart of the agent.
    let again = Images::new(
        docker(),
        Some(book.path().join("images.json")),
        AllowPrivate,
    );
    assert_eq!(
        again.ensure(&reference, None, u64::MAX).await,
        ImageStatus::Ready {
            digest: digest.clone(),
            size: image_size(&digest)
        }
    );

    // Unused past its grace time: removed (the image built on the node is not ours to remove).
    let removed = images
        .collect_garbage(&BTreeSet::new(), Duration::ZERO, u64::MAX)
        .await;
    assert_eq!(removed, vec![reference.clone()]);
    assert!(docker().inspect_image(&reference).await.is_err());
    assert!(docker().inspect_image(IMAGE).await.is_ok());
    remove_image(&digest);
}

#[tokio::test]
async fn a_wrong_digest_or_an_unknown_image_fails_in_the_registrys_words() {
    let registry = Registry::start(None);
    let (reference, digest) = registry.push("grid/wrong-digest", "1").await;
    let images = Images::new(docker(), None, AllowPrivate);
    let repository = reference.rsplit_once(':').unwrap().0;
    let wrong = format!("{repository}@sha256:{}", "0".repeat(64));
    let ImageStatus::Failed(message) = settle(&images, &wrong, None).await else {
        panic!("a digest the registry does not have was pulled");
    };
    assert!(
        message.contains("manifest unknown") || message.contains("not found"),
        "{message}"
    );
    // Failed pulls are not retried at once: the same answer, no new pull.
    assert_eq!(
        images.ensure(&wrong, None, u64::MAX).await,
        ImageStatus::Failed(message)
    );
    let unknown = format!("{}/grid/no-such-image:1", registry.addr);
    let ImageStatus::Failed(message) = settle(&images, &unknown, None).await else {
        panic!("an unknown image was pulled");
    };
    assert!(
        message.contains("not found") || message.contains("unknown"),
        "{message}"
    );
    remove_image(&digest);
}

#[tokio::test]
async fn a_real_node_refuses_registries_on_loopback_or_private_addresses() {
    // A tenant names the registry; a node that pulled from anywhere would probe its own LAN
    // and loopback for them and publish the answers on chain.
    let registry = Registry::start(None);
    let (reference, digest) = registry.push("grid/not-from-here", "1").await;
    remove_image(&digest);
    let images = Images::new(docker(), None, PublicOnly);
    let ImageStatus::Failed(message) = settle(&images, &reference, None).await else {
        panic!("pulled from a loopback registry");
    };
    assert!(
        message.contains("non-public address (127.0.0.1)"),
        "{message}"
    );
    assert!(docker().inspect_image(&reference).await.is_err());
}

#[tokio::test]
async fn a_private_image_is_pulled_only_with_its_credentials_and_not_reused_without() {
    let registry = Registry::start(Some(("alice", "registry-s3cret")));
    let (reference, digest) = registry.push("team/private", "1").await;
    let images = Images::new(docker(), None, AllowPrivate);
    let good = RegistryAuth::parse("alice:registry-s3cret").unwrap();
    let wrong = RegistryAuth::parse("alice:guess").unwrap();

    let ImageStatus::Failed(anonymous) = settle(&images, &reference, None).await else {
        panic!("pulled a private image without credentials");
    };
    assert!(
        anonymous.contains("no basic auth credentials") || anonymous.contains("unauthorized"),
        "{anonymous}"
    );
    let ImageStatus::Failed(guessed) = settle(&images, &reference, Some(&wrong)).await else {
        panic!("pulled a private image with wrong credentials");
    };
    assert!(guessed.contains("unauthorized"), "{guessed}");
    assert_eq!(
        settle(&images, &reference, Some(&good)).await,
        ImageStatus::Ready {
            digest: digest.clone(),
            size: image_size(&digest)
        }
    );
    // The image is on the node now, but a workload without the credentials (or with wrong
    // ones) does not get it: the registry is asked again, and says no.
    assert!(matches!(
        settle(&images, &reference, None).await,
        ImageStatus::Failed(_)
    ));
    let other = RegistryAuth::parse("mallory:guess").unwrap();
    assert!(matches!(
        settle(&images, &reference, Some(&other)).await,
        ImageStatus::Failed(_)
    ));
    remove_image(&reference);
    remove_image(&digest);
}

#[tokio::test]
async fn an_image_whose_pull_the_agent_did_not_see_end_is_not_taken_for_the_farmers() {
    // The agent starts a pull and dies; Docker finishes it. The restarted agent must not take
    // the image for one the farmer loaded (anyone may run those): it was in the book before
    // the pull began, with no access proven, so each access is asked of the registry again.
    let registry = Registry::start(None);
    let (reference, digest) = registry.push("grid/died-mid-pull", "1").await;
    let book = tempfile::tempdir().unwrap();
    let path = book.path().join("images.json");
    let before_crash = Images::new(docker(), Some(path.clone()), AllowPrivate);
    assert_eq!(
        before_crash.ensure(&reference, None, u64::MAX).await,
        ImageStatus::Pulling
    );
    // The book as the crash left it (read before the pull's end is recorded).
    let after_restart = Images::new(docker(), Some(path), AllowPrivate);
    let deadline = Instant::now() + Duration::from_secs(60);
    while docker().inspect_image(&reference).await.is_err() {
        assert!(Instant::now() < deadline, "the pull did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let someone = RegistryAuth::parse("someone:else").unwrap();
    assert_eq!(
        after_restart
            .ensure(&reference, Some(&someone), u64::MAX)
            .await,
        ImageStatus::Pulling,
        "an image on the node with no proven access was handed out"
    );
    settle(&after_restart, &reference, Some(&someone)).await;
    remove_image(&reference);
    remove_image(&digest);
}

#[tokio::test]
async fn a_pull_stops_once_the_image_is_known_to_exceed_the_root_filesystem() {
    // A tenant pays for its rootfsSize; the image counts against it, so a 64 MiB image cannot
    // land on the node for a workload of 16 MiB.
    let registry = Registry::start(None);
    let (reference, _) = registry.push_blob_image("grid/too-fat", "1", 64).await;
    let images = Images::new(docker(), None, AllowPrivate);
    let ImageStatus::Failed(message) = settle_within(&images, &reference, None, 16 * MIB).await
    else {
        panic!("a 64 MiB image was pulled for 16 MiB");
    };
    assert!(
        message.contains("larger than the workload's rootfsSize"),
        "{message}"
    );
    assert!(
        docker().inspect_image(&reference).await.is_err(),
        "nothing of it stays"
    );
}

/// `image` for workload `name` with a root filesystem of `rootfs` bytes.
fn container_with_rootfs(name: &str, image: &str, rootfs: u64) -> reservations::Deployment {
    let mut d = container_only(name, image);
    let WorkloadSpec::Container { rootfs_size, .. } = &mut d.workloads[0].spec else {
        unreachable!()
    };
    *rootfs_size = rootfs;
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_in_the_middle_of_a_pull_converges_with_one_container() {
    let registry = Registry::start(None);
    let (reference, digest) = registry.push_blob_image("grid/fat", "1", 64).await;
    let mut agent = grid_with_agent("kill-pull").await;
    let (grid, node_id, tag) = (&agent.grid, agent.node_id, agent.tag.clone());
    let bob = Pair::dev("Bob");
    let app = container_with_rootfs("app", &reference, 256 * MIB);
    let id = reserve(grid, &bob, node_id, app).await;

    // kill -9 as soon as the agent says the pull started.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !agent_log(agent.dir.path()).contains("pulling image") {
        assert!(Instant::now() < deadline, "no pull started in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut killed = agent.cleanup.agent.take().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();

    // Started again: the pull is finished (or done again), one container runs that digest.
    agent.cleanup.agent = Some(spawn_agent(
        agent.dir.path(),
        &grid.node_uri,
        &[grid.chain_node.ws_url()],
        &zdb_addr(),
    ));
    let r = wait_for(&grid.client, id, "Ok after the kill", all_ok).await;
    let ResultData::Container { image_digest, .. } = &r.results[0].data else {
        panic!("container data: {:?}", r.results[0]);
    };
    assert_eq!(image_digest, &digest);
    assert_eq!(docker_ps(&tag).len(), 1, "exactly one container");
    cancel_and_wait_removed(grid, &bob, id, &tag).await;

    // The image on the node now, asked for by a workload whose root filesystem it overfills.
    let small = reserve(
        grid,
        &bob,
        node_id,
        container_with_rootfs("app", &reference, 32 * MIB),
    )
    .await;
    let r = wait_for(&grid.client, small, "an error", |r| {
        r.results
            .first()
            .is_some_and(|w| w.state == WorkloadState::Error)
    })
    .await;
    assert!(
        r.results[0]
            .message
            .contains("more than the workload's rootfsSize"),
        "{}",
        r.results[0].message
    );
    assert!(docker_ps(&tag).is_empty());
    cancel_and_wait_removed(grid, &bob, small, &tag).await;
    drop(agent);
    remove_image(&reference);
    remove_image(&digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_pulls_a_private_image_with_sealed_credentials_for_its_owner_only() {
    let registry = Registry::start(Some(("bob", "bobs-registry-pass")));
    let (reference, digest) = registry.push("bob/app", "2").await;
    let agent = grid_with_agent("registry").await;
    let (grid, node_id, tag) = (&agent.grid, agent.node_id, agent.tag.clone());
    let (client, chain, node_key) = (&grid.client, grid.chain, &grid.node_key);

    // Bob's reservation carries his credentials, sealed to the node for that workload.
    let bob = Pair::dev("Bob");
    let mut deployment = container_only("app", &reference);
    let WorkloadSpec::Container { registry_auth, .. } = &mut deployment.workloads[0].spec else {
        unreachable!()
    };
    *registry_auth = Some(seal_registry_auth(
        SealFor {
            chain,
            owner: &bob.public(),
            node: &node_key.public(),
            workload: "app",
        },
        "bob",
        "bobs-registry-pass",
    ));
    let id = reserve(grid, &bob, node_id, deployment.clone()).await;
    let r = wait_for(client, id, "Ok", |r| {
        all_ok(r) && r.state == ReservationState::Deployed
    })
    .await;
    let ResultData::Container { image_digest, .. } = &r.results[0].data else {
        panic!("container data: {:?}", r.results[0]);
    };
    assert_eq!(image_digest, &digest, "the digest that runs is reported");
    assert_eq!(docker_ps(&tag).len(), 1);
    // The node has one core to give: Bob's reservation ends, the pulled image stays (its grace
    // time is an hour), and each of Charlie's attempts below is cancelled once seen.
    cancel_and_wait_removed(grid, &bob, id, &tag).await;

    // Charlie names the same image with Bob's sealed credentials copied from the chain: they
    // do not open in his context, and without them the registry refuses him.
    let charlie = Pair::dev("Charlie");
    create_twin(grid, &charlie, "charlie").await;
    let first_error =
        |r: &reservations::Reservation| r.results.iter().any(|w| w.state == WorkloadState::Error);
    let copied = reserve(grid, &charlie, node_id, deployment).await;
    let r = wait_for(client, copied, "an error", first_error).await;
    assert!(
        r.results[0].message.contains("does not open"),
        "{}",
        r.results[0].message
    );
    cancel_and_wait_removed(grid, &charlie, copied, &tag).await;
    let mut without = container_only("app", &reference);
    without.metadata = "no credentials".into();
    let bare = reserve(grid, &charlie, node_id, without).await;
    let r = wait_for(client, bare, "an error", first_error).await;
    let message = &r.results[0].message;
    assert!(
        message.contains("no basic auth credentials") || message.contains("unauthorized"),
        "{message}"
    );
    assert!(docker_ps(&tag).is_empty(), "nothing of Charlie's runs");
    // The agent first (it may still be retrying Charlie's pull), then its images.
    drop(agent);
    remove_image(&reference);
    remove_image(&digest);
}
