//! `replay`: a recorded session's calls re-issued, in order, against a sandbox, signed with the
//! sandbox's credentials, and each answer compared with the recorded one.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use chaperone_recording::{
    Event, Hash256, SessionVerifier, Timestamp, VerifyOptions, merge_by_time,
};
use http::{HeaderName, HeaderValue};

use crate::commands::verify::TrustSources;
use crate::commands::{open_audit_api, open_session};
use crate::flags::ReplayArgs;
use crate::replay_diff::{ResponseView, Verdict, compare};
use crate::replay_plan::{Action, ReplayRequest, plan};
use chaperone_recording_store::{read_session, session_keys};

/// Exit status when some call's answer differed.
const EXIT_DIFFERED: u8 = 1;
/// Exit status when the replay could not be done (or a call could not be sent).
const EXIT_ERROR: u8 = 2;

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let trust = TrustSources::from(&args.trust);
    if !args.no_verify && !args.source.via_api() {
        trust.ensure_any().context(
            "replay verifies the session before re-issuing anything (or pass --no-verify to replay an unverified recording)",
        )?;
    }
    let grace = args.trust.grace()?;
    let endpoint = args.endpoint.trim_end_matches('/').to_owned();
    let base: http::Uri = endpoint.parse().with_context(|| {
        format!("--endpoint {:?} is not a URL like http://localhost:5000", args.endpoint)
    })?;
    if base.authority().is_none() || base.scheme().is_none() {
        bail!("--endpoint {:?} must be an absolute URL like http://localhost:5000", args.endpoint);
    }
    let events = if args.source.via_api() {
        events_via_api(&args).await?
    } else {
        events_direct(&args, &trust, grace).await?
    };

    let sandbox = Sandbox::open(&args, endpoint).await?;
    let steps = plan(&events, args.only_mutating);
    let total = steps.len();
    let (mut same, mut status_differs, mut body_differs, mut skipped, mut errors) = (0, 0, 0, 0, 0);
    for (index, step) in steps.iter().enumerate() {
        let prefix = format!("[{}/{total}] {}", index + 1, step.label);
        let request = match &step.action {
            Action::Skip { reason } => {
                println!("{prefix}: skipped: {reason}");
                skipped += 1;
                continue;
            }
            Action::Replay(request) => request,
        };
        match sandbox.send(request).await {
            Err(e) => {
                println!("{prefix}: error: {e:#}");
                errors += 1;
                eprintln!("error: the sandbox at {} did not answer; stopping", sandbox.endpoint);
                break;
            }
            Ok((status, content_type, body)) => {
                let verdict = compare(
                    ResponseView {
                        status: request.recorded_status,
                        content_type: request.recorded_content_type.as_deref(),
                        body: &request.recorded_body,
                    },
                    ResponseView { status, content_type: content_type.as_deref(), body: &body },
                    request.recorded_body_comparable.clone(),
                );
                match verdict {
                    Verdict::Same { note } => {
                        same += 1;
                        match note {
                            Some(note) => println!("{prefix}: same ({note})"),
                            None => println!("{prefix}: same"),
                        }
                    }
                    Verdict::StatusDiffers { recorded, replayed } => {
                        status_differs += 1;
                        println!(
                            "{prefix}: status differs: recorded {recorded}, replayed {replayed}"
                        );
                        let excerpt = String::from_utf8_lossy(&body);
                        let excerpt = excerpt.trim();
                        if !excerpt.is_empty() {
                            let cut: String = excerpt.chars().take(300).collect();
                            println!("    replayed body: {}", cut.replace('\n', " "));
                        }
                    }
                    Verdict::BodyDiffers { diff } => {
                        body_differs += 1;
                        println!("{prefix}: body differs (- recorded, + replayed)");
                        println!("{diff}");
                    }
                }
                if args.stop_on_diff && status_differs + body_differs > 0 {
                    println!("stopping at the first difference (--stop-on-diff)");
                    break;
                }
            }
        }
    }
    println!(
        "replayed {} of {total} calls against {}: {same} same, {status_differs} status differs, {body_differs} body differs, {skipped} skipped{}",
        same + status_differs + body_differs,
        sandbox.endpoint,
        if errors > 0 { format!(", {errors} error(s)") } else { String::new() }
    );
    Ok(if errors > 0 {
        ExitCode::from(EXIT_ERROR)
    } else if status_differs + body_differs > 0 {
        ExitCode::from(EXIT_DIFFERED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The sandbox: where calls go and what signs them.
struct Sandbox {
    endpoint: String,
    credentials: Credentials,
    /// `--sandbox-region`.
    region_flag: Option<String>,
    /// The sandbox profile's or environment's region.
    default_region: String,
    client: reqwest::Client,
}

impl Sandbox {
    async fn open(args: &ReplayArgs, endpoint: String) -> anyhow::Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        let described = match &args.sandbox_profile {
            Some(profile) => {
                loader = loader.profile_name(profile).credentials_provider(
                    ProfileFileCredentialsProvider::builder().profile_name(profile).build(),
                );
                format!("profile {profile:?} (--sandbox-profile)")
            }
            None => "the AWS environment (AWS_ACCESS_KEY_ID..., AWS_PROFILE, SSO, instance role)"
                .to_owned(),
        };
        let shared = loader.load().await;
        let provider = shared.credentials_provider().with_context(|| {
            format!("no credentials for the sandbox: nothing configured in {described}")
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            anyhow::anyhow!(
                "no credentials for the sandbox from {described}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })?;
        let default_region =
            shared.region().map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
        eprintln!(
            "replaying against {endpoint} with access key {} from {described}",
            credentials.access_key_id()
        );
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(300))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            endpoint,
            credentials,
            region_flag: args.sandbox_region.clone(),
            default_region,
            client,
        })
    }

    /// Signs and sends one call; returns status, content type and body.
    async fn send(&self, call: &ReplayRequest) -> anyhow::Result<(u16, Option<String>, Vec<u8>)> {
        let region =
            self.region_flag.as_deref().or(call.region.as_deref()).unwrap_or(&self.default_region);
        let signed =
            sign_for_sandbox(&self.endpoint, call, region, &self.credentials, SystemTime::now())?;
        let request = reqwest::Request::try_from(signed).context("building the request")?;
        let response = self
            .client
            .execute(request)
            .await
            .with_context(|| format!("sending {} {}", call.method, call.path_and_query))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.context("reading the sandbox's answer")?.to_vec();
        Ok((status, content_type, body))
    }
}

/// The recorded call as an HTTP request to `endpoint`, signed with SigV4 for `region`.
fn sign_for_sandbox(
    endpoint: &str,
    call: &ReplayRequest,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> anyhow::Result<http::Request<Vec<u8>>> {
    let uri: http::Uri = format!("{endpoint}{}", call.path_and_query)
        .parse()
        .with_context(|| format!("{endpoint}{} is not a valid URL", call.path_and_query))?;
    let authority = uri.authority().context("the endpoint has no host")?.as_str().to_owned();
    let is_s3 = call.service == "s3";
    let mut builder = http::Request::builder().method(call.method.as_str()).uri(uri.clone());
    for (name, value) in &call.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("recorded header name {name:?} is not valid"))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .with_context(|| format!("recorded header {name} has a value that is not valid"))?;
        builder = builder.header(name, value);
    }
    builder = builder.header(http::header::HOST, authority.as_str());
    let payload_hash = Hash256::of(&call.body).to_hex();
    if is_s3 {
        builder = builder.header("x-amz-content-sha256", payload_hash.as_str());
    }
    let mut request = builder.body(call.body.clone()).context("building the request")?;

    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode =
        if is_s3 { PercentEncodingMode::Single } else { PercentEncodingMode::Double };
    settings.uri_path_normalization_mode =
        if is_s3 { UriPathNormalizationMode::Disabled } else { UriPathNormalizationMode::Enabled };
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.session_token_mode = SessionTokenMode::Include;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(&call.service)
        .time(now)
        .settings(settings)
        .build()
        .context("signing parameters")?
        .into();
    let header_pairs: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
        .collect();
    let uri_text = uri.to_string();
    let signable = SignableRequest::new(
        call.method.as_str(),
        &uri_text,
        header_pairs.into_iter(),
        SignableBody::Precomputed(payload_hash.clone()),
    )
    .context("preparing the request for signing")?;
    let (instructions, _) = sign(signable, &params).context("signing")?.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

/// The session's events from S3, verified against the keys the auditor trusts unless
/// --no-verify.
async fn events_direct(
    args: &ReplayArgs,
    trust: &TrustSources<'_>,
    grace: Duration,
) -> anyhow::Result<Vec<Event>> {
    let (source, location) =
        open_session(&args.source, &args.session, args.connection.as_deref()).await?;
    let bucket = &source.bucket;
    let events: Vec<Event> = if args.no_verify {
        eprintln!(
            "warning: --no-verify: replaying session {} without verifying it; an altered recording would be replayed as if the agent had made those calls",
            args.session
        );
        let streams = read_session(bucket, &location, &[]).await?;
        for stream in &streams {
            for problem in &stream.unreadable {
                eprintln!("warning: {problem}");
            }
        }
        merge_by_time(streams.into_iter().map(|s| s.events).collect())
            .into_iter()
            .map(|r| r.event)
            .collect()
    } else {
        let (keys, _) = trust.load(&source, &args.source.cluster, &location).await?;
        let object_keys = session_keys(bucket, &location).await?;
        let objects = bucket.get_all(&object_keys).await?;
        let options = VerifyOptions { now: Timestamp::now(), digest_grace: grace };
        let report = SessionVerifier::new(keys, options).verify(&objects);
        if !report.is_valid() {
            for problem in &report.problems {
                eprintln!("{problem}");
            }
            bail!(
                "session {} is NOT intact ({} problem(s) above, under {}): refusing to replay it; `kubectl chaperone sessions verify` explains each problem, and --no-verify replays it anyway",
                args.session,
                report.problems.len(),
                bucket.url(&location.key_prefix())
            );
        }
        println!("session {}: verified intact", args.session);
        merge_by_time(report.streams.into_iter().map(|s| s.events).collect())
            .into_iter()
            .map(|r| r.event)
            .collect()
    };
    Ok(events)
}

/// The session's events through the audit API, refused unless the operator verified it (or
/// --no-verify).
async fn events_via_api(args: &ReplayArgs) -> anyhow::Result<Vec<Event>> {
    if !args.trust.public_key.is_empty()
        || args.trust.public_keys_file.is_some()
        || args.trust.cluster_keys
    {
        bail!(
            "--public-key, --public-keys-file and --cluster-keys verify objects you read from S3 yourself:              add --direct with --bucket or --recording-policy (without them, replay relies on the              operator's verification through the audit API)"
        );
    }
    let (api, namespace) = open_audit_api(&args.source).await?;
    if args.no_verify {
        eprintln!(
            "warning: --no-verify: replaying session {} without verifying it; an altered recording would be replayed as if the agent had made those calls",
            args.session
        );
    } else {
        let session = api.get(&namespace, &args.session).await?;
        let verification = &session.status.verification;
        if verification.state != "Verified" {
            bail!(
                "session {} is not verified by the operator ({}: {}): refusing to replay it; `kubectl chaperone sessions verify --direct` checks it against keys you trust, and --no-verify replays it anyway",
                args.session,
                verification.state,
                verification.reason
            );
        }
        println!("session {}: verified intact by the operator", args.session);
    }
    let streams = api.streams(&namespace, &args.session).await?;
    Ok(merge_by_time(streams.into_iter().map(|s| s.events).collect())
        .into_iter()
        .map(|r| r.event)
        .collect())
}
