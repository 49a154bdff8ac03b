//! Small types shared by several resources.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Regular expression an IAM action pattern must match: `service:Action`, where the service is a
/// lowercase IAM prefix (or `*`) and the action may use `*` and `?` wildcards.
pub const ACTION_PATTERN: &str = r"^(\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$";

/// CEL rule applied to lists of action patterns.
pub(crate) const ACTION_LIST_RULE: &str =
    r"self.all(a, a.matches('^(\\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$'))";

/// A reference to another object of the same namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the object in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyReference {
    /// Name of the Secret in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Standard status fields: the generation last acted on and `metav1.Condition`s.
pub type Conditions = Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>;
