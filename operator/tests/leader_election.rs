//! Leader election against the real API server: one holder at a time, released Leases are taken
//! over at once.

use std::time::Duration;

use chaperone_operator::runtime::leader_election::LeaderLease;
use chaperone_tests::{LocalEnv, objects::ensure_namespace};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

#[tokio::test]
async fn one_replica_holds_the_lease_until_it_releases_it_and_then_another_takes_over() {
    chaperone_operator::runtime::tls::install_crypto_provider();
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let client = env.control_plane.client().await.unwrap();
    let ns = "operator-leader-election";
    ensure_namespace(&client, ns).await.unwrap();
    let duration = Duration::from_secs(15);
    let first = LeaderLease::new(client.clone(), ns, "chaperone-operator", "replica-a", duration);
    let second = LeaderLease::new(client.clone(), ns, "chaperone-operator", "replica-b", duration);

    assert!(first.try_acquire_or_renew().await.unwrap(), "the first replica creates the Lease");
    assert!(
        !second.try_acquire_or_renew().await.unwrap(),
        "a fresh Lease held by another is followed"
    );
    assert!(first.try_acquire_or_renew().await.unwrap(), "the holder renews");
    let lease =
        Api::<Lease>::namespaced(client.clone(), ns).get("chaperone-operator").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("replica-a"));

    second.release().await.unwrap();
    assert!(first.try_acquire_or_renew().await.unwrap(), "a non-holder's release changes nothing");

    first.release().await.unwrap();
    assert!(second.try_acquire_or_renew().await.unwrap(), "a released Lease is taken over at once");
    assert!(!first.try_acquire_or_renew().await.unwrap());
    let lease = Api::<Lease>::namespaced(client, ns).get("chaperone-operator").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}
