//! Differential property test over every operation of the generated tables: requests as botocore
//! serializes them classify to their operation, and the same requests mutated the ways a hostile
//! agent would (extra query keys, duplicated or re-cased headers, percent-encoding, path tricks, a
//! second operation name) classify to that same operation or are refused (`operation` is `None`),
//! never to another operation a policy could allow.

use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;

const CONTEXT: ResourceContext<'static> =
    ResourceContext { partition: "aws", region: "us-east-1", account_id: "111122223333" };

#[derive(Debug, Clone, serde::Deserialize)]
struct Fixture {
    signing: String,
    operation: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// Every botocore fixture whose unmutated request classifies as an operation.
static FIXTURES: LazyLock<Vec<(Fixture, &'static str)>> = LazyLock::new(|| {
    include_str!("fixtures/botocore_requests.jsonl")
        .lines()
        .filter(|l| !l.is_empty())
        .filter_map(|line| serde_json::from_str::<Fixture>(line).ok())
        .filter_map(|f| {
            let operation = classify(&f).operation?;
            Some((f, operation))
        })
        .collect()
});

fn classifier() -> Classifier {
    Classifier::new(["chaperone-gateway.team-a.svc", "localhost"])
}

fn classify(f: &Fixture) -> Classification {
    let headers: Vec<(&str, &str)> =
        f.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    classifier().classify(
        &AwsRequest {
            signing_name: &f.signing,
            method: &f.method,
            path: &f.path,
            query: &f.query,
            headers: &headers,
            body: Some(f.body.as_deref().unwrap_or("").as_bytes()),
            body_truncated: false,
        },
        &CONTEXT,
    )
}

/// A query key some route of the signing name requires: adding one legitimately selects another
/// operation (`?acl`), on AWS as at the gateway, so it is not a disguise.
fn selects_an_operation(signing: &str, key: &str) -> bool {
    OperationTable::get()
        .routes_signed_as(signing)
        .iter()
        .any(|r| r.route.query.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)))
}

/// One hostile change to a request.
#[derive(Debug, Clone)]
enum Mutation {
    /// Append `key=value` (or a bare key) to the query.
    ExtraQuery(String, Option<String>),
    /// Add a second copy of the n-th header, its name re-cased or not.
    DuplicateHeader(usize, bool),
    /// Re-case the n-th header's name.
    RecaseHeader(usize),
    /// Percent-encode the n-th unreserved character of the path.
    EncodePathChar(usize),
    /// Append a `/` to the path.
    TrailingSlash,
    /// Double the n-th `/` of the path.
    DoubleSlash(usize),
    /// Insert `/./` or `/../` at the n-th `/`.
    DotSegment(usize, bool),
    /// Add an `X-Amz-Target` naming another operation of the service.
    OtherTarget(String),
    /// Add `Action=<op>` to the query.
    QueryAction(String),
    /// Add `x-id=<op>`, the SDK hint the classifier never reads.
    XIdHint(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let op = prop::sample::select(vec![
        "DeleteBucket",
        "PutBucketPolicy",
        "DeleteObject",
        "AssumeRole",
        "DeleteTable",
        "TerminateInstances",
        "CreateAccessKey",
        "PutObjectAcl",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        ("[a-zA-Z][a-zA-Z0-9-]{0,10}", proptest::option::of("[a-zA-Z0-9%]{0,6}"))
            .prop_map(|(k, v)| Mutation::ExtraQuery(k, v)),
        (0usize..8, any::<bool>()).prop_map(|(i, recase)| Mutation::DuplicateHeader(i, recase)),
        (0usize..8).prop_map(Mutation::RecaseHeader),
        (0usize..40).prop_map(Mutation::EncodePathChar),
        Just(Mutation::TrailingSlash),
        (0usize..6).prop_map(Mutation::DoubleSlash),
        (0usize..6, any::<bool>()).prop_map(|(i, up)| Mutation::DotSegment(i, up)),
        op.clone().prop_map(Mutation::OtherTarget),
        op.clone().prop_map(Mutation::QueryAction),
        op.prop_map(Mutation::XIdHint),
    ]
}

fn recase(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_uppercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn push_query(query: &mut String, pair: &str) {
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(pair);
}

/// Applies `mutation`; `None` when it does not apply to this request or is not a disguise.
fn apply(f: &Fixture, mutation: &Mutation) -> Option<Fixture> {
    let mut m = f.clone();
    match mutation {
        Mutation::ExtraQuery(key, value) => {
            if selects_an_operation(&f.signing, key) {
                return None;
            }
            match value {
                Some(v) => push_query(&mut m.query, &format!("{key}={v}")),
                None => push_query(&mut m.query, key),
            }
        }
        Mutation::DuplicateHeader(i, recased) => {
            let (name, value) = f.headers.get(*i % f.headers.len().max(1))?.clone();
            let name = if *recased { recase(&name) } else { name };
            m.headers.push((name, value));
        }
        Mutation::RecaseHeader(i) => {
            let index = *i % f.headers.len().max(1);
            let header = m.headers.get_mut(index)?;
            header.0 = recase(&header.0);
        }
        Mutation::EncodePathChar(n) => {
            let (index, ch) = f
                .path
                .char_indices()
                .filter(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
                .nth(*n)?;
            m.path = format!("{}%{:02X}{}", &f.path[..index], ch as u32, &f.path[index + 1..]);
        }
        // `//` on a bucket host is the object `/`, another resource: not a disguise.
        Mutation::TrailingSlash if f.path.ends_with('/') => return None,
        Mutation::TrailingSlash => m.path.push('/'),
        Mutation::DoubleSlash(_) if f.path == "/" => return None,
        Mutation::DoubleSlash(n) => {
            let (index, _) = f.path.match_indices('/').nth(*n)?;
            m.path.insert(index, '/');
        }
        Mutation::DotSegment(n, up) => {
            let (index, _) = f.path.match_indices('/').nth(*n)?;
            m.path.insert_str(index, if *up { "/.." } else { "/." });
        }
        Mutation::OtherTarget(op) => {
            m.headers.push(("x-amz-target".into(), format!("Service_20250101.{op}")));
        }
        Mutation::QueryAction(op) => push_query(&mut m.query, &format!("Action={op}")),
        Mutation::XIdHint(op) => push_query(&mut m.query, &format!("x-id={op}")),
    }
    Some(m)
}

#[test]
fn nearly_every_botocore_request_classifies_before_mutation() {
    assert!(FIXTURES.len() > 700, "only {} fixtures classify", FIXTURES.len());
    for (fixture, operation) in FIXTURES.iter() {
        assert!(
            fixture.operation == *operation
                || OperationTable::get().services_signed_as(&fixture.signing).iter().any(|s| s
                    .operation(&fixture.operation)
                    .is_some_and(|o| o.shadowed_by == Some(operation))),
            "{} classified as {operation}",
            fixture.operation
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn mutated_requests_keep_their_operation_or_are_refused(
        index in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..3),
    ) {
        let (fixture, operation) = &FIXTURES[index.index(FIXTURES.len())];
        let mut mutated = fixture.clone();
        for m in &mutations {
            match apply(&mutated, m) {
                Some(next) => mutated = next,
                None => return Ok(()),
            }
        }
        let got = classify(&mutated);
        // A trailing `/` is significant in templates that end with one (`/flows/{id}/` is
        // PrepareFlow, `/flows/validate-definition` ValidateFlowDefinition): AWS routes the
        // slashed path to that template too, so it is another request, not a disguise.
        let slash_template = got.operation.is_some_and(|op| {
            mutations.iter().any(|m| matches!(m, Mutation::TrailingSlash))
                && OperationTable::get()
                    .services_signed_as(&fixture.signing)
                    .iter()
                    .filter_map(|s| s.operation(op)?.route)
                    .any(|r| r.path.len() > 1 && r.path.ends_with('/'))
        });
        prop_assume!(!slash_template);
        // Slashes added after an S3 bucket name make an object key: `/sample//?tagging` is
        // PutObjectTagging on the key `/` (S3 never collapses slashes), another request, which
        // the gateway classifies, records and forwards as that.
        let key_made = fixture.signing == "s3" && {
            let bucket_only = |path: &str| path.trim_matches('/').split('/').count() == 1;
            let bucket = fixture.path.trim_start_matches('/').split('/').next().unwrap_or_default();
            let rest = mutated.path.strip_prefix(&format!("/{bucket}/")).unwrap_or_default();
            bucket_only(&fixture.path) && !bucket.is_empty() && !rest.is_empty()
        };
        prop_assume!(!key_made);
        prop_assert!(
            got.operation.is_none() || got.operation == Some(*operation),
            "{} {} {}?{} became {:?} after {:?}: {} {}?{} headers {:?}",
            fixture.signing, operation, fixture.path, fixture.query, got.operation, mutations,
            mutated.method, mutated.path, mutated.query, mutated.headers
        );
        if got.operation.is_none() {
            prop_assert!(got.unclassified.is_some());
            prop_assert!(got.actions.iter().any(|a| a.action.ends_with(":Unknown")));
        }
    }
}
