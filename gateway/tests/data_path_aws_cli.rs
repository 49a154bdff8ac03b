//! The real AWS CLI through the real gateway, with only the environment the pod webhook injects,
//! against moto with signature checking on (so a wrong re-signing fails).

use std::path::Path;

use chaperone_tests::{
    LocalEnv,
    gateway::{GatewayProcess, GatewaySpec, aws_cli},
};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chaperone-gateway"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_completes_a_real_session_through_the_gateway() {
    let env = LocalEnv::shared();
    let _logs = env.logs_on_failure();
    let gateway = GatewayProcess::start(env, binary(), GatewaySpec::new("e2e-cli")).await.unwrap();
    let agent = gateway.agent_env(env, "pr-bot").await.unwrap();
    let run = |args: &[&str]| {
        let (ok, out, err) = aws_cli(env, &agent, args);
        if !ok {
            eprintln!("----- gateway log -----\n{}", gateway.log());
        }
        assert!(ok, "aws {} failed:\n{err}", args.join(" "));
        out
    };

    let identity = run(&["sts", "get-caller-identity"]);
    assert!(identity.contains("assumed-role/chaperone/e2e-cli/prod-aws/pr-bot"), "{identity}");

    run(&["s3", "mb", "s3://cli-data"]);
    let file = gateway.dir.join("hello.txt");
    std::fs::write(&file, "hello through the gateway\n").unwrap();
    run(&["s3", "cp", file.to_str().unwrap(), "s3://cli-data/greetings/hello.txt"]);
    let listing = run(&["s3", "ls", "s3://cli-data/greetings/"]);
    assert!(listing.contains("hello.txt"), "{listing}");
    let back = gateway.dir.join("back.txt");
    run(&["s3", "cp", "s3://cli-data/greetings/hello.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello through the gateway\n");
    run(&["s3", "rm", "s3://cli-data/greetings/hello.txt"]);
}
