//! `sessions list`: sessions in the bucket, filtered, as a table or JSON.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chaperone_crds::{Session, SessionVerification};
use chaperone_recording::{EventBody, Timestamp};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::action_glob::ActionGlob;
use crate::commands::{open_audit_api, open_source};
use crate::flags::{ListArgs, OutputFormat};
use crate::text_table::TextTable;
use crate::time_bound::parse_time_bound;
use crate::timeline::short_time;
use chaperone_recording_store::{
    CatalogScope, ReplicaRecording, SessionSummary, TimeRange, find_sessions, read_session,
    summarize,
};

/// How many sessions are read at once.
const PARALLEL_SESSIONS: usize = 8;

pub async fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    let now = Timestamp::now();
    let bound = |text: &Option<String>, flag: &str| {
        text.as_deref()
            .map(|t| parse_time_bound(t, now))
            .transpose()
            .with_context(|| format!("reading {flag}"))
    };
    let range =
        TimeRange { since: bound(&args.since, "--since")?, until: bound(&args.until, "--until")? };
    let glob = args.action.as_deref().map(ActionGlob::new);
    if args.source.via_api() {
        return list_via_api(&args, range, glob.as_ref()).await;
    }
    let source = open_source(&args.source, args.all_namespaces).await?;
    let bucket = &source.bucket;
    let scope = CatalogScope {
        namespace: source.namespace.clone(),
        connection: args.connection.clone(),
        range,
    };
    let locations = find_sessions(bucket, &scope).await?;
    // Sessions are read a few at a time; each read fetches its objects in parallel too.
    let permits = Arc::new(Semaphore::new(PARALLEL_SESSIONS));
    let mut reads = JoinSet::new();
    for location in locations {
        let bucket = bucket.clone();
        let permits = Arc::clone(&permits);
        reads.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let streams = read_session(&bucket, &location, &[]).await;
            (location, streams)
        });
    }
    let mut summaries: Vec<SessionSummary> = Vec::new();
    while let Some(joined) = reads.join_next().await {
        let (location, streams) = joined.context("a session read task failed")?;
        let streams = streams?;
        if let Some(glob) = &glob
            && !has_action(&streams, glob)
        {
            continue;
        }
        let summary = summarize(&location, bucket.url(&location.key_prefix()), &streams);
        if let Some(agent) = &args.agent
            && summary.agent.as_ref().is_none_or(|a| &a.service_account != agent)
        {
            continue;
        }
        for problem in &summary.unreadable {
            eprintln!("warning: session {}: {problem}", summary.session);
        }
        summaries.push(summary);
    }
    summaries.sort_by(|a, b| (a.started, &a.session).cmp(&(b.started, &b.session)));
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summaries)?),
        OutputFormat::Text if summaries.is_empty() => {
            eprintln!(
                "No sessions found under {}.",
                bucket.url(&format!("{}v1/", bucket.prefix()))
            );
        }
        OutputFormat::Text => {
            let sessions: Vec<Session> =
                summaries.iter().map(|s| s.to_session(SessionVerification::default())).collect();
            print_table(&sessions, false);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// True when some call of the session (forwarded or denied) has an action matching `glob`.
fn has_action(streams: &[ReplicaRecording], glob: &ActionGlob) -> bool {
    streams.iter().flat_map(|s| &s.events).any(|recorded| match &recorded.event.body {
        EventBody::Request(request) => request.aws.actions.iter().any(|a| glob.matches(a)),
        EventBody::Denied(denied) => denied.aws.actions.iter().any(|a| glob.matches(a)),
        _ => false,
    })
}

/// `sessions list` through the audit API: the operator's summaries and verification, filtered
/// here; `--action` reads each candidate's events (each read is logged like any other).
async fn list_via_api(
    args: &ListArgs,
    range: TimeRange,
    glob: Option<&ActionGlob>,
) -> anyhow::Result<ExitCode> {
    let (api, namespace) = open_audit_api(&args.source).await?;
    let list = api.list((!args.all_namespaces).then_some(namespace.as_str())).await?;
    let mut sessions = Vec::new();
    for session in list.items {
        let status = &session.status;
        if args.connection.as_ref().is_some_and(|c| c != &status.connection)
            || args.agent.as_ref().is_some_and(|a| {
                status.agent.as_ref().is_none_or(|agent| &agent.service_account != a)
            })
            || status
                .start
                .as_deref()
                .and_then(|s| Timestamp::parse(s).ok())
                .is_some_and(|t| !range.contains(t))
        {
            continue;
        }
        if let Some(glob) = glob {
            let name = session.metadata.name.clone().unwrap_or_default();
            let ns = session.metadata.namespace.clone().unwrap_or_default();
            let streams = api.streams(&ns, &name).await?;
            if !has_action(&streams, glob) {
                continue;
            }
        }
        sessions.push(session);
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&sessions)?),
        OutputFormat::Text if sessions.is_empty() => {
            eprintln!(
                "No sessions found in {}.",
                if args.all_namespaces { "any namespace you may list" } else { namespace.as_str() }
            );
        }
        OutputFormat::Text => print_table(&sessions, true),
    }
    Ok(ExitCode::SUCCESS)
}

/// The text table of `sessions`; through the audit API it adds DENIED, APPROVALS and the
/// operator's VERIFIED.
fn print_table(sessions: &[Session], api: bool) {
    let mut header = vec!["SESSION", "NAMESPACE", "CONNECTION", "AGENT", "POD", "STARTED", "CALLS"];
    if api {
        header.extend(["DENIED", "APPROVALS"]);
    }
    header.push("STATUS");
    if api {
        header.push("VERIFIED");
    }
    let mut table = TextTable::new(&header);
    for s in sessions {
        let st = &s.status;
        let agent = st.agent.as_ref();
        let mut row = vec![
            s.metadata.name.clone().unwrap_or_default(),
            s.metadata.namespace.clone().unwrap_or_default(),
            st.connection.clone(),
            agent.map_or("-".to_owned(), |a| a.service_account.clone()),
            agent.map_or("-".to_owned(), |a| a.pod_name.clone()),
            st.start
                .as_deref()
                .and_then(|t| Timestamp::parse(t).ok())
                .map_or("-".to_owned(), short_time),
            st.calls.to_string(),
        ];
        if api {
            row.extend([st.denied.to_string(), st.approvals.to_string()]);
        }
        row.push(st.state.clone());
        if api {
            row.push(st.verification.state.clone());
        }
        table.push(row);
    }
    print!("{}", table.render());
}
