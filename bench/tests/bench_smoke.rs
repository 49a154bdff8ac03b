//! The benchmark machinery, exercised without timing assertions: the quick mode with a few calls
//! per way completes every call with 2xx, every way, and the upstream verified every signature.

use std::{path::PathBuf, time::Duration};

use aws_credential_types::Credentials;
use chaperone_bench::{
    load::{Budget, client, run_cell},
    run::{Options, WayKind, run},
    scenario::{Scenario, Target},
    upstream::FastUpstream,
};

#[tokio::test]
async fn the_upstream_refuses_a_request_signed_with_another_secret() {
    let upstream = FastUpstream::start("AKIDBENCHUPSTREAM", "the-real-secret").await.unwrap();
    let http = client(1);
    let right = Credentials::new("AKIDBENCHUPSTREAM", "the-real-secret", None, None, "test");
    let wrong = Credentials::new("AKIDBENCHUPSTREAM", "another-secret", None, None, "test");
    for scenario in Scenario::ALL {
        let good = run_cell(
            &http,
            &Target::new(&upstream.endpoint(), right.clone()),
            scenario,
            1,
            Budget::Requests(2),
        )
        .await;
        assert_eq!((good.ok, good.errors), (2, 0), "{scenario:?}: {:?}", good.first_error);
        let bad = run_cell(
            &http,
            &Target::new(&upstream.endpoint(), wrong.clone()),
            scenario,
            1,
            Budget::Requests(1),
        )
        .await;
        assert_eq!((bad.ok, bad.errors), (0, 1), "{scenario:?} signed with the wrong secret");
    }
    assert_eq!(upstream.counters.verification(), (6, 3));
}

#[test]
fn quick_mode_completes_every_call_every_way_with_verified_signatures() {
    let gateway =
        chaperone_tests::paths::workspace_binary("chaperone-gateway", "chaperone-gateway")
            .expect("the chaperone-gateway binary builds");
    let options = Options {
        concurrency: vec![1, 8],
        budget: Budget::Requests(50),
        upload_bytes: 8 * 1024 * 1024,
        gateway_binary: gateway,
        bench_binary: PathBuf::from(env!("CARGO_BIN_EXE_chaperone-bench")),
        peers_dir: None,
        sigv4_proxy: None,
        pin: true,
        profile_requests: None,
        settle: Duration::from_secs(3),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let measurements = runtime.block_on(run(options)).expect("the quick run completes");

    let ways = [
        WayKind::Direct,
        WayKind::PassThrough,
        WayKind::GatewayUnrecorded,
        WayKind::GatewayRecorded,
        WayKind::GatewayRecordedWritten,
    ];
    assert_eq!(measurements.ways, ways);
    // Every cell once unpinned, and once pinned where the machine has two cores.
    let passes = match &measurements.pinning {
        Ok(_) => 2,
        Err(_) => 1,
    };
    assert_eq!(passes == 2, chaperone_bench::pin::online() >= 2, "{:?}", measurements.pinning);
    assert_eq!(measurements.cells.len(), Scenario::ALL.len() * 2 * ways.len() * passes);
    assert_eq!(
        measurements.cells.iter().filter(|c| c.pinned).count(),
        Scenario::ALL.len() * 2 * ways.len() * (passes - 1)
    );
    for cell in &measurements.cells {
        assert_eq!(
            (cell.result.ok, cell.result.errors),
            (50, 0),
            "{} c={} {}: {:?}",
            cell.scenario.name(),
            cell.concurrency,
            cell.way.name(),
            cell.result.first_error
        );
    }
    for cell in measurements.cells.iter().filter(|c| c.way.is_recording_gateway()) {
        let (events, fsyncs) = cell.spool_events_fsyncs.expect("the gateway's /metrics counts");
        // Each call spools its request before it is answered, and a response (fsynced up to
        // 10 ms later, so some may not be counted yet); a group commit serves one or more.
        assert!(
            events >= 50 && fsyncs >= 1 && fsyncs <= events,
            "{events} events, {fsyncs} fsyncs"
        );
    }
    assert_eq!(measurements.uploads.len(), 3);
    for upload in &measurements.uploads {
        assert_eq!(upload.result.outcome, Ok(200), "upload {}", upload.way.name());
    }
    let (verified, refused) = measurements.upstream_verification;
    assert_eq!(refused, 0, "signatures refused: {:?}", measurements.upstream_last_failure);
    // Every call the way forwarded, plus the uploads, reached the upstream and verified.
    assert!(verified >= measurements.cells.len() as u64 * 50 + 3, "only {verified} verified");
    assert!(measurements.recording_objects > 0, "the recorder uploaded nothing");
    let report = chaperone_bench::report::render(&measurements);
    assert!(report.contains("gateway, recording on"), "{report}");
    assert!(report.contains("gateway, recording on, Written"), "{report}");
    if passes == 2 {
        assert!(report.contains("the proxy under test on a core of its own"), "{report}");
    }
}
