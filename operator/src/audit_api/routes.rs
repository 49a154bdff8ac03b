//! The audit API's paths: which read a request is.

use chaperone_crds::{AUDIT_GROUP, AUDIT_VERSION};

/// A request the audit API answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/apis/audit.chaperone.dev/v1alpha1`: the APIResourceList the aggregator and kubectl read.
    Discovery,
    /// `/apis/audit.chaperone.dev`: the APIGroup.
    Group,
    /// `.../sessions` (namespace None: across namespaces).
    List { namespace: Option<String> },
    /// `.../namespaces/{ns}/sessions/{id}`.
    Get { namespace: String, session: String },
    /// `.../namespaces/{ns}/sessions/{id}/events`.
    Events { namespace: String, session: String },
}

/// Why a path is not one of the audit API's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{0} is not a path of the audit API (group audit.chaperone.dev, version v1alpha1)")]
    NotFound(String),
    #[error("sessions/{subresource} does not exist; the only subresource of a session is events")]
    NoSuchSubresource { subresource: String },
}

impl Route {
    /// The route of `path`.
    pub fn parse(path: &str) -> Result<Self, RouteError> {
        let not_found = || RouteError::NotFound(path.to_owned());
        let trimmed = path.trim_end_matches('/');
        let group = format!("/apis/{AUDIT_GROUP}");
        if trimmed == group {
            return Ok(Self::Group);
        }
        let rest = trimmed
            .strip_prefix(&group)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_prefix(AUDIT_VERSION))
            .ok_or_else(not_found)?;
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err(not_found());
        }
        let name_ok = |p: &str| {
            p.len() <= 253
                && p.bytes().all(valid_name_byte)
                && p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && p.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        match parts[..] {
            [] => Ok(Self::Discovery),
            ["sessions"] => Ok(Self::List { namespace: None }),
            ["namespaces", ns, "sessions"] if name_ok(ns) => {
                Ok(Self::List { namespace: Some(ns.to_owned()) })
            }
            ["namespaces", ns, "sessions", id] if name_ok(ns) && name_ok(id) => {
                Ok(Self::Get { namespace: ns.to_owned(), session: id.to_owned() })
            }
            ["namespaces", ns, "sessions", id, "events"] if name_ok(ns) && name_ok(id) => {
                Ok(Self::Events { namespace: ns.to_owned(), session: id.to_owned() })
            }
            ["namespaces", ns, "sessions", id, other] if name_ok(ns) && name_ok(id) => {
                Err(RouteError::NoSuchSubresource { subresource: other.to_owned() })
            }
            _ => Err(not_found()),
        }
    }

    /// The verb the API server authorized it as (`get` or `list`); None for discovery.
    pub fn verb(&self) -> Option<&'static str> {
        match self {
            Self::Discovery | Self::Group => None,
            Self::List { .. } => Some("list"),
            Self::Get { .. } | Self::Events { .. } => Some("get"),
        }
    }
}

fn valid_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
}

/// `limit` and `continue` of an events request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    pub limit: Option<usize>,
    /// The index of the first event to return (the `continue` token of the previous page).
    pub start: usize,
}

/// Why a query is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("limit={0:?} is not a positive integer")]
    Limit(String),
    #[error("continue={0:?} is not a token this API returned; start again without continue")]
    Continue(String),
    #[error("watch is not supported: sessions are read from S3, not from etcd")]
    Watch,
}

/// The query's `limit`, `continue` and `watch`.
pub fn paging(query: Option<&str>) -> Result<Paging, QueryError> {
    let mut paging = Paging::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "limit" if value.is_empty() || value == "0" => {}
            "limit" => {
                paging.limit = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| QueryError::Limit(value.clone().into_owned()))?,
                );
            }
            "continue" if value.is_empty() => {}
            "continue" => {
                paging.start = value
                    .strip_prefix("e")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| QueryError::Continue(value.clone().into_owned()))?;
            }
            "watch" if value == "true" || value == "1" => return Err(QueryError::Watch),
            _ => {}
        }
    }
    Ok(paging)
}

/// The `continue` token of the page that starts at event `start`.
pub fn continue_token(start: usize) -> String {
    format!("e{start}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/apis/audit.chaperone.dev/v1alpha1";

    #[test]
    fn every_read_path_maps_to_its_route() {
        assert_eq!(Route::parse(BASE), Ok(Route::Discovery));
        assert_eq!(Route::parse("/apis/audit.chaperone.dev"), Ok(Route::Group));
        assert_eq!(Route::parse(&format!("{BASE}/sessions")), Ok(Route::List { namespace: None }));
        assert_eq!(
            Route::parse(&format!("{BASE}/namespaces/team-a/sessions")),
            Ok(Route::List { namespace: Some("team-a".into()) })
        );
        assert_eq!(
            Route::parse(&format!("{BASE}/namespaces/team-a/sessions/019abc00-0000-7000/events")),
            Ok(Route::Events { namespace: "team-a".into(), session: "019abc00-0000-7000".into() })
        );
        assert!(matches!(
            Route::parse(&format!("{BASE}/namespaces/team-a/sessions/x/status")),
            Err(RouteError::NoSuchSubresource { .. })
        ));
        for bad in [
            "/apis/audit.chaperone.dev/v1alpha10",
            "/apis/other/v1",
            "/apis/audit.chaperone.dev/v1alpha1/namespaces/../sessions",
            "/apis/audit.chaperone.dev/v1alpha1/namespaces/Team/sessions",
        ] {
            assert!(matches!(Route::parse(bad), Err(RouteError::NotFound(_))), "{bad}");
        }
    }

    #[test]
    fn paging_reads_limit_and_the_continue_token_it_hands_out() {
        assert_eq!(paging(None), Ok(Paging::default()));
        assert_eq!(
            paging(Some(&format!("limit=50&continue={}", continue_token(100)))),
            Ok(Paging { limit: Some(50), start: 100 })
        );
        assert!(matches!(paging(Some("limit=x")), Err(QueryError::Limit(_))));
        assert!(matches!(paging(Some("continue=zz")), Err(QueryError::Continue(_))));
        assert_eq!(paging(Some("watch=true")), Err(QueryError::Watch));
    }
}
