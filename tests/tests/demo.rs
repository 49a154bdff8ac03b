//! `cargo xtask demo` stays working: the whole story runs to the end (operator process with its
//! webhooks, examples, gateway from the operator's Secrets, the AWS CLI session with a held and
//! approved delete-bucket, the recording listed, shown and verified). Every step checks its own
//! outcome and fails the run otherwise.

#[tokio::test]
async fn the_demo_runs_every_step_to_the_end() {
    chaperone_tests::control_plane::install_crypto_provider();
    chaperone_tests::demo::run(chaperone_tests::demo::DemoOptions { keep: false, images: None })
        .await
        .expect("the demo ran to the end");
}
