//! `sessions show`: one session's calls as a timeline, or its events as recorded.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use chaperone_recording::{RecordedEvent, merge_by_time};
use chaperone_recording_store::{read_session, summarize};

use crate::commands::{open_audit_api, open_session};
use crate::flags::{OutputFormat, ShowArgs};
use crate::timeline::{calls, render, short_time};

pub async fn run(args: ShowArgs) -> anyhow::Result<ExitCode> {
    if args.source.via_api() {
        return show_via_api(args).await;
    }
    let (source, location) =
        open_session(&args.source, &args.session, args.connection.as_deref()).await?;
    let bucket = &source.bucket;
    let streams = read_session(bucket, &location, &args.replica).await?;
    if streams.is_empty() {
        let all = read_session(bucket, &location, &[]).await?;
        let names: Vec<&str> = all.iter().map(|s| s.replica.as_str()).collect();
        bail!(
            "session {} has no stream of replica {} under {}; its replicas are: {}",
            args.session,
            args.replica.join(", "),
            bucket.url(&location.key_prefix()),
            names.join(", ")
        );
    }
    for stream in &streams {
        for problem in &stream.unreadable {
            eprintln!("warning: {problem}");
        }
    }
    let summary = summarize(&location, bucket.url(&location.key_prefix()), &streams);
    let events = merge_by_time(streams.iter().map(|s| s.events.clone()).collect());
    match args.output {
        OutputFormat::Json => print_json_lines(&events)?,
        OutputFormat::Text => {
            println!("Session:     {}", summary.session);
            println!("Location:    {}", summary.location);
            println!("Connection:  {}/{}", summary.namespace, summary.connection);
            if let Some(agent) = &summary.agent {
                println!(
                    "Agent:       {} (pod {}, uid {}, role session {})",
                    agent.service_account, agent.pod_name, agent.pod_uid, agent.role_session_name
                );
            }
            if let Some(started) = summary.started {
                println!("Started:     {}", short_time(started));
            }
            let replicas: Vec<String> = summary
                .replicas
                .iter()
                .map(|r| format!("{} ({}, {} events)", r.replica, r.status, r.events))
                .collect();
            println!("Replicas:    {}", replicas.join(", "));
            println!("Calls:       {} ({} denied)", summary.calls, summary.denied);
            println!(
                "Not verified here; run `kubectl chaperone sessions verify {}` before relying on it.",
                summary.session
            );
            println!();
            print!("{}", render(&calls(&events), streams.len() > 1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sessions show` through the audit API: the session and its events, with the operator's
/// verification.
async fn show_via_api(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let (api, namespace) = open_audit_api(&args.source).await?;
    let session = api.get(&namespace, &args.session).await?;
    let mut streams = api.streams(&namespace, &args.session).await?;
    if !args.replica.is_empty() {
        let names: Vec<String> = streams.iter().map(|s| s.replica.clone()).collect();
        streams.retain(|s| args.replica.contains(&s.replica));
        if streams.is_empty() {
            bail!(
                "session {} has no stream of replica {}; its replicas are: {}",
                args.session,
                args.replica.join(", "),
                names.join(", ")
            );
        }
    }
    let events = merge_by_time(streams.iter().map(|s| s.events.clone()).collect());
    match args.output {
        OutputFormat::Json => print_json_lines(&events)?,
        OutputFormat::Text => {
            let st = &session.status;
            println!("Session:     {}", args.session);
            println!("Location:    {}", st.location);
            println!("Connection:  {namespace}/{}", st.connection);
            if let Some(agent) = &st.agent {
                println!(
                    "Agent:       {} (pod {}, uid {})",
                    agent.service_account, agent.pod_name, agent.pod_uid
                );
            }
            if let Some(start) = &st.start {
                println!("Started:     {start}");
            }
            println!("Replicas:    {} ({})", st.replicas.join(", "), st.state);
            println!(
                "Calls:       {} ({} denied, {} approvals)",
                st.calls, st.denied, st.approvals
            );
            println!(
                "Verified:    {} by the operator: {}",
                st.verification.state, st.verification.reason
            );
            println!();
            print!("{}", render(&calls(&events), streams.len() > 1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The events as JSON Lines, each exactly as recorded.
fn print_json_lines(events: &[RecordedEvent]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for recorded in events {
        out.write_all(&recorded.line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
