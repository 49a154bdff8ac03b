//! The least policy that would have admitted what recorded sessions were allowed to do: an IAM
//! policy document and an AgentConnection `spec.policy.allow` list, with the calls that were denied
//! or not approved listed apart. Pure: events in, text out.

use std::collections::{BTreeMap, BTreeSet};

use chaperone_recording::{ApprovalDecision, Effect, Event, EventBody};
use serde_json::{Value, json};

/// One session's events, with where it was recorded.
pub struct SessionEvents<'a> {
    pub session: &'a str,
    /// `namespace/connection`.
    pub connection: String,
    pub events: &'a [Event],
}

/// A call that the sessions' policy did not admit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefusedCall {
    pub action: String,
    pub resources: Vec<String>,
    /// Why: the rule and object that denied, or the approval outcome.
    pub reason: String,
}

/// What the sessions needed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySuggestion {
    /// `session (namespace/connection)` of each input.
    pub sessions: Vec<String>,
    /// Each allowed action and the resources it was called on; an empty string stands for a call
    /// whose resource the recording does not know.
    pub allowed: BTreeMap<String, BTreeSet<String>>,
    /// Calls refused by policy, with how many times each was seen.
    pub denied: BTreeMap<RefusedCall, usize>,
    /// Calls held for approval that were denied or timed out.
    pub unapproved: BTreeMap<RefusedCall, usize>,
}

/// Actions the gateway answers itself to hand out the session's credentials; never a policy matter.
const GATEWAY_ISSUED: &[&str] = &["sts:AssumeRoleWithWebIdentity"];

impl PolicySuggestion {
    /// Collects the allowed, denied and unapproved calls of `sessions`.
    pub fn from_sessions(sessions: &[SessionEvents<'_>]) -> Self {
        let mut suggestion = Self::default();
        for session in sessions {
            suggestion.sessions.push(format!("{} ({})", session.session, session.connection));
            let outcomes: BTreeMap<&str, ApprovalDecision> = session
                .events
                .iter()
                .filter_map(|e| match &e.body {
                    EventBody::Approval(a) => Some((a.call.as_str(), a.outcome)),
                    _ => None,
                })
                .collect();
            for event in session.events {
                match &event.body {
                    EventBody::Request(request) if request.decision.effect == Effect::Allow => {
                        for action in &request.aws.actions {
                            if GATEWAY_ISSUED.contains(&action.as_str()) {
                                continue;
                            }
                            let resources = suggestion.allowed.entry(action.clone()).or_default();
                            if request.aws.resources.is_empty() {
                                resources.insert(String::new());
                            }
                            resources.extend(request.aws.resources.iter().cloned());
                        }
                    }
                    EventBody::Denied(denied) => {
                        let (list, reason) = match outcomes.get(denied.call.as_str()) {
                            Some(ApprovalDecision::Denied) => {
                                (&mut suggestion.unapproved, "denied by a reviewer".to_owned())
                            }
                            Some(ApprovalDecision::TimedOut) => {
                                (&mut suggestion.unapproved, "approval timed out".to_owned())
                            }
                            _ => (
                                &mut suggestion.denied,
                                format!(
                                    "denied by {}{}",
                                    denied.decision.object.as_deref().unwrap_or("the gateway"),
                                    denied
                                        .decision
                                        .rule
                                        .as_deref()
                                        .map(|r| format!(" {r}"))
                                        .unwrap_or_default()
                                ),
                            ),
                        };
                        for action in &denied.aws.actions {
                            let call = RefusedCall {
                                action: action.clone(),
                                resources: denied.aws.resources.clone(),
                                reason: reason.clone(),
                            };
                            *list.entry(call).or_default() += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        suggestion
    }

    /// Allowed actions the gateway could not classify (`<service>:Unknown`): no IAM policy can name
    /// them.
    pub fn unclassified(&self) -> Vec<&str> {
        self.allowed.keys().filter(|a| a.ends_with(":Unknown")).map(String::as_str).collect()
    }

    /// The least IAM policy document: one statement per service and resource set, actions sorted,
    /// resources the recording knows (else `*`).
    pub fn iam_policy(&self) -> Value {
        // service -> resource set -> actions
        let mut groups: BTreeMap<&str, BTreeMap<Vec<&str>, Vec<&str>>> = BTreeMap::new();
        for (action, resources) in &self.allowed {
            if action.ends_with(":Unknown") {
                continue;
            }
            let service = action.split_once(':').map_or(action.as_str(), |(s, _)| s);
            let resources: Vec<&str> = if resources.contains("") {
                vec!["*"]
            } else {
                resources.iter().map(String::as_str).collect()
            };
            groups.entry(service).or_default().entry(resources).or_default().push(action);
        }
        let mut statements = Vec::new();
        for (service, by_resources) in groups {
            let base: String = capitalize(service);
            for (index, (resources, mut actions)) in by_resources.into_iter().enumerate() {
                actions.sort_unstable();
                let sid = if index == 0 { base.clone() } else { format!("{base}{}", index + 1) };
                let resource = match resources.as_slice() {
                    ["*"] => json!("*"),
                    _ => json!(resources),
                };
                statements.push(json!({
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": resource,
                }));
            }
        }
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    /// The refused calls, one line each, for comments or stderr.
    pub fn refused_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut section = |title: &str, calls: &BTreeMap<RefusedCall, usize>| {
            if calls.is_empty() {
                return;
            }
            lines.push(title.to_owned());
            for (call, count) in calls {
                let on = if call.resources.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", call.resources.join(", "))
                };
                let times =
                    if *count == 1 { "1 call".to_owned() } else { format!("{count} calls") };
                lines.push(format!("  {}{on} ({times}): {}", call.action, call.reason));
            }
        };
        section("Denied in these sessions, not admitted by this policy:", &self.denied);
        section(
            "Held for approval and not approved, not admitted by this policy:",
            &self.unapproved,
        );
        lines
    }

    /// A YAML merge patch for the AgentConnection: `spec.policy.allow` naming exactly the allowed
    /// actions, with the sessions and the refused calls as comments.
    pub fn agent_connection_yaml(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# AgentConnection spec.policy suggested by `kubectl chaperone policy suggest` from:\n",
        );
        for session in &self.sessions {
            out.push_str(&format!("#   {session}\n"));
        }
        out.push_str(&format!(
            "# It allows exactly the {} action(s) these sessions were allowed; every other action is denied.\n",
            self.allowed.len()
        ));
        out.push_str(
            "# Apply it as a merge patch (spec.policy.deny and spec.policy.statements are kept):\n\
             #   kubectl patch agentconnection NAME -n NAMESPACE --type merge --patch-file policy.yaml\n",
        );
        out.push_str("spec:\n  policy:\n");
        if self.allowed.is_empty() {
            out.push_str("    allow: []\n");
        } else {
            out.push_str("    allow:\n");
            for action in self.allowed.keys() {
                out.push_str(&format!("      - {}\n", yaml_scalar(action)));
            }
        }
        for line in self.refused_lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out
    }
}

/// `dynamodb` -> `Dynamodb`; non-alphanumerics dropped (a Sid is alphanumeric).
fn capitalize(service: &str) -> String {
    let clean: String = service.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut chars = clean.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => "Service".into(),
    }
}

/// An action as a YAML scalar: plain when safe, else double-quoted (JSON escaping is valid YAML).
fn yaml_scalar(text: &str) -> String {
    let plain =
        text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'))
            && text.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if plain { text.to_owned() } else { serde_json::to_string(text).unwrap_or_default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_recording::{
        Approval, AwsCall, Body, Decision, Denied, Hash256, Request, Timestamp, Timings,
    };

    fn event(body: EventBody) -> Event {
        Event {
            v: 1,
            seq: 1,
            ts: Timestamp::parse("2026-11-29T20:00:00Z").unwrap(),
            session: "s".into(),
            replica: "gw-0".into(),
            prev: Hash256::of(b""),
            body,
        }
    }

    fn aws(action: &str, resources: &[&str]) -> AwsCall {
        AwsCall {
            service: action.split(':').next().unwrap().into(),
            operation: action.split(':').nth(1).unwrap().into(),
            actions: vec![action.into()],
            resources: resources.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn allowed(call: &str, action: &str, resources: &[&str]) -> Event {
        event(EventBody::Request(Request {
            call: call.into(),
            method: "POST".into(),
            path: "/".into(),
            query: vec![],
            headers: vec![],
            body: Body::empty(),
            aws: aws(action, resources),
            decision: Decision { effect: Effect::Allow, object: None, rule: None },
            timings: Timings::default(),
            redacted: vec![],
        }))
    }

    fn denied(call: &str, action: &str, rule: &str) -> Event {
        event(EventBody::Denied(Denied {
            call: call.into(),
            method: "POST".into(),
            path: "/".into(),
            query: vec![],
            headers: vec![],
            body: Body::empty(),
            aws: aws(action, &[]),
            decision: Decision {
                effect: Effect::Deny,
                object: Some("AgentConnection/team-a/prod".into()),
                rule: Some(rule.into()),
            },
            timings: Timings::default(),
            status: 403,
            error_code: "AccessDenied".into(),
            message: "denied".into(),
            redacted: vec![],
        }))
    }

    fn sessions() -> (Vec<Event>, Vec<Event>) {
        let first = vec![
            allowed("1", "s3:PutObject", &["arn:aws:s3:::data/a.txt"]),
            allowed("2", "s3:GetObject", &["arn:aws:s3:::data/a.txt"]),
            allowed("3", "s3:CreateBucket", &["arn:aws:s3:::data"]),
            allowed("4", "sts:GetCallerIdentity", &[]),
            allowed("5", "sts:AssumeRoleWithWebIdentity", &[]),
            denied("6", "iam:ListUsers", "policy.deny[0]: iam:*"),
        ];
        let second = vec![
            allowed("1", "dynamodb:PutItem", &["arn:aws:dynamodb:us-east-1:1:table/builds"]),
            allowed("2", "s3:PutObject", &["arn:aws:s3:::data/b.txt"]),
            event(EventBody::Approval(Approval {
                call: "3".into(),
                approval_request: "ar".into(),
                rule: "deletes".into(),
                outcome: ApprovalDecision::Denied,
                approvers: vec![],
                reason: Some("no".into()),
                waited_ms: 5,
                fingerprint: "f".into(),
            })),
            denied("3", "s3:DeleteBucket", "approval"),
            denied("4", "iam:ListUsers", "policy.deny[0]: iam:*"),
        ];
        (first, second)
    }

    fn suggestion() -> PolicySuggestion {
        let (first, second) = sessions();
        PolicySuggestion::from_sessions(&[
            SessionEvents { session: "s1", connection: "team-a/prod".into(), events: &first },
            SessionEvents { session: "s2", connection: "team-a/prod".into(), events: &second },
        ])
    }

    #[test]
    fn the_iam_policy_groups_actions_by_service_and_resources_sorted_with_known_arns() {
        let policy = suggestion().iam_policy();
        assert_eq!(
            policy,
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "Dynamodb", "Effect": "Allow", "Action": ["dynamodb:PutItem"],
                     "Resource": ["arn:aws:dynamodb:us-east-1:1:table/builds"]},
                    {"Sid": "S3", "Effect": "Allow", "Action": ["s3:CreateBucket"],
                     "Resource": ["arn:aws:s3:::data"]},
                    {"Sid": "S32", "Effect": "Allow", "Action": ["s3:GetObject"],
                     "Resource": ["arn:aws:s3:::data/a.txt"]},
                    {"Sid": "S33", "Effect": "Allow", "Action": ["s3:PutObject"],
                     "Resource": ["arn:aws:s3:::data/a.txt", "arn:aws:s3:::data/b.txt"]},
                    {"Sid": "Sts", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"],
                     "Resource": "*"},
                ]
            })
        );
    }

    #[test]
    fn the_allow_list_names_exactly_the_allowed_actions_and_lists_refusals_apart() {
        let yaml = suggestion().agent_connection_yaml();
        let allow: Vec<&str> = yaml.lines().filter_map(|l| l.strip_prefix("      - ")).collect();
        assert_eq!(
            allow,
            [
                "dynamodb:PutItem",
                "s3:CreateBucket",
                "s3:GetObject",
                "s3:PutObject",
                "sts:GetCallerIdentity"
            ]
        );
        assert!(yaml.contains("spec:\n  policy:\n    allow:\n"), "{yaml}");
        assert!(
            yaml.contains(
                "#   iam:ListUsers (2 calls): denied by AgentConnection/team-a/prod policy.deny[0]: iam:*"
            ),
            "{yaml}"
        );
        assert!(yaml.contains("#   s3:DeleteBucket (1 call): denied by a reviewer"), "{yaml}");
        assert!(!yaml.contains("AssumeRoleWithWebIdentity"), "{yaml}");
    }

    #[test]
    fn actions_with_an_unknown_resource_get_a_star_and_unclassified_calls_stay_out_of_iam() {
        let events = vec![
            allowed("1", "s3:GetObject", &["arn:aws:s3:::data/a.txt"]),
            allowed("2", "s3:GetObject", &[]),
            allowed("3", "s3:Unknown", &[]),
        ];
        let suggestion = PolicySuggestion::from_sessions(&[SessionEvents {
            session: "s",
            connection: "a/b".into(),
            events: &events,
        }]);
        assert_eq!(suggestion.unclassified(), ["s3:Unknown"]);
        assert_eq!(
            suggestion.iam_policy()["Statement"],
            json!([{"Sid": "S3", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}])
        );
    }
}
