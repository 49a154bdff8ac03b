//! The connection's allow/deny decision over a classified call. Pure: values in, decision out.
//!
//! An ambiguous request (the classifier found signals AWS could read otherwise) is refused first,
//! whatever the policy says. Then, per action, first match wins: `spec.policy.deny`, Deny
//! statements, the built-in credential denylist (lifted only by naming the action exactly in
//! `allow`), an unclassified call (allowed only by naming its signing name in
//! `allowUnclassified`; no wildcard covers it), then `spec.policy.allow` and Allow statements.
//! Every action of a call must be allowed; the first refusal names its rule.
//!
//! When the call's resources are not fully known ([`Classification::resources_complete`] false),
//! a resource-scoped Deny statement counts as matching and a resource-scoped Allow statement as
//! not matching: such rules never fail open.

use chaperone_crds::{ConnectionPolicy, Effect};

use crate::classify::{
    ActionPattern, ActionPatternError, Classification, IamAction, is_credential_returning,
};

/// The decision on one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyDecision {
    /// Every action is allowed.
    Allow,
    /// Refused; `rule` is machine-readable, `message` tells the agent's operator what to change.
    Deny {
        /// The object that decided, `AgentConnection/<namespace>/<name>`.
        object: String,
        /// The rule inside it, e.g. `policy.deny[0]: iam:*` or `builtin:credential-denylist`.
        rule: String,
        /// A sentence naming the action, the rule and what to do.
        message: String,
    },
}

/// A compiled statement.
#[derive(Clone, Debug)]
struct Statement {
    index: usize,
    effect: Effect,
    actions: Vec<ActionPattern>,
    resources: Vec<String>,
}

/// A connection's policy, parsed once.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    object: String,
    allow: Vec<ActionPattern>,
    deny: Vec<ActionPattern>,
    statements: Vec<Statement>,
    allow_unclassified: Vec<String>,
}

/// Why a policy could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("AgentConnection {object} spec.policy.{field}: {source}")]
pub struct PolicyError {
    object: String,
    field: String,
    source: ActionPatternError,
}

impl CompiledPolicy {
    /// Parses a connection's policy.
    pub fn compile(
        namespace: &str,
        connection: &str,
        policy: &ConnectionPolicy,
    ) -> Result<Self, PolicyError> {
        let object = format!("AgentConnection/{namespace}/{connection}");
        let parse = |field: String, patterns: &[String]| {
            patterns
                .iter()
                .map(|p| ActionPattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| PolicyError { object: object.clone(), field, source })
        };
        let statements = policy
            .statements
            .iter()
            .enumerate()
            .map(|(index, s)| {
                Ok(Statement {
                    index,
                    effect: s.effect,
                    actions: parse(format!("statements[{index}].actions"), &s.actions)?,
                    resources: s.resources.clone(),
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        Ok(Self {
            allow: parse("allow".into(), &policy.allow)?,
            deny: parse("deny".into(), &policy.deny)?,
            statements,
            allow_unclassified: policy.allow_unclassified.clone(),
            object,
        })
    }

    /// Decides on a classified call.
    pub fn decide(&self, call: &Classification) -> PolicyDecision {
        if let Some(reason) = call.unclassified.as_ref().filter(|r| r.is_ambiguous()) {
            return self.deny(
                "builtin:ambiguous-request".into(),
                format!(
                    "the {} request is ambiguous: {reason}. The gateway forwards only a request it can classify as one operation; send it as an AWS SDK or CLI does",
                    call.signing_name
                ),
            );
        }
        let unclassified =
            call.unclassified.as_ref().map(|reason| (call.signing_name.as_str(), reason));
        for action in &call.actions {
            let unknown = unclassified.filter(|_| action.action.ends_with(":Unknown"));
            if let Some(refusal) = self.refusal(action, call.resources_complete, unknown) {
                return refusal;
            }
        }
        PolicyDecision::Allow
    }

    /// Decides on actions whose resources are fully known, of a classified call.
    pub fn decide_actions(&self, actions: &[IamAction]) -> PolicyDecision {
        for action in actions {
            if let Some(refusal) = self.refusal(action, true, None) {
                return refusal;
            }
        }
        PolicyDecision::Allow
    }

    fn deny(&self, rule: String, message: String) -> PolicyDecision {
        PolicyDecision::Deny { object: self.object.clone(), rule, message }
    }

    fn refusal(
        &self,
        action: &IamAction,
        resources_complete: bool,
        unclassified: Option<(&str, &crate::classify::Unclassified)>,
    ) -> Option<PolicyDecision> {
        let name = action.action.as_str();
        if let Some((i, pattern)) = self.deny.iter().enumerate().find(|(_, p)| p.matches(name)) {
            return Some(self.deny(
                format!("policy.deny[{i}]: {pattern}"),
                format!("{name} is denied by {} spec.policy.deny[{i}] ({pattern})", self.object),
            ));
        }
        for statement in self.statements.iter().filter(|s| s.effect == Effect::Deny) {
            if !statement.actions.iter().any(|p| p.matches(name)) {
                continue;
            }
            if statement_covers_any(&statement.resources, &action.resources) {
                return Some(self.deny(
                    format!("policy.statements[{}]", statement.index),
                    format!(
                        "{name} on {} is denied by {} spec.policy.statements[{}]",
                        describe_resources(&action.resources),
                        self.object,
                        statement.index
                    ),
                ));
            }
            if !resources_complete {
                return Some(self.deny(
                    format!("policy.statements[{}]", statement.index),
                    format!(
                        "{name} may touch resources the gateway cannot name (a body over the classification limit or unparsed, or ARNs without the account: set spec.aws.accountId), so {} spec.policy.statements[{}] (Deny) is treated as matching; send a request whose resources can be read, or narrow the statement's actions",
                        self.object, statement.index
                    ),
                ));
            }
        }
        if is_credential_returning(name)
            && !self.allow.iter().any(|p| p.as_str().eq_ignore_ascii_case(name))
        {
            return Some(self.deny(
                "builtin:credential-denylist".into(),
                format!(
                    "{name} would hand the agent AWS credentials, which agents never hold; to permit it anyway, name it exactly (no wildcard) in {} spec.policy.allow",
                    self.object
                ),
            ));
        }
        if let Some((signing_name, reason)) = unclassified {
            if self.allow_unclassified.iter().any(|s| s == signing_name) {
                return None;
            }
            return Some(self.deny(
                "builtin:unclassified".into(),
                format!(
                    "{name}: the gateway could not classify this {signing_name} call ({reason}), and wildcards in spec.policy.allow never cover an unclassified call; to forward unclassified {signing_name} calls unexamined, add `{signing_name}` to {} spec.policy.allowUnclassified",
                    self.object
                ),
            ));
        }
        if self.allow.iter().any(|p| p.matches(name)) {
            return None;
        }
        let allowed_by_statement = self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && s.actions.iter().any(|p| p.matches(name))
                && (s.resources.iter().any(|r| r == "*")
                    || (resources_complete
                        && statement_covers_all(&s.resources, &action.resources)))
        });
        if allowed_by_statement {
            return None;
        }
        Some(self.deny(
            "policy.allow".into(),
            format!(
                "{name} is not allowed by {}: add it (or a pattern such as {}:*) to spec.policy.allow",
                self.object,
                name.split(':').next().unwrap_or("service")
            ),
        ))
    }
}

fn describe_resources(resources: &[String]) -> String {
    if resources.is_empty() { "any resource".into() } else { resources.join(", ") }
}

/// Whether a statement's resource patterns match at least one of the call's resources (a call that
/// names none is matched only by `*`).
fn statement_covers_any(patterns: &[String], resources: &[String]) -> bool {
    if resources.is_empty() {
        return patterns.iter().any(|p| p == "*");
    }
    resources.iter().any(|r| patterns.iter().any(|p| arn_matches(p, r)))
}

/// Whether every resource of the call matches one of the patterns.
fn statement_covers_all(patterns: &[String], resources: &[String]) -> bool {
    if resources.is_empty() {
        return patterns.iter().any(|p| p == "*");
    }
    resources.iter().all(|r| patterns.iter().any(|p| arn_matches(p, r)))
}

/// Case-sensitive glob over ARNs (`*` any run, `?` one character), as IAM matches resources.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    chaperone_crds::glob_matches(pattern, arn, false)
}

#[cfg(test)]
mod tests {
    use chaperone_crds::PolicyStatement;

    use super::*;
    use crate::classify::Unclassified;

    fn action(name: &str, resources: &[&str]) -> IamAction {
        IamAction {
            action: name.to_owned(),
            resources: resources.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn policy(allow: &[&str], deny: &[&str]) -> CompiledPolicy {
        let policy = ConnectionPolicy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            statements: vec![],
            allow_unclassified: vec![],
        };
        CompiledPolicy::compile("agents", "prod-aws", &policy).unwrap()
    }

    fn rule(decision: PolicyDecision) -> String {
        match decision {
            PolicyDecision::Allow => "allow".into(),
            PolicyDecision::Deny { rule, .. } => rule,
        }
    }

    #[test]
    fn allowed_actions_pass_and_deny_wins_over_allow() {
        let p = policy(&["s3:*", "iam:*"], &["iam:*"]);
        assert_eq!(p.decide_actions(&[action("s3:GetObject", &[])]), PolicyDecision::Allow);
        assert_eq!(
            rule(p.decide_actions(&[action("iam:CreateUser", &[])])),
            "policy.deny[0]: iam:*"
        );
    }

    #[test]
    fn anything_not_allowed_is_denied_with_advice() {
        let p = policy(&["s3:Get*"], &[]);
        match p.decide_actions(&[action("s3:DeleteBucket", &["arn:aws:s3:::b"])]) {
            PolicyDecision::Deny { object, rule, message } => {
                assert_eq!(object, "AgentConnection/agents/prod-aws");
                assert_eq!(rule, "policy.allow");
                assert!(
                    message.contains("s3:DeleteBucket") && message.contains("spec.policy.allow"),
                    "{message}"
                );
            }
            PolicyDecision::Allow => panic!("should deny"),
        }
    }

    #[test]
    fn credential_returning_actions_need_their_exact_name_in_allow() {
        let wildcard = policy(&["sts:*", "*"], &[]);
        assert_eq!(
            rule(wildcard.decide_actions(&[action("sts:AssumeRole", &[])])),
            "builtin:credential-denylist"
        );
        assert_eq!(
            wildcard.decide_actions(&[action("sts:GetCallerIdentity", &[])]),
            PolicyDecision::Allow
        );
        let named = policy(&["sts:AssumeRole"], &[]);
        assert_eq!(named.decide_actions(&[action("sts:AssumeRole", &[])]), PolicyDecision::Allow);
    }

    #[test]
    fn every_action_of_a_call_must_be_allowed() {
        let p = policy(&["s3:PutObject"], &[]);
        let copy = [
            action("s3:PutObject", &["arn:aws:s3:::dst/k"]),
            action("s3:GetObject", &["arn:aws:s3:::src/k"]),
        ];
        assert_eq!(rule(p.decide_actions(&copy)), "policy.allow");
    }

    #[test]
    fn resource_statements_scope_actions_to_arns() {
        let policy = ConnectionPolicy {
            allow: vec![],
            deny: vec![],
            statements: vec![
                PolicyStatement {
                    effect: Effect::Deny,
                    actions: vec!["s3:Delete*".into()],
                    resources: vec!["arn:aws:s3:::prod-*".into()],
                },
                PolicyStatement {
                    effect: Effect::Allow,
                    actions: vec!["s3:*".into()],
                    resources: vec!["arn:aws:s3:::dev-*".into(), "arn:aws:s3:::prod-*".into()],
                },
            ],
            allow_unclassified: vec![],
        };
        let p = CompiledPolicy::compile("agents", "c", &policy).unwrap();
        assert_eq!(
            p.decide_actions(&[action("s3:DeleteObject", &["arn:aws:s3:::dev-x/k"])]),
            PolicyDecision::Allow
        );
        assert_eq!(
            rule(p.decide_actions(&[action("s3:DeleteObject", &["arn:aws:s3:::prod-x/k"])])),
            "policy.statements[0]"
        );
        assert_eq!(
            rule(p.decide_actions(&[action("s3:GetObject", &["arn:aws:s3:::other/k"])])),
            "policy.allow"
        );
        assert_eq!(rule(p.decide_actions(&[action("s3:ListAllMyBuckets", &[])])), "policy.allow");
    }

    fn call(
        signing: &str,
        actions: Vec<IamAction>,
        complete: bool,
        unclassified: Option<Unclassified>,
    ) -> Classification {
        Classification {
            signing_name: signing.to_owned(),
            service: None,
            operation: if unclassified.is_some() { None } else { Some("Op") },
            endpoint_prefix: None,
            protocol: None,
            actions,
            resources_complete: complete,
            s3_addressing: None,
            s3_bucket: None,
            unclassified,
        }
    }

    fn compiled(policy: ConnectionPolicy) -> CompiledPolicy {
        CompiledPolicy::compile("agents", "c", &policy).unwrap()
    }

    fn message(decision: PolicyDecision) -> String {
        match decision {
            PolicyDecision::Allow => "allow".into(),
            PolicyDecision::Deny { message, .. } => message,
        }
    }

    #[test]
    fn unclassified_calls_need_an_exact_opt_in() {
        let unknown = |signing: &str| {
            call(
                signing,
                vec![action(&format!("{signing}:Unknown"), &[])],
                false,
                Some(Unclassified::UnknownService { signing_name: signing.to_owned() }),
            )
        };
        let wildcard = policy(&["*", "s3:*", "appsync:*"], &[]);
        assert_eq!(rule(wildcard.decide(&unknown("s3"))), "builtin:unclassified");
        let text = message(wildcard.decide(&unknown("appsync")));
        assert!(
            text.contains("spec.policy.allowUnclassified") && text.contains("`appsync`"),
            "{text}"
        );
        let opted = compiled(ConnectionPolicy {
            allow_unclassified: vec!["appsync".into()],
            deny: vec!["s3:*".into()],
            ..ConnectionPolicy::default()
        });
        assert_eq!(opted.decide(&unknown("appsync")), PolicyDecision::Allow);
        assert_eq!(rule(opted.decide(&unknown("appsync-x"))), "builtin:unclassified");
        // The opt-in never lifts a deny or the credential denylist.
        assert_eq!(rule(opted.decide(&unknown("s3"))), "policy.deny[0]: s3:*");
        let mut with_credentials = unknown("appsync");
        with_credentials.actions.push(action("cognito-identity:GetOpenIdToken", &[]));
        assert_eq!(rule(opted.decide(&with_credentials)), "builtin:credential-denylist");
    }

    #[test]
    fn ambiguous_requests_are_refused_whatever_the_policy() {
        let everything = compiled(ConnectionPolicy {
            allow: vec!["*".into()],
            allow_unclassified: vec!["s3".into()],
            ..ConnectionPolicy::default()
        });
        let ambiguous = call(
            "s3",
            vec![action("s3:Unknown", &[])],
            false,
            Some(Unclassified::Ambiguous {
                detail: "header `x-amz-acl` appears more than once".into(),
            }),
        );
        assert_eq!(rule(everything.decide(&ambiguous)), "builtin:ambiguous-request");
        assert!(message(everything.decide(&ambiguous)).contains("x-amz-acl"));
    }

    #[test]
    fn incomplete_resources_never_fail_open() {
        let policy = compiled(ConnectionPolicy {
            allow: vec!["dynamodb:Get*".into()],
            statements: vec![
                PolicyStatement {
                    effect: Effect::Deny,
                    actions: vec!["s3:DeleteObject".into()],
                    resources: vec!["arn:aws:s3:::logs/protected/*".into()],
                },
                PolicyStatement {
                    effect: Effect::Allow,
                    actions: vec!["s3:DeleteObject".into()],
                    resources: vec!["arn:aws:s3:::logs/*".into()],
                },
                PolicyStatement {
                    effect: Effect::Allow,
                    actions: vec!["dynamodb:Query".into()],
                    resources: vec!["*".into()],
                },
            ],
            ..ConnectionPolicy::default()
        });
        let delete = |complete| {
            call("s3", vec![action("s3:DeleteObject", &["arn:aws:s3:::logs/*"])], complete, None)
        };
        // Named resources outside the Deny: the Allow statement admits them.
        let named = call(
            "s3",
            vec![action("s3:DeleteObject", &["arn:aws:s3:::logs/a", "arn:aws:s3:::logs/b"])],
            true,
            None,
        );
        assert_eq!(policy.decide(&named), PolicyDecision::Allow);
        // The same call whose body could not be read: the Deny matches.
        assert_eq!(rule(policy.decide(&delete(false))), "policy.statements[0]");
        assert!(message(policy.decide(&delete(false))).contains("cannot name"));
        // Without the Deny, an incomplete call is not admitted by a resource-scoped Allow...
        let allow_only = compiled(ConnectionPolicy {
            statements: vec![PolicyStatement {
                effect: Effect::Allow,
                actions: vec!["s3:DeleteObject".into()],
                resources: vec!["arn:aws:s3:::logs/*".into()],
            }],
            ..ConnectionPolicy::default()
        });
        assert_eq!(rule(allow_only.decide(&delete(false))), "policy.allow");
        assert_eq!(allow_only.decide(&delete(true)), PolicyDecision::Allow);
        // ...but is by one over `*`.
        let query = call("dynamodb", vec![action("dynamodb:Query", &[])], false, None);
        assert_eq!(policy.decide(&query), PolicyDecision::Allow);
    }

    #[test]
    fn arn_globs_are_case_sensitive_with_star_and_question_mark() {
        assert!(arn_matches("arn:aws:s3:::prod-*", "arn:aws:s3:::prod-logs/a/b"));
        assert!(arn_matches("arn:aws:s3:::b?t", "arn:aws:s3:::bat"));
        assert!(!arn_matches("arn:aws:s3:::Prod-*", "arn:aws:s3:::prod-logs"));
        assert!(!arn_matches("arn:aws:s3:::prod", "arn:aws:s3:::prod-logs"));
        assert!(arn_matches("*", "anything"));
    }

    #[test]
    fn a_bad_pattern_is_refused_naming_the_field() {
        let policy = ConnectionPolicy {
            allow: vec!["s3GetObject".into()],
            deny: vec![],
            statements: vec![],
            allow_unclassified: vec![],
        };
        let error = CompiledPolicy::compile("agents", "c", &policy).unwrap_err().to_string();
        assert!(error.contains("spec.policy.allow") && error.contains("s3GetObject"), "{error}");
    }
}
