//! `policy suggest`: the least policy that would have admitted what one or more recorded sessions
//! were allowed to do, as an IAM policy or an AgentConnection allow list.

use std::process::ExitCode;

use chaperone_recording::{Event, merge_by_time};

use crate::commands::{open_audit_api, open_source};
use crate::flags::{PolicyFormat, PolicySuggestArgs};
use crate::policy_builder::{PolicySuggestion, SessionEvents};
use chaperone_recording_store::locate_session;
use chaperone_recording_store::read_session;

pub async fn run(args: PolicySuggestArgs) -> anyhow::Result<ExitCode> {
    let read =
        if args.source.via_api() { read_via_api(&args).await? } else { read_direct(&args).await? };
    let inputs: Vec<SessionEvents<'_>> = read
        .iter()
        .map(|(session, connection, events)| SessionEvents {
            session,
            connection: connection.clone(),
            events,
        })
        .collect();
    let suggestion = PolicySuggestion::from_sessions(&inputs);
    eprintln!(
        "note: read without verifying; run `kubectl chaperone sessions verify` on each session before relying on this"
    );
    match args.format {
        PolicyFormat::Iam => {
            println!("{}", serde_json::to_string_pretty(&suggestion.iam_policy())?);
            for line in suggestion.refused_lines() {
                eprintln!("{line}");
            }
            let unclassified = suggestion.unclassified();
            if !unclassified.is_empty() {
                eprintln!(
                    "Allowed but not classified by the gateway, so no IAM action names them: {}",
                    unclassified.join(", ")
                );
            }
        }
        PolicyFormat::Agentconnection => print!("{}", suggestion.agent_connection_yaml()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Each session's (id, namespace/connection, events) from S3.
async fn read_direct(
    args: &PolicySuggestArgs,
) -> anyhow::Result<Vec<(String, String, Vec<Event>)>> {
    let source = open_source(&args.source, false).await?;
    let bucket = &source.bucket;
    let mut read: Vec<(String, String, Vec<Event>)> = Vec::new();
    for session in &args.sessions {
        let location = locate_session(
            bucket,
            session,
            source.namespace.as_deref(),
            args.connection.as_deref(),
        )
        .await?;
        let streams = read_session(bucket, &location, &[]).await?;
        for stream in &streams {
            for problem in &stream.unreadable {
                eprintln!("warning: {problem}: its calls are missing from the suggestion");
            }
        }
        let events = merge_by_time(streams.into_iter().map(|s| s.events).collect())
            .into_iter()
            .map(|recorded| recorded.event)
            .collect();
        read.push((
            session.clone(),
            format!("{}/{}", location.namespace(), location.connection()),
            events,
        ));
    }
    Ok(read)
}

/// Each session's (id, namespace/connection, events) through the audit API.
async fn read_via_api(
    args: &PolicySuggestArgs,
) -> anyhow::Result<Vec<(String, String, Vec<Event>)>> {
    let (api, namespace) = open_audit_api(&args.source).await?;
    let mut read = Vec::new();
    for session in &args.sessions {
        let object = api.get(&namespace, session).await?;
        if args.connection.as_ref().is_some_and(|c| c != &object.status.connection) {
            anyhow::bail!(
                "session {session} is recorded for connection {}, not --connection {}",
                object.status.connection,
                args.connection.as_deref().unwrap_or_default()
            );
        }
        let streams = api.streams(&namespace, session).await?;
        let events = merge_by_time(streams.into_iter().map(|s| s.events).collect())
            .into_iter()
            .map(|recorded| recorded.event)
            .collect();
        read.push((session.clone(), format!("{namespace}/{}", object.status.connection), events));
    }
    Ok(read)
}
