//! Notifications of new ApprovalRequests: the message a receiver gets (pure, built with serde)
//! and one delivery attempt over HTTP (thin).
//!
//! Two formats, chosen by the ApprovalRule's `notify.webhook.format`:
//! - [`json_notification`]: Chaperone's own document, every value as the ApprovalRequest holds
//!   it (serde escapes what JSON needs; nothing in a value can change the document's shape);
//! - [`slack_notification`]: Slack's `text` + `blocks`, where everything that comes from the
//!   request is escaped for Slack's mrkdwn (`&`, `<`, `>`) and shown as code, so agent-chosen
//!   text (a bucket key, a tag) cannot become a link, a mention such as `<!channel>`, or
//!   formatting.
//!
//! Both carry the command that approves: `kubectl chaperone approvals approve NAME -n NS`.

use std::time::Duration;

use chaperone_crds::{AgentIdentity, ApprovalRequest, WebhookFormat};
use serde::Serialize;

/// What the JSON document says it is.
pub const JSON_KIND: &str = "ApprovalRequestPending";
/// Version of the JSON document's shape.
pub const JSON_VERSION: &str = "chaperone.dev/notification.v1";
/// How long one delivery attempt may take.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Resources listed in a Slack message (the rest are counted).
const SLACK_RESOURCES: usize = 5;
/// Characters of one value shown in a Slack message, before escaping.
const SLACK_VALUE_CHARS: usize = 300;
/// Characters of the parameters preview shown in a Slack message, before escaping (escaping at
/// most quintuples it; Slack allows 3000 per section).
const SLACK_PREVIEW_CHARS: usize = 500;
/// Characters of a receiver's answer kept in an error.
const ANSWER_CHARS: usize = 200;

/// Why a notification could not be built or delivered. Messages never contain the webhook URL:
/// URLs of incoming webhooks are credentials.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The ApprovalRequest lacks its name or namespace.
    #[error("the ApprovalRequest has no {0}")]
    Unnamed(&'static str),
    /// The document could not be serialized.
    #[error("encoding the notification: {0}")]
    Encode(#[from] serde_json::Error),
    /// The URL in the Secret is not usable.
    #[error("the webhook URL in {source_ref} is not an http(s) URL; put the full URL there")]
    BadUrl {
        /// `Secret <ns>/<name> key <key>`.
        source_ref: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
    /// The request did not get an answer.
    #[error("posting to the webhook failed: {0}")]
    Transport(String),
    /// The receiver answered with a non-2xx status.
    #[error("the webhook answered {status}: {answer}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        answer: String,
    },
}

/// `kubectl chaperone approvals approve <name> -n <namespace>`.
pub fn approve_command(name: &str, namespace: &str) -> String {
    format!("kubectl chaperone approvals approve {name} -n {namespace}")
}

/// `kubectl chaperone approvals deny <name> -n <namespace> --reason "..."`.
pub fn deny_command(name: &str, namespace: &str) -> String {
    format!("kubectl chaperone approvals deny {name} -n {namespace} --reason \"...\"")
}

/// The name of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectName {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// The generic JSON notification of a pending ApprovalRequest.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonNotification {
    /// Always [`JSON_KIND`].
    pub kind: &'static str,
    /// Always [`JSON_VERSION`].
    pub version: &'static str,
    /// The ApprovalRequest.
    pub approval_request: ObjectName,
    /// The ApprovalRule holding the call.
    pub rule: String,
    /// The AgentConnection the call came through.
    pub connection: String,
    /// The agent's recording session.
    pub session_id: String,
    /// The agent.
    pub agent: AgentIdentity,
    /// IAM actions of the call.
    pub actions: Vec<String>,
    /// Resource ARNs of the call.
    pub resources: Vec<String>,
    /// The gateway's redacted preview of the call's parameters.
    pub parameters_preview: String,
    /// Distinct reviewers who must approve.
    pub required_approvals: i32,
    /// When an approval stops admitting the call (RFC 3339).
    pub expires_at: String,
    /// The command that approves.
    pub approve_command: String,
    /// The command that denies.
    pub deny_command: String,
    /// A one-line summary for receivers that show text.
    pub text: String,
}

fn object_name(request: &ApprovalRequest) -> Result<ObjectName, NotifyError> {
    Ok(ObjectName {
        name: request.metadata.name.clone().ok_or(NotifyError::Unnamed("name"))?,
        namespace: request.metadata.namespace.clone().ok_or(NotifyError::Unnamed("namespace"))?,
    })
}

/// The summary line: who wants to do what, and how to approve it.
fn summary(request: &ApprovalRequest, name: &ObjectName) -> String {
    format!(
        "{agent} ({connection}) wants {actions} on {resources}; approve with `{command}`",
        agent = request.spec.agent.service_account,
        connection = request.spec.connection,
        actions = request.spec.actions.join(", "),
        resources = match request.spec.resources.as_slice() {
            [] => "no named resource".to_owned(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
        },
        command = approve_command(&name.name, &name.namespace),
    )
}

/// The JSON notification of `request`.
pub fn json_notification(request: &ApprovalRequest) -> Result<JsonNotification, NotifyError> {
    let name = object_name(request)?;
    let spec = &request.spec;
    Ok(JsonNotification {
        kind: JSON_KIND,
        version: JSON_VERSION,
        text: summary(request, &name),
        approve_command: approve_command(&name.name, &name.namespace),
        deny_command: deny_command(&name.name, &name.namespace),
        approval_request: name,
        rule: spec.rule.clone(),
        connection: spec.connection.clone(),
        session_id: spec.session_id.clone(),
        agent: spec.agent.clone(),
        actions: spec.actions.clone(),
        resources: spec.resources.clone(),
        parameters_preview: spec.parameters_preview.clone(),
        required_approvals: spec.required_approvals,
        expires_at: spec.expires_at.clone(),
    })
}

/// Escapes text for Slack's mrkdwn: `&`, `<` and `>` become entities, so nothing in it is read as
/// a link, a mention (`<!channel>`, `<@U123>`) or a channel reference.
pub fn slack_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `text` cut to `max` characters, marked with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Inline code of request-supplied text: escaped, on one line, without backticks (which would
/// end the code span and let the rest be read as mrkdwn).
fn slack_code(text: &str) -> String {
    let flat: String = truncate(text, SLACK_VALUE_CHARS)
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect();
    if flat.trim().is_empty() {
        return "-".to_owned();
    }
    format!("`{}`", slack_escape(&flat))
}

/// A code block of request-supplied text: escaped, without backticks.
fn slack_code_block(text: &str) -> String {
    let body = slack_escape(&truncate(text, SLACK_PREVIEW_CHARS).replace('`', "'"));
    format!("```{body}```")
}

/// The Slack-compatible notification of `request` (`text` as the fallback, `blocks` as shown).
pub fn slack_notification(request: &ApprovalRequest) -> Result<serde_json::Value, NotifyError> {
    let name = object_name(request)?;
    let spec = &request.spec;
    let command = approve_command(&name.name, &name.namespace);
    let actions = spec.actions.iter().map(|a| slack_code(a)).collect::<Vec<_>>().join(", ");
    let mut resources: Vec<String> =
        spec.resources.iter().take(SLACK_RESOURCES).map(|r| slack_code(r)).collect();
    if spec.resources.len() > SLACK_RESOURCES {
        resources.push(format!("(+{} more)", spec.resources.len() - SLACK_RESOURCES));
    }
    if resources.is_empty() {
        resources.push("-".to_owned());
    }
    let agent = match &spec.agent.pod {
        Some(pod) => {
            format!("{} (pod {})", slack_code(&spec.agent.service_account), slack_code(pod))
        }
        None => slack_code(&spec.agent.service_account),
    };
    let fallback = format!(
        "Approval needed: {agent} wants {actions} via {connection}. Approve: {command}",
        connection = slack_code(&spec.connection),
        command = slack_code(&command),
    );
    let mut blocks = vec![
        serde_json::json!({
            "type": "header",
            "text": {"type": "plain_text", "text": "Approval needed", "emoji": false},
        }),
        serde_json::json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!(
                "*ApprovalRequest* {request} in {namespace} (rule {rule})",
                request = slack_code(&name.name),
                namespace = slack_code(&name.namespace),
                rule = slack_code(&spec.rule),
            )},
            "fields": [
                {"type": "mrkdwn", "text": format!("*Agent*\n{agent}")},
                {"type": "mrkdwn", "text": format!("*Connection*\n{}", slack_code(&spec.connection))},
                {"type": "mrkdwn", "text": format!("*Actions*\n{actions}")},
                {"type": "mrkdwn", "text": format!("*Resources*\n{}", resources.join("\n"))},
                {"type": "mrkdwn", "text": format!("*Approvals needed*\n{}", spec.required_approvals)},
                {"type": "mrkdwn", "text": format!("*Expires*\n{}", slack_code(&spec.expires_at))},
            ],
        }),
    ];
    if !spec.parameters_preview.trim().is_empty() {
        blocks.push(serde_json::json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!(
                "*Parameters*\n{}", slack_code_block(&spec.parameters_preview)
            )},
        }));
    }
    blocks.push(serde_json::json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": format!(
            "*Approve*\n{}\n*Deny*\n{}",
            slack_code(&command),
            slack_code(&deny_command(&name.name, &name.namespace)),
        )},
    }));
    Ok(serde_json::json!({
        "text": fallback,
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    }))
}

/// The body posted for `request` in `format`.
pub fn notification_body(
    format: WebhookFormat,
    request: &ApprovalRequest,
) -> Result<Vec<u8>, NotifyError> {
    Ok(match format {
        WebhookFormat::Json => serde_json::to_vec(&json_notification(request)?)?,
        WebhookFormat::Slack => serde_json::to_vec(&slack_notification(request)?)?,
    })
}

/// Posts notifications; one call is one attempt (retries are the controller's, with backoff).
#[derive(Clone, Debug)]
pub struct WebhookSender {
    http: reqwest::Client,
}

impl WebhookSender {
    /// A sender trusting the platform's roots, following no redirects, with [`POST_TIMEOUT`].
    pub fn new() -> Result<Self, NotifyError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NotifyError::Client(e.to_string()))?
            .with_platform_verifier()
            .map_err(|e| NotifyError::Client(e.to_string()))?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| NotifyError::Client(e.without_url().to_string()))?;
        Ok(Self { http })
    }

    /// Posts `body` as JSON to `url`; `source_ref` names where the URL came from, for errors.
    pub async fn post(
        &self,
        url: &str,
        source_ref: &str,
        body: Vec<u8>,
    ) -> Result<(), NotifyError> {
        let bad_url = || NotifyError::BadUrl { source_ref: source_ref.to_owned() };
        let parsed = reqwest::Url::parse(url.trim()).map_err(|_| bad_url())?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad_url());
        }
        let response = self
            .http
            .post(parsed)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| NotifyError::Transport(error_chain(&e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = response.text().await.unwrap_or_default();
        Err(NotifyError::Refused {
            status: status.as_u16(),
            answer: truncate(answer.trim(), ANSWER_CHARS),
        })
    }
}

/// `error` and its sources, `": "`-separated (reqwest names the cause only in its sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let chain = std::iter::successors(Some(error), |e| e.source());
    chain.map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_crds::ApprovalRequestSpec;
    use kube::api::ObjectMeta;

    fn request(key: &str) -> ApprovalRequest {
        ApprovalRequest {
            metadata: ObjectMeta {
                name: Some("object-deletes-1a2b3c4d5e".into()),
                namespace: Some("agents".into()),
                ..Default::default()
            },
            spec: ApprovalRequestSpec {
                connection: "prod-aws".into(),
                rule: "object-deletes".into(),
                session_id: "019abc12-3456-7def-8123-456789abcdef".into(),
                agent: AgentIdentity {
                    service_account: "pr-bot".into(),
                    pod: Some("pr-bot-7d9f8".into()),
                    role_session_name: None,
                },
                actions: vec!["s3:DeleteObject".into()],
                resources: vec![format!("arn:aws:s3:::scratch/{key}")],
                parameters_preview: format!("DELETE /scratch/{key}"),
                fingerprint: "f".repeat(64),
                required_approvals: 1,
                expires_at: "2026-11-25T18:45:00Z".into(),
                reviews: vec![],
            },
            status: None,
        }
    }

    const HOSTILE: &str = "<!channel> <@U123|boss> <https://evil.example|click> & `x` <script>";

    #[test]
    fn the_json_notification_carries_the_request_and_the_command_that_approves_it() {
        let body = notification_body(WebhookFormat::Json, &request("a.txt")).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["kind"], JSON_KIND);
        assert_eq!(value["approvalRequest"]["name"], "object-deletes-1a2b3c4d5e");
        assert_eq!(value["approvalRequest"]["namespace"], "agents");
        assert_eq!(value["agent"]["serviceAccount"], "pr-bot");
        assert_eq!(value["actions"][0], "s3:DeleteObject");
        assert_eq!(value["resources"][0], "arn:aws:s3:::scratch/a.txt");
        assert_eq!(value["expiresAt"], "2026-11-25T18:45:00Z");
        assert_eq!(
            value["approveCommand"],
            "kubectl chaperone approvals approve object-deletes-1a2b3c4d5e -n agents"
        );
    }

    #[test]
    fn json_values_round_trip_exactly_whatever_the_agent_put_in_them() {
        let hostile = format!("{HOSTILE}\"}},{{\"injected\":true");
        let body = notification_body(WebhookFormat::Json, &request(&hostile)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["resources"][0], format!("arn:aws:s3:::scratch/{hostile}"));
        assert!(value.get("injected").is_none());
    }

    #[test]
    fn slack_text_escapes_mentions_links_and_code_fences_from_the_request() {
        let body = notification_body(WebhookFormat::Slack, &request(HOSTILE)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut texts = vec![value["text"].as_str().unwrap().to_owned()];
        for block in value["blocks"].as_array().unwrap() {
            if let Some(text) = block["text"]["text"].as_str() {
                texts.push(text.to_owned());
            }
            for field in block["fields"].as_array().into_iter().flatten() {
                texts.push(field["text"].as_str().unwrap().to_owned());
            }
        }
        let all = texts.join("\n");
        for raw in ["<!channel>", "<@U123", "<https://", "<script>", "& `x`"] {
            assert!(!all.contains(raw), "{raw} survived:\n{all}");
        }
        assert!(all.contains("&lt;!channel&gt;"), "{all}");
        assert!(all.contains("&lt;script&gt;"), "{all}");
        assert!(all.contains("&amp; 'x'"), "{all}");
        assert!(
            all.contains(
                "`kubectl chaperone approvals approve object-deletes-1a2b3c4d5e -n agents`"
            ),
            "{all}"
        );
        // Outside entities, no `<` or `>` at all: nothing is a Slack link or mention.
        assert!(!all.contains('<') && !all.contains('>'), "{all}");
    }

    #[test]
    fn slack_escaping_replaces_exactly_ampersand_and_angle_brackets() {
        assert_eq!(slack_escape("a & <b> c"), "a &amp; &lt;b&gt; c");
        assert_eq!(slack_escape("plain *bold* _it_"), "plain *bold* _it_");
    }

    #[test]
    fn long_values_are_cut_on_character_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
        let long = "ü".repeat(5_000);
        let value = slack_notification(&request(&long)).unwrap();
        for block in value["blocks"].as_array().unwrap() {
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(text.chars().count() <= 3000, "{}", text.len());
            }
        }
    }

    #[test]
    fn a_request_without_a_namespace_is_refused() {
        let mut unnamed = request("a");
        unnamed.metadata.namespace = None;
        assert!(matches!(json_notification(&unnamed), Err(NotifyError::Unnamed("namespace"))));
    }
}
