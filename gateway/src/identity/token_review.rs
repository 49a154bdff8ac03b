//! [`TokenReviewer`] over the Kubernetes TokenReview API: the API server says whether a token is
//! still good, which for a pod-bound token means its pod still exists.
//!
//! The gateway's service account needs `create` on `tokenreviews.authentication.k8s.io` (the
//! ClusterRole `system:auth-delegator` grants it).

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};

use super::validator::{ReviewFuture, TokenReviewOutcome, TokenReviewer};

const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

/// Reviews tokens with the API server `client` talks to.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: Client,
}

impl std::fmt::Debug for KubeTokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTokenReviewer").finish_non_exhaustive()
    }
}

impl KubeTokenReviewer {
    /// A reviewer using `client` (normally the gateway's in-cluster client).
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    async fn review_token(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<TokenReviewOutcome, String> {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![audience.to_owned()]),
            },
            ..Default::default()
        };
        let answer = api.create(&PostParams::default(), &review).await.map_err(|e| match e {
            kube::Error::Api(status) if status.code == 403 => format!(
                "the gateway may not create TokenReviews ({}); bind its service account to the \
                 ClusterRole system:auth-delegator",
                status.message
            ),
            other => format!("TokenReview failed: {other}"),
        })?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let reason = status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "the token is not authenticated".into());
            return Ok(TokenReviewOutcome::Rejected { reason });
        }
        let user = status.user.unwrap_or_default();
        let pod_uid = user
            .extra
            .as_ref()
            .and_then(|extra| extra.get(POD_UID_EXTRA))
            .and_then(|values| values.first().cloned());
        Ok(TokenReviewOutcome::Authenticated {
            username: user.username.unwrap_or_default(),
            pod_uid,
        })
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a str, audience: &'a str) -> ReviewFuture<'a> {
        Box::pin(self.review_token(token, audience))
    }
}
