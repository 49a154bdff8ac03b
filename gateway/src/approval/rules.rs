//! Which ApprovalRule holds a call.
//!
//! A rule applies to a call when its `connections` is empty or names the call's connection, one
//! of its `match.actions` patterns matches one of the call's IAM actions, and its
//! `match.resources` is empty or one of its patterns matches one of the call's resources. A call
//! whose resources are not fully known (body over the classification limit, unparsed, ARNs
//! without the account) is matched by any resource pattern: a rule never fails open. When
//! several rules apply, the first in name order wins (rules are kept in a `BTreeMap` by name), so
//! the outcome does not depend on the order the operator wrote them in.

use std::collections::BTreeMap;

use chaperone_crds::ApprovalRuleSpec;

use crate::{
    classify::{ActionPattern, ActionPatternError},
    policy::arn_matches,
};

/// A rule whose action patterns do not parse.
#[derive(Debug, thiserror::Error)]
#[error("ApprovalRule {rule}: match.actions: {source}")]
pub struct RuleCompileError {
    /// The rule's name.
    pub rule: String,
    /// What is wrong with the pattern.
    #[source]
    pub source: ActionPatternError,
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct CompiledApprovalRule {
    /// The rule's name.
    pub name: String,
    /// The rule as written.
    pub spec: ApprovalRuleSpec,
    actions: Vec<ActionPattern>,
}

impl CompiledApprovalRule {
    /// Whether the rule holds a call of `connection` with `actions` on `resources`.
    pub fn applies_to(
        &self,
        connection: &str,
        actions: &[String],
        resources: &[String],
        resources_complete: bool,
    ) -> bool {
        let connection_matches = self.spec.connections.is_empty()
            || self.spec.connections.iter().any(|c| c == connection);
        let action_matches =
            self.actions.iter().any(|pattern| actions.iter().any(|a| pattern.matches(a)));
        let resource_matches = self.spec.matches.resources.is_empty()
            || !resources_complete
            || self
                .spec
                .matches
                .resources
                .iter()
                .any(|pattern| resources.iter().any(|r| arn_matches(pattern, r)));
        connection_matches && action_matches && resource_matches
    }
}

/// A namespace's approval rules, in name order.
#[derive(Clone, Debug, Default)]
pub struct ApprovalRules {
    rules: Vec<CompiledApprovalRule>,
}

impl ApprovalRules {
    /// Compiles the configuration's rules.
    pub fn compile(rules: &BTreeMap<String, ApprovalRuleSpec>) -> Result<Self, RuleCompileError> {
        let rules = rules
            .iter()
            .map(|(name, spec)| {
                let actions = spec
                    .matches
                    .actions
                    .iter()
                    .map(|a| ActionPattern::parse(a))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| RuleCompileError { rule: name.clone(), source })?;
                Ok(CompiledApprovalRule { name: name.clone(), spec: spec.clone(), actions })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule, in name order, that holds the call.
    pub fn matching(
        &self,
        connection: &str,
        actions: &[String],
        resources: &[String],
        resources_complete: bool,
    ) -> Option<&CompiledApprovalRule> {
        self.rules
            .iter()
            .find(|rule| rule.applies_to(connection, actions, resources, resources_complete))
    }
}

#[cfg(test)]
mod tests {
    use chaperone_crds::{CallMatch, Reviewers};

    use super::*;

    fn rule(connections: &[&str], actions: &[&str], resources: &[&str]) -> ApprovalRuleSpec {
        ApprovalRuleSpec {
            connections: connections.iter().map(|s| s.to_string()).collect(),
            matches: CallMatch {
                actions: actions.iter().map(|s| s.to_string()).collect(),
                resources: resources.iter().map(|s| s.to_string()).collect(),
            },
            reviewers: Reviewers { groups: vec!["sre".into()], users: vec![], required: 1 },
            hold_seconds: 20,
            approval_valid_seconds: 900,
            notify: None,
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn a_rule_matches_by_connection_action_and_resource() {
        let rules = ApprovalRules::compile(&BTreeMap::from([(
            "prod-deletes".to_string(),
            rule(&["prod-aws"], &["s3:DeleteBucket", "dynamodb:Delete*"], &["arn:aws:s3:::prod-*"]),
        )]))
        .unwrap();
        let delete = strings(&["s3:DeleteBucket"]);
        let prod = strings(&["arn:aws:s3:::prod-logs"]);
        assert!(rules.matching("prod-aws", &delete, &prod, true).is_some());
        assert!(rules.matching("staging-aws", &delete, &prod, true).is_none(), "other connection");
        assert!(
            rules.matching("prod-aws", &strings(&["s3:ListBucket"]), &prod, true).is_none(),
            "other action"
        );
        assert!(
            rules
                .matching("prod-aws", &delete, &strings(&["arn:aws:s3:::dev-logs"]), true)
                .is_none(),
            "other resource"
        );
        assert!(
            rules.matching("prod-aws", &delete, &[], true).is_none(),
            "a rule naming resources does not hold a call that names none"
        );
    }

    #[test]
    fn action_patterns_are_case_insensitive_globs_and_empty_lists_match_everything() {
        let rules = ApprovalRules::compile(&BTreeMap::from([(
            "deletes".to_string(),
            rule(&[], &["dynamodb:delete*"], &[]),
        )]))
        .unwrap();
        assert!(
            rules
                .matching("any", &strings(&["dynamodb:DeleteTable"]), &strings(&["arn:x"]), true)
                .is_some()
        );
        assert!(rules.matching("any", &strings(&["dynamodb:GetItem"]), &[], true).is_none());
    }

    #[test]
    fn the_first_matching_rule_in_name_order_wins() {
        let rules = ApprovalRules::compile(&BTreeMap::from([
            ("b-specific".to_string(), rule(&[], &["s3:DeleteBucket"], &[])),
            ("a-broad".to_string(), rule(&[], &["s3:*"], &[])),
        ]))
        .unwrap();
        let matched = rules.matching("c", &strings(&["s3:DeleteBucket"]), &[], true).unwrap();
        assert_eq!(matched.name, "a-broad");
    }

    #[test]
    fn an_unparsable_action_pattern_names_its_rule() {
        let error = ApprovalRules::compile(&BTreeMap::from([(
            "broken".to_string(),
            rule(&[], &["DeleteBucket"], &[]),
        )]))
        .unwrap_err();
        assert!(error.to_string().contains("ApprovalRule broken"), "{error}");
    }

    #[test]
    fn a_resource_rule_holds_a_call_whose_resources_are_unknown() {
        let rules = ApprovalRules::compile(&BTreeMap::from([(
            "prod-deletes".to_owned(),
            rule(&[], &["s3:DeleteObject"], &["arn:aws:s3:::prod-*"]),
        )]))
        .unwrap();
        let delete = strings(&["s3:DeleteObject"]);
        let dev = strings(&["arn:aws:s3:::dev-logs/*"]);
        assert!(rules.matching("c", &delete, &dev, true).is_none());
        assert!(rules.matching("c", &delete, &dev, false).is_some(), "unknown resources match");
        assert!(
            rules.matching("c", &strings(&["s3:GetObject"]), &dev, false).is_none(),
            "the actions still have to match"
        );
    }
}
