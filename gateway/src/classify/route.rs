//! REST route matching: method + URI template + required query keys and headers.

use super::params::percent_decode;
use super::table::{HttpRoute, OperationModel, ServiceModel};

#[derive(Debug)]
enum Segment {
    Literal(&'static str),
    Label(&'static str),
    Greedy(&'static str),
}

/// A REST operation's route, compiled once from its template.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub service: &'static ServiceModel,
    pub operation: &'static OperationModel,
    pub route: &'static HttpRoute,
    segments: Vec<Segment>,
    /// The template ends with `/` (`/agents/{agentId}/`): only paths ending with `/` match, and
    /// that slash tells the route from a slash-less twin (`/agents/{sessionId}`).
    trailing_slash: bool,
}

/// The request facts a route is matched against.
pub(crate) struct RouteRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub has_header: &'a dyn Fn(&str) -> bool,
}

impl CompiledRoute {
    pub fn compile(
        service: &'static ServiceModel,
        operation: &'static OperationModel,
        route: &'static HttpRoute,
    ) -> Self {
        let segments = path_segments(route.path)
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(label) => match label.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy),
                    None => Segment::Label(label),
                },
                None => Segment::Literal(s),
            })
            .collect();
        let trailing_slash = route.path.len() > 1 && route.path.ends_with('/');
        CompiledRoute { service, operation, route, segments, trailing_slash }
    }

    /// Orders routes: more literal segments, then more required query keys and headers, then
    /// fewer greedy labels.
    pub fn specificity(&self) -> (usize, usize, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        let greedy = self.segments.iter().filter(|s| matches!(s, Segment::Greedy(_))).count();
        (literals, self.route.query.len() + self.route.headers.len(), usize::MAX - greedy)
    }

    /// The label bindings if the request matches this route.
    pub fn matches(&self, req: &RouteRequest<'_>) -> Option<Vec<(&'static str, String)>> {
        if !self.route.method.eq_ignore_ascii_case(req.method) {
            return None;
        }
        for (key, value) in self.route.query {
            let found =
                req.query.iter().any(|(k, v)| k == key && value.is_none_or(|want| v == want));
            if !found {
                return None;
            }
        }
        if !self.route.headers.iter().all(|h| (req.has_header)(h)) {
            return None;
        }
        let raw = self.match_path(req.path)?;
        Some(
            raw.into_iter()
                .map(|(name, value)| (name, percent_decode(value, false).into_owned()))
                .collect(),
        )
    }

    /// Raw (still encoded) label bindings if `path` fits the template.
    fn match_path<'p>(&self, path: &'p str) -> Option<Vec<(&'static str, &'p str)>> {
        let path = if self.trailing_slash { path.strip_suffix('/')? } else { path };
        let mut bindings = Vec::new();
        let mut rest = path.strip_prefix('/').unwrap_or(path);
        let mut consumed_all = rest.is_empty();
        for (i, segment) in self.segments.iter().enumerate() {
            if let Segment::Greedy(name) = segment {
                if i + 1 != self.segments.len() || rest.is_empty() || consumed_all {
                    return None;
                }
                bindings.push((*name, rest));
                return Some(bindings);
            }
            if consumed_all {
                return None;
            }
            let (head, tail) = match rest.split_once('/') {
                Some((head, tail)) => (head, Some(tail)),
                None => (rest, None),
            };
            match segment {
                Segment::Literal(literal) => {
                    if percent_decode(head, false) != *literal {
                        return None;
                    }
                }
                Segment::Label(name) => {
                    if head.is_empty() {
                        return None;
                    }
                    bindings.push((*name, head));
                }
                Segment::Greedy(_) => return None,
            }
            match tail {
                Some(tail) => rest = tail,
                None => {
                    rest = "";
                    consumed_all = true;
                }
            }
        }
        consumed_all.then_some(bindings)
    }
}

fn path_segments(path: &'static str) -> impl Iterator<Item = &'static str> {
    path.strip_prefix('/').unwrap_or(path).split('/').filter(|s| !s.is_empty())
}
