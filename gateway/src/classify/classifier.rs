//! The classifier: one request in, its service, operation, IAM actions and resources out.

use super::actions::{self, Actions, IamAction, S3Facts};
use super::params::{Params, has_duplicate_keys, parse_json_strict, parse_pairs, percent_decode};
use super::resources::ResourceContext;
use super::route::RouteRequest;
use super::s3::{self, S3Addressing};
use super::table::{OperationModel, OperationTable, Protocol, ServiceModel};

/// One verified AWS request, as the classifier needs to see it.
#[derive(Debug, Clone, Copy)]
pub struct AwsRequest<'a> {
    /// The signing name of the request's verified credential scope (`s3`, `dynamodb`, `states`).
    pub signing_name: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The raw (still percent-encoded) path, without the query.
    pub path: &'a str,
    /// The raw query string, without the `?`.
    pub query: &'a str,
    /// Request headers as received (names in any case). The classifier reads `host`,
    /// `x-amz-target`, `content-type`, `smithy-protocol`, `x-amz-copy-source` and whatever
    /// header a REST route requires.
    pub headers: &'a [(&'a str, &'a str)],
    /// The start of the body, when the caller has it (`Some(b"")` for an empty body, `None` when
    /// not captured, as for streamed uploads). Bounded by the caller, e.g. 64 KiB.
    pub body: Option<&'a [u8]>,
    /// Whether `body` is shorter than the real body.
    pub body_truncated: bool,
}

impl<'a> AwsRequest<'a> {
    pub(crate) fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    pub(crate) fn whole_body(&self) -> Option<&'a [u8]> {
        self.body.filter(|_| !self.body_truncated)
    }
}

/// What a request is, in IAM's terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Classification {
    /// The signing name the request was classified under.
    pub signing_name: String,
    /// The model (botocore service name) the operation belongs to, if any.
    pub service: Option<&'static str>,
    /// The operation, or `None` for an unknown one.
    pub operation: Option<&'static str>,
    /// The endpoint prefix of the model the operation belongs to: where the call goes upstream
    /// (`bedrock-runtime` vs `bedrock`, which share the signing name `bedrock`).
    pub endpoint_prefix: Option<&'static str>,
    /// The protocol the request was recognised by.
    pub protocol: Option<Protocol>,
    /// The IAM actions the call needs, with the resources it needs them on. An unknown
    /// operation has the single action `<prefix>:Unknown`.
    pub actions: Vec<IamAction>,
    /// False when the call may touch resources not listed in `actions`: the body that names them
    /// was not passed whole or did not parse, or the request passes a role it does not name.
    pub resources_complete: bool,
    /// For S3: where the bucket was read from.
    pub s3_addressing: Option<S3Addressing>,
    /// For S3: the bucket the request addresses (from the path or the Host header), decoded. The
    /// forwarder must address this bucket upstream, whatever style it uses.
    pub s3_bucket: Option<String>,
    /// Why the operation is unknown, when it is.
    #[serde(serialize_with = "serialize_display")]
    pub unclassified: Option<Unclassified>,
}

fn serialize_display<S: serde::Serializer>(
    value: &Option<Unclassified>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(reason) => serializer.collect_str(reason),
        None => serializer.serialize_none(),
    }
}

impl Classification {
    /// Whether the operation was recognised.
    pub fn is_known(&self) -> bool {
        self.operation.is_some()
    }

    /// The action names, in order.
    pub fn action_names(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.action.as_str())
    }
}

/// Why a request could not be matched to an operation. It is then classified
/// `<prefix>:Unknown` and is subject to policy like any other call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unclassified {
    /// No model is signed with this name.
    #[error("no service model is signed as `{signing_name}`")]
    UnknownService { signing_name: String },
    /// The X-Amz-Target names another service.
    #[error("X-Amz-Target prefix `{prefix}` is not one of this service's ({expected})")]
    TargetPrefixMismatch { prefix: String, expected: String },
    /// The named operation is not in the model.
    #[error("`{name}` is not an operation of {service}")]
    UnknownOperation { service: &'static str, name: String },
    /// Two signals in the request name different operations.
    #[error("the request names two operations, `{first}` and `{second}`")]
    AmbiguousOperation { first: String, second: String },
    /// Nothing in the request names an operation of the service's protocols.
    #[error("the request names no operation: expected {expected}")]
    NoOperationNamed { expected: String },
    /// The bucket named by the path or Host header is not a bucket name.
    #[error("`{bucket}` is not a valid S3 bucket name")]
    InvalidBucket { bucket: String },
    /// No REST route matches the method, path, query and headers.
    #[error("no {service} operation matches {method} {path}")]
    NoRoute { service: &'static str, method: String, path: String },
    /// The request carries signals AWS could read differently from the gateway: a semantic
    /// header twice, `Action` twice, a query string on a JSON service, an S3 subresource key the
    /// matched operation does not take.
    #[error("{detail}")]
    Ambiguous { detail: String },
}

impl Unclassified {
    /// Whether the request is ambiguous (refused whatever the policy says) rather than merely
    /// unknown to the tables (forwardable with an explicit opt-in).
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Unclassified::AmbiguousOperation { .. }
                | Unclassified::Ambiguous { .. }
                | Unclassified::InvalidBucket { .. }
        )
    }
}

/// Headers that decide what AWS does with a request, so that two copies of one (AWS may read
/// either) make it ambiguous: every `x-amz-*` header but user metadata, and the few standard
/// headers the classifier or AWS route on.
fn is_semantic_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    (name.starts_with("x-amz-") && !name.starts_with("x-amz-meta-"))
        || matches!(
            name.as_str(),
            "host" | ":authority" | "content-type" | "smithy-protocol" | "content-encoding"
        )
}

/// The first semantic header the request carries more than once (names compared in any case).
fn duplicated_semantic_header<'a>(headers: &[(&'a str, &str)]) -> Option<&'a str> {
    headers.iter().enumerate().find_map(|(i, (name, _))| {
        (is_semantic_header(name)
            && headers[i + 1..].iter().any(|(other, _)| other.eq_ignore_ascii_case(name)))
        .then_some(*name)
    })
}

/// Classifies requests. Holds the gateway's own host names, so that requests addressed to the
/// gateway by name are not read as virtual-host-style S3.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    gateway_hosts: Vec<String>,
}

/// Operations of REST services whose JSON body names resources or roles; other REST bodies
/// (Lambda payloads, model prompts) are never parsed.
pub(super) const REST_BODY_OPERATIONS: &[(&str, &str)] = &[
    ("lambda", "CreateFunction"),
    ("lambda", "UpdateFunctionConfiguration"),
    ("eks", "CreateCluster"),
    ("eks", "CreateNodegroup"),
    ("eks", "CreateFargateProfile"),
    ("eks", "CreatePodIdentityAssociation"),
    ("eks", "UpdatePodIdentityAssociation"),
];

impl Classifier {
    /// A classifier for a gateway reachable under `gateway_hosts` (host names, ports optional).
    pub fn new<I, S>(gateway_hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Classifier { gateway_hosts: gateway_hosts.into_iter().map(Into::into).collect() }
    }

    /// The bucket an S3 request names in its Host header (virtual-host style), as
    /// [`Classifier::classify`] reads it.
    pub fn s3_virtual_host_bucket(&self, host: Option<&str>) -> Option<String> {
        host.and_then(|host| s3::bucket_from_host(host, &self.gateway_hosts))
    }

    /// Classifies one request. Never fails and never panics: what cannot be recognised is
    /// `<prefix>:Unknown`.
    pub fn classify(
        &self,
        request: &AwsRequest<'_>,
        context: &ResourceContext<'_>,
    ) -> Classification {
        let table = OperationTable::get();
        let models = table.services_signed_as(request.signing_name);
        let duplicated =
            duplicated_semantic_header(request.headers).map(|name| Unclassified::Ambiguous {
                detail: format!(
                    "header `{}` appears more than once; AWS could act on either copy",
                    name.to_ascii_lowercase()
                ),
            });
        let Some(&first) = models.first() else {
            let reason = duplicated.unwrap_or_else(|| Unclassified::UnknownService {
                signing_name: request.signing_name.to_owned(),
            });
            return with_credential_action(
                unknown(request.signing_name, request.signing_name, None, None, reason),
                request,
            );
        };
        if let Some(reason) = duplicated {
            let prefix = first.iam_prefix;
            let protocol = first.protocols.first().copied();
            let failed =
                unknown(request.signing_name, prefix, Some(first.model_name), protocol, reason);
            return with_credential_action(failed, request);
        }
        let mut classification = if models.iter().any(|m| m.protocols.iter().any(|p| p.is_rest())) {
            self.classify_rest(table, first, request, context)
        } else {
            classify_rpc(first, models, request, context)
        };
        if context.account_id == "*"
            && classification
                .actions
                .iter()
                .flat_map(|a| &a.resources)
                .any(|arn| arn.split(':').nth(4) == Some("*"))
        {
            // ARNs built without the account cannot be matched against rules naming one.
            classification.resources_complete = false;
        }
        with_credential_action(classification, request)
    }

    fn classify_rest(
        &self,
        table: &OperationTable,
        first: &'static ServiceModel,
        request: &AwsRequest<'_>,
        context: &ResourceContext<'_>,
    ) -> Classification {
        let is_s3 = first.model_name == "s3";
        let query = parse_pairs(request.query, false);
        let stray_target = request.header("x-amz-target").map(|target| Unclassified::Ambiguous {
            detail: format!(
                "`X-Amz-Target: {target}` on a REST service, which routes by method and path"
            ),
        });
        let host_bucket = if is_s3 {
            request
                .header("host")
                .or_else(|| request.header(":authority"))
                .and_then(|host| s3::bucket_from_host(host, &self.gateway_hosts))
        } else {
            None
        };
        let s3_addressing = is_s3.then_some(if host_bucket.is_some() {
            S3Addressing::VirtualHost
        } else {
            S3Addressing::PathStyle
        });
        let fail = |reason: Unclassified| Classification {
            s3_addressing,
            ..unknown(
                request.signing_name,
                first.iam_prefix,
                Some(first.model_name),
                first.protocols.first().copied(),
                reason,
            )
        };
        if let Some(reason) = stray_target {
            return fail(reason);
        }
        // SDKs normalize non-S3 paths before signing and never send S3 dot segments unencoded
        // by accident; a dot segment is a path AWS (or a proxy) may resolve to another route or
        // bucket than the one it matches here (`/./?tagging` on a bucket host).
        if let Some(segment) = request
            .path
            .split('/')
            .find(|s| matches!(percent_decode(s, false).as_ref(), "." | ".."))
        {
            return fail(Unclassified::Ambiguous {
                detail: format!(
                    "path segment `{segment}` in {}: AWS may resolve it to another resource",
                    request.path
                ),
            });
        }
        if let Some(bucket) = host_bucket.as_deref().filter(|b| !s3::is_valid_bucket_name(b)) {
            return fail(Unclassified::InvalidBucket { bucket: bucket.to_owned() });
        }
        let path = match &host_bucket {
            Some(bucket) => {
                let rest = request.path.strip_prefix('/').unwrap_or(request.path);
                if rest.is_empty() { format!("/{bucket}") } else { format!("/{bucket}/{rest}") }
            }
            None => request.path.to_owned(),
        };
        let has_header = |name: &str| request.header(name).is_some();
        let routes = table.routes_signed_as(request.signing_name);
        // The most specific matching route wins; two different operations matching at the same
        // specificity leave the request ambiguous.
        let find = |path: &str| -> Option<Result<_, Unclassified>> {
            let route_request = RouteRequest {
                method: request.method,
                path,
                query: &query,
                has_header: &has_header,
            };
            let (index, labels) = routes
                .iter()
                .enumerate()
                .find_map(|(i, route)| route.matches(&route_request).map(|labels| (i, labels)))?;
            let route = &routes[index];
            let rival = routes[index + 1..]
                .iter()
                .take_while(|other| other.specificity() == route.specificity())
                .find(|other| {
                    !std::ptr::eq(other.operation, route.operation)
                        && other.matches(&route_request).is_some()
                });
            Some(match rival {
                Some(other) => Err(Unclassified::AmbiguousOperation {
                    first: route.operation.name.to_owned(),
                    second: other.operation.name.to_owned(),
                }),
                None => Ok((route, labels)),
            })
        };
        let found =
            find(&path).or_else(|| path.strip_suffix('/').filter(|p| !p.is_empty()).and_then(find));
        let found = found.unwrap_or_else(|| {
            Err(Unclassified::NoRoute {
                service: first.model_name,
                method: request.method.to_owned(),
                path: path.clone(),
            })
        });
        let (route, labels) = match found {
            Ok(found) => found,
            Err(reason) => return fail(reason),
        };
        let service = route.service;
        let operation = route.operation;
        if is_s3 && let Some(key) = s3::stray_subresource(table, route, &query) {
            return fail(Unclassified::Ambiguous {
                detail: format!(
                    "query key `{key}` selects another S3 operation than {} ({} {}); S3 may act on it",
                    operation.name, request.method, path
                ),
            });
        }
        let mut params = Params {
            labels,
            query: &query,
            query_members: route.route.query_members,
            ..Params::default()
        };

        let s3_bucket = if is_s3 { params.string("Bucket").map(str::to_owned) } else { None };
        let Actions { actions, complete } = if is_s3 {
            if let Some(bucket) = params.string("Bucket").filter(|b| !s3::is_valid_bucket_name(b)) {
                return fail(Unclassified::InvalidBucket { bucket: bucket.to_owned() });
            }
            let facts = S3Facts {
                bucket: params.string("Bucket"),
                key: params.string("Key"),
                version_id: query.iter().find(|(k, _)| k == "versionId").map(|(_, v)| v.as_str()),
                copy_source: request.header("x-amz-copy-source"),
                body: request.whole_body(),
                headers: request.headers,
            };
            actions::s3_actions(operation.name, &facts, context)
        } else {
            let mut complete = true;
            let needs_body = REST_BODY_OPERATIONS
                .iter()
                .any(|(prefix, op)| *prefix == service.iam_prefix && *op == operation.name);
            if needs_body {
                params.json = request.whole_body().and_then(parse_json_strict);
                complete = params.json.is_some();
            }
            let mut result =
                actions::service_actions(service.iam_prefix, operation.name, &params, context);
            result.complete &= complete;
            result
        };
        Classification {
            signing_name: request.signing_name.to_owned(),
            service: Some(service.model_name),
            operation: Some(operation.name),
            endpoint_prefix: Some(service.endpoint_prefix),
            protocol: service.protocols.first().copied(),
            actions,
            resources_complete: complete,
            s3_addressing,
            s3_bucket,
            unclassified: None,
        }
    }
}

/// One way the request names its operation.
struct Signal {
    service: &'static ServiceModel,
    operation: &'static OperationModel,
    protocol: Protocol,
}

fn classify_rpc(
    first: &'static ServiceModel,
    models: &[&'static ServiceModel],
    request: &AwsRequest<'_>,
    context: &ResourceContext<'_>,
) -> Classification {
    let fail = |reason: Unclassified| {
        unknown(
            request.signing_name,
            first.iam_prefix,
            Some(first.model_name),
            first.protocols.first().copied(),
            reason,
        )
    };
    let accepts = |p: Protocol| models.iter().any(|m| m.accepts(p));
    let mut signals: Vec<Signal> = Vec::new();

    if let Some(target) = request.header("x-amz-target").filter(|_| !accepts(Protocol::Json)) {
        return fail(Unclassified::Ambiguous {
            detail: format!(
                "`X-Amz-Target: {target}` on a service that does not take the JSON protocol"
            ),
        });
    }
    if accepts(Protocol::Json)
        && let Some(target) = request.header("x-amz-target")
    {
        match target_signal(models, target, Protocol::Json) {
            Ok(signal) => signals.push(signal),
            Err(reason) => return fail(reason),
        }
    }
    if accepts(Protocol::RpcV2Cbor)
        && let Some(rest) = request.path.strip_prefix("/service/")
    {
        let Some((service_name, operation)) = rest.split_once("/operation/") else {
            return fail(Unclassified::NoOperationNamed {
                expected: "/service/<name>/operation/<op>".into(),
            });
        };
        match target_signal(models, &format!("{service_name}.{operation}"), Protocol::RpcV2Cbor) {
            Ok(signal) => signals.push(signal),
            Err(reason) => return fail(reason),
        }
    }
    let form_protocol = [Protocol::Query, Protocol::Ec2].into_iter().find(|p| accepts(*p));
    let mut form = Vec::new();
    if let Some(protocol) = form_protocol {
        form = parse_pairs(request.query, false);
        let is_form_body = request.header("content-type").is_some_and(|ct| {
            ct.to_ascii_lowercase().contains("application/x-www-form-urlencoded")
        });
        if is_form_body && let Some(body) = request.body {
            let text = String::from_utf8_lossy(body);
            let mut body_pairs = parse_pairs(&text, true);
            if request.body_truncated {
                // The last pair may be cut short; it is not evidence of anything.
                body_pairs.pop();
            }
            body_pairs.append(&mut form);
            form = body_pairs;
        }
        let named = form.iter().filter(|(k, _)| k == "Action").count();
        if named > 1 {
            return fail(Unclassified::Ambiguous {
                detail: format!(
                    "`Action` appears {named} times (query string and body together); name the operation once"
                ),
            });
        }
        for (_, name) in form.iter().filter(|(k, _)| k == "Action") {
            match models
                .iter()
                .filter(|m| m.accepts(protocol))
                .find_map(|m| m.operation(name).map(|op| (m, op)))
            {
                Some((service, operation)) => signals.push(Signal { service, operation, protocol }),
                None => {
                    return fail(Unclassified::UnknownOperation {
                        service: first.model_name,
                        name: name.clone(),
                    });
                }
            }
        }
    }

    let Some(signal) = signals.first() else {
        let expected = first.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" or ");
        return fail(Unclassified::NoOperationNamed {
            expected: format!("an operation named by the {expected} protocol"),
        });
    };
    if let Some(other) = signals.iter().find(|s| s.operation.name != signal.operation.name) {
        return fail(Unclassified::AmbiguousOperation {
            first: signal.operation.name.to_owned(),
            second: other.operation.name.to_owned(),
        });
    }
    let (service, operation, protocol) = (signal.service, signal.operation, signal.protocol);
    if matches!(protocol, Protocol::Json | Protocol::RpcV2Cbor)
        && let Some((key, _)) = parse_pairs(request.query, false)
            .into_iter()
            .find(|(k, _)| !k.to_ascii_lowercase().starts_with("x-amz-"))
    {
        return fail(Unclassified::Ambiguous {
            detail: format!(
                "query parameter `{key}` on a {} request: the protocol carries its input in the body only",
                protocol.as_str()
            ),
        });
    }

    let mut params = Params::default();
    let body_complete;
    match protocol {
        Protocol::Json => {
            params.json = request.whole_body().and_then(parse_json_strict);
            body_complete =
                params.json.is_some() || request.whole_body().is_some_and(<[u8]>::is_empty);
        }
        Protocol::Query | Protocol::Ec2 => {
            body_complete = !request.body_truncated
                && (request.body.is_some() || request.method.eq_ignore_ascii_case("GET"))
                && !has_duplicate_keys(&form);
            params.form = form;
        }
        // CBOR bodies are not decoded; their resources stay unnamed.
        _ => body_complete = request.whole_body().is_some_and(<[u8]>::is_empty),
    }
    let Actions { actions, complete } =
        actions::service_actions(service.iam_prefix, operation.name, &params, context);
    Classification {
        signing_name: request.signing_name.to_owned(),
        service: Some(service.model_name),
        operation: Some(operation.name),
        endpoint_prefix: Some(service.endpoint_prefix),
        protocol: Some(protocol),
        actions,
        resources_complete: complete && body_complete,
        s3_addressing: None,
        s3_bucket: None,
        unclassified: None,
    }
}

/// `<prefix>.<Operation>` against the models' JSON target prefixes.
fn target_signal(
    models: &[&'static ServiceModel],
    target: &str,
    protocol: Protocol,
) -> Result<Signal, Unclassified> {
    let (prefix, name) = target.rsplit_once('.').unwrap_or(("", target));
    let Some(service) =
        models.iter().find(|m| m.accepts(protocol) && m.json_target_prefix == Some(prefix))
    else {
        let expected =
            models.iter().filter_map(|m| m.json_target_prefix).collect::<Vec<_>>().join(", ");
        return Err(Unclassified::TargetPrefixMismatch { prefix: prefix.to_owned(), expected });
    };
    match service.operation(name) {
        Some(operation) => Ok(Signal { service, operation, protocol }),
        None => Err(Unclassified::UnknownOperation {
            service: service.model_name,
            name: name.to_owned(),
        }),
    }
}

/// Adds the credential-returning action the request's wire form names (by signing name and
/// operation, whether or not a model knows the service), so the denylist sees it.
fn with_credential_action(
    mut classification: Classification,
    request: &AwsRequest<'_>,
) -> Classification {
    if let Some(action) = super::credentials::credential_action(request)
        && !classification.actions.iter().any(|a| a.action.eq_ignore_ascii_case(action))
    {
        classification.actions.push(IamAction { action: action.to_owned(), resources: Vec::new() });
    }
    classification
}

fn unknown(
    signing_name: &str,
    prefix: &str,
    service: Option<&'static str>,
    protocol: Option<Protocol>,
    reason: Unclassified,
) -> Classification {
    Classification {
        signing_name: signing_name.to_owned(),
        service,
        operation: None,
        endpoint_prefix: None,
        protocol,
        actions: vec![IamAction { action: format!("{prefix}:Unknown"), resources: Vec::new() }],
        resources_complete: false,
        s3_addressing: None,
        s3_bucket: None,
        unclassified: Some(reason),
    }
}
