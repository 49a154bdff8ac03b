//! Finding the cluster's service-account token issuer, which the gateways must trust.

use kube::Client;

/// Why the issuer could not be discovered.
#[derive(Debug, thiserror::Error)]
pub enum IssuerDiscoveryError {
    /// The API server did not answer the discovery request.
    #[error(
        "reading the API server's /.well-known/openid-configuration failed ({0}); pass \
         --service-account-issuer, or grant the operator the ClusterRole \
         system:service-account-issuer-discovery"
    )]
    Request(#[source] kube::Error),
    /// The answer had no issuer.
    #[error(
        "the API server's /.well-known/openid-configuration has no \"issuer\"; pass --service-account-issuer"
    )]
    NoIssuer,
}

/// The issuer the API server announces in its OIDC discovery document.
pub async fn discover_issuer(client: &Client) -> Result<String, IssuerDiscoveryError> {
    let request = http::Request::get("/.well-known/openid-configuration")
        .body(Vec::new())
        .map_err(|e| IssuerDiscoveryError::Request(kube::Error::HttpError(e)))?;
    let document: serde_json::Value =
        client.request(request).await.map_err(IssuerDiscoveryError::Request)?;
    document["issuer"]
        .as_str()
        .filter(|issuer| !issuer.is_empty())
        .map(str::to_owned)
        .ok_or(IssuerDiscoveryError::NoIssuer)
}
