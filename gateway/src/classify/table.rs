//! The operation tables: what the generated service models hold, and the lookup indexes built
//! over them once per process.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::generated;
use super::route::CompiledRoute;

/// How a service's requests are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// `POST /` with `X-Amz-Target: <prefix>.<Operation>` and a JSON body.
    Json,
    /// `POST /` with a form-encoded body carrying `Action=<Operation>` (or `GET` with it in the query).
    Query,
    /// EC2's dialect of the query protocol.
    Ec2,
    /// Operation chosen by method and URI template; JSON bodies.
    RestJson,
    /// Operation chosen by method and URI template; XML bodies.
    RestXml,
    /// Smithy RPC v2 CBOR: `POST /service/<ServiceName>/operation/<Operation>`.
    RpcV2Cbor,
}

impl Protocol {
    /// The protocol's name as the service models spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::Query => "query",
            Protocol::Ec2 => "ec2",
            Protocol::RestJson => "rest-json",
            Protocol::RestXml => "rest-xml",
            Protocol::RpcV2Cbor => "smithy-rpc-v2-cbor",
        }
    }

    /// Whether operations are chosen by method and URI template.
    pub fn is_rest(self) -> bool {
        matches!(self, Protocol::RestJson | Protocol::RestXml)
    }
}

/// One AWS service as its public model describes it (generated, see `gateway/codegen/`).
#[derive(Debug)]
pub struct ServiceModel {
    /// The model's directory name in botocore (`s3`, `stepfunctions`, `bedrock-runtime`).
    pub model_name: &'static str,
    /// The model's API version.
    pub api_version: &'static str,
    /// The SigV4 signing name, as it appears in a request's credential scope.
    pub signing_name: &'static str,
    /// The endpoint host prefix.
    pub endpoint_prefix: &'static str,
    /// The IAM action prefix (`states` for Step Functions, `cloudwatch` for `monitoring`).
    pub iam_prefix: &'static str,
    /// Protocols the service accepts, the model's preferred one first.
    pub protocols: &'static [Protocol],
    /// For the JSON protocol: the part of `X-Amz-Target` before the dot (also the CBOR service name).
    pub json_target_prefix: Option<&'static str>,
    /// Every operation, sorted by name.
    pub operations: &'static [OperationModel],
}

impl ServiceModel {
    /// Whether the service accepts `protocol`.
    pub fn accepts(&self, protocol: Protocol) -> bool {
        self.protocols.contains(&protocol)
    }

    /// The operation with this exact name.
    pub fn operation(&self, name: &str) -> Option<&'static OperationModel> {
        self.operations.binary_search_by(|op| op.name.cmp(name)).ok().map(|i| &self.operations[i])
    }
}

/// One operation of a service model.
#[derive(Debug)]
pub struct OperationModel {
    /// The operation name (`PutObject`).
    pub name: &'static str,
    /// For REST protocols: the HTTP binding.
    pub route: Option<&'static HttpRoute>,
    /// For REST operations whose requests the wire cannot tell from another operation's
    /// (a deprecated twin): the operation that takes them.
    pub shadowed_by: Option<&'static str>,
}

impl OperationModel {
    /// An operation of an RPC protocol (JSON, query, EC2, CBOR).
    pub const fn rpc(name: &'static str) -> Self {
        OperationModel { name, route: None, shadowed_by: None }
    }

    /// An operation of a REST protocol.
    pub const fn rest(name: &'static str, route: &'static HttpRoute) -> Self {
        OperationModel { name, route: Some(route), shadowed_by: None }
    }

    /// Marks the operation unreachable on the wire in favour of `other`.
    pub const fn shadowed_by(self, other: &'static str) -> Self {
        OperationModel { shadowed_by: Some(other), ..self }
    }
}

/// The HTTP binding of a REST operation.
#[derive(Debug)]
pub struct HttpRoute {
    /// The HTTP method.
    pub method: &'static str,
    /// The path template: literal segments, `{Label}` (one segment) and `{Label+}` (the rest).
    pub path: &'static str,
    /// Query keys the request must carry, with the value it must have where the model fixes one
    /// (`list-type=2`). Includes the model's required query-string members.
    pub query: &'static [(&'static str, Option<&'static str>)],
    /// Headers (lower case) the request must carry: the model's required header members.
    pub headers: &'static [&'static str],
    /// Optional query-string members resources depend on: (member name, query key).
    pub query_members: &'static [(&'static str, &'static str)],
}

/// The generated service models and the indexes over them.
pub struct OperationTable {
    by_signing_name: HashMap<&'static str, Vec<&'static ServiceModel>>,
    routes: HashMap<&'static str, Vec<CompiledRoute>>,
}

static TABLE: LazyLock<OperationTable> = LazyLock::new(OperationTable::build);

impl OperationTable {
    /// The process-wide table, built on first use.
    pub fn get() -> &'static OperationTable {
        &TABLE
    }

    fn build() -> OperationTable {
        let mut by_signing_name: HashMap<&'static str, Vec<&'static ServiceModel>> = HashMap::new();
        let mut routes: HashMap<&'static str, Vec<CompiledRoute>> = HashMap::new();
        for &service in generated::SERVICES {
            by_signing_name.entry(service.signing_name).or_default().push(service);
            for op in service.operations {
                if let (Some(route), None) = (op.route, op.shadowed_by) {
                    routes
                        .entry(service.signing_name)
                        .or_default()
                        .push(CompiledRoute::compile(service, op, route));
                }
            }
        }
        for list in routes.values_mut() {
            // Most specific first; ties keep model order, which is by name.
            list.sort_by_key(|route| std::cmp::Reverse(route.specificity()));
        }
        OperationTable { by_signing_name, routes }
    }

    /// Every service model, in generation order.
    pub fn services(&self) -> &'static [&'static ServiceModel] {
        generated::SERVICES
    }

    /// The models signed with `signing_name` (usually one; Bedrock's planes share `bedrock`).
    pub fn services_signed_as(&self, signing_name: &str) -> &[&'static ServiceModel] {
        self.by_signing_name.get(signing_name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// REST routes of the services signed with `signing_name`, most specific first.
    pub(crate) fn routes_signed_as(&self, signing_name: &str) -> &[CompiledRoute] {
        self.routes.get(signing_name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Total number of operations across all models.
    pub fn operation_count(&self) -> usize {
        generated::SERVICES.iter().map(|s| s.operations.len()).sum()
    }
}

/// The botocore release the tables were generated from.
pub use generated::BOTOCORE_VERSION;
