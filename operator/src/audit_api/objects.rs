//! The audit API's answers as JSON: sessions from their summaries, discovery, Tables for
//! `kubectl get`, and Status objects for refusals.

use chaperone_crds::{
    AUDIT_API_VERSION, AUDIT_GROUP, AUDIT_VERSION, Session, SessionEventList, SessionList,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde_json::{Value, json};

/// `kind: SessionList`, sorted by start (then id).
pub fn session_list(mut items: Vec<Session>) -> SessionList {
    items.sort_by(|a, b| {
        (&a.status.start, &a.metadata.name).cmp(&(&b.status.start, &b.metadata.name))
    });
    SessionList {
        api_version: AUDIT_API_VERSION.to_owned(),
        kind: "SessionList".to_owned(),
        metadata: ListMeta::default(),
        items,
    }
}

/// `kind: SessionEventList`: one page of events and the token of the next.
pub fn event_list(items: Vec<Value>, next: Option<String>, remaining: usize) -> SessionEventList {
    SessionEventList {
        api_version: AUDIT_API_VERSION.to_owned(),
        kind: "SessionEventList".to_owned(),
        metadata: ListMeta {
            continue_: next,
            remaining_item_count: (remaining > 0).then_some(remaining as i64),
            ..ListMeta::default()
        },
        items,
    }
}

/// The APIResourceList of `/apis/audit.chaperone.dev/v1alpha1`.
pub fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": AUDIT_API_VERSION,
        "resources": [
            {"name": "sessions", "singularName": "session", "namespaced": true, "kind": "Session",
             "verbs": ["get", "list"], "shortNames": ["chs"], "categories": ["chaperone"]},
            {"name": "sessions/events", "singularName": "", "namespaced": true,
             "kind": "SessionEventList", "verbs": ["get"]},
        ],
    })
}

/// The APIGroup of `/apis/audit.chaperone.dev`.
pub fn api_group() -> Value {
    let version = json!({"groupVersion": AUDIT_API_VERSION, "version": AUDIT_VERSION});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": AUDIT_GROUP,
        "versions": [version],
        "preferredVersion": version,
    })
}

/// True when the client asked for a Table (`kubectl get`).
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
    })
}

/// A `meta.k8s.io/v1` Table of sessions with the columns `kubectl get sessions` prints.
pub fn session_table(sessions: &[Session]) -> Value {
    let column = |name: &str, kind: &str, format: &str, description: &str, priority: u32| {
        json!({"name": name, "type": kind, "format": format, "description": description,
               "priority": priority})
    };
    let rows: Vec<Value> = sessions
        .iter()
        .map(|s| {
            let st = &s.status;
            json!({
                "cells": [
                    s.metadata.name,
                    st.connection,
                    st.agent.as_ref().map(|a| a.service_account.clone()).unwrap_or_default(),
                    st.start.clone().unwrap_or_default(),
                    st.calls,
                    st.denied,
                    st.approvals,
                    st.state,
                    st.verification.state,
                ],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": s.metadata},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            column("Name", "string", "name", "The session id.", 0),
            column("Connection", "string", "", "The AgentConnection.", 0),
            column("Agent", "string", "", "The agent's service account.", 0),
            column("Start", "string", "", "When the first event was recorded.", 0),
            column("Calls", "integer", "", "Calls recorded, forwarded or denied.", 0),
            column("Denied", "integer", "", "Calls denied.", 0),
            column("Approvals", "integer", "", "Approval decisions recorded.", 0),
            column("State", "string", "", "The replicas' stream states.", 0),
            column("Verified", "string", "", "The operator's verification.", 0),
        ],
        "rows": rows,
    })
}

/// A `v1` Status for a refusal: `code` with a CamelCase `reason` and a `message` that says what
/// to do.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_table_accept_header_asks_for_a_table_and_plain_json_does_not() {
        assert!(wants_table(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_table(Some("application/json")));
        assert!(!wants_table(None));
    }

    #[test]
    fn discovery_names_sessions_and_their_events_subresource_read_only() {
        let list = resource_list();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sessions", "sessions/events"]);
        assert_eq!(list["resources"][0]["verbs"], json!(["get", "list"]));
    }
}
