//! The console's secret: 32 random bytes, hex, handed over once in the printed URL and then kept
//! in an HttpOnly, SameSite=Strict cookie; and the checks every request passes.

/// The cookie that carries the token after the first load, suffixed with the port: cookies are
/// kept per host, not per port, and two consoles may run side by side.
pub const COOKIE: &str = "chaperone_console";

fn cookie_name(port: u16) -> String {
    format!("{COOKIE}_{port}")
}

/// The random token of one console run.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(hex::encode(bytes)))
    }

    #[cfg(test)]
    pub fn from_text(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the texts differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The `Set-Cookie` value that keeps the token for later requests.
    pub fn set_cookie(&self, port: u16) -> String {
        format!("{}={}; HttpOnly; SameSite=Strict; Path=/", cookie_name(port), self.0)
    }
}

/// What a request showed to be let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The cookie carries the token.
    Cookie,
    /// The URL's `token` query parameter does (first load): set the cookie and drop it from the URL.
    Query,
    /// Refused, with the reason shown on the 401/403 page.
    Refused(Refusal),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or a wrong one.
    Token,
    /// The Host header is not this console's address (DNS rebinding).
    Host(String),
    /// A cross-origin request.
    Origin(String),
}

/// The request's parts that decide admission.
pub struct Presented<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub query: Option<&'a str>,
}

/// Admits a request to the console on `port` that presents `token`.
pub fn admit(token: &Token, port: u16, presented: &Presented<'_>) -> Admission {
    let allowed_hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    match presented.host {
        Some(host) if allowed_hosts.iter().any(|h| h == host) => {}
        other => return Admission::Refused(Refusal::Host(other.unwrap_or("").to_owned())),
    }
    if let Some(origin) = presented.origin
        && !allowed_hosts.iter().any(|h| origin == format!("http://{h}"))
    {
        return Admission::Refused(Refusal::Origin(origin.to_owned()));
    }
    let from_cookie = presented.cookie.into_iter().flat_map(|c| c.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == cookie_name(port)).then_some(value)
    });
    if from_cookie.is_some_and(|value| token.matches(value)) {
        return Admission::Cookie;
    }
    let from_query = presented.query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v)
    });
    if from_query.is_some_and(|value| token.matches(&value)) {
        return Admission::Query;
    }
    Admission::Refused(Refusal::Token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::from_text("abc123")
    }

    fn presented<'a>(
        host: &'a str,
        origin: Option<&'a str>,
        cookie: Option<&'a str>,
        query: Option<&'a str>,
    ) -> Presented<'a> {
        Presented { host: Some(host), origin, cookie, query }
    }

    #[test]
    fn the_token_in_the_url_or_the_cookie_admits_and_nothing_else_does() {
        let t = token();
        assert_eq!(
            admit(&t, 8080, &presented("127.0.0.1:8080", None, None, Some("token=abc123"))),
            Admission::Query
        );
        assert_eq!(
            admit(
                &t,
                8080,
                &presented(
                    "127.0.0.1:8080",
                    None,
                    Some("x=1; chaperone_console_8080=abc123"),
                    None
                )
            ),
            Admission::Cookie
        );
        assert_eq!(
            admit(
                &t,
                8080,
                &presented(
                    "127.0.0.1:8080",
                    None,
                    Some("chaperone_console_8080=abc12"),
                    Some("token=nope")
                )
            ),
            Admission::Refused(Refusal::Token)
        );
        assert_eq!(
            admit(&t, 8080, &presented("127.0.0.1:8080", None, None, None)),
            Admission::Refused(Refusal::Token)
        );
    }

    #[test]
    fn another_host_or_origin_is_refused_even_with_the_token() {
        let t = token();
        assert_eq!(
            admit(&t, 8080, &presented("evil.example:8080", None, None, Some("token=abc123"))),
            Admission::Refused(Refusal::Host("evil.example:8080".into()))
        );
        assert_eq!(
            admit(&t, 8080, &presented("127.0.0.1:9090", None, None, Some("token=abc123"))),
            Admission::Refused(Refusal::Host("127.0.0.1:9090".into()))
        );
        assert_eq!(
            admit(
                &t,
                8080,
                &presented(
                    "127.0.0.1:8080",
                    Some("http://evil.example"),
                    Some("chaperone_console_8080=abc123"),
                    None
                )
            ),
            Admission::Refused(Refusal::Origin("http://evil.example".into()))
        );
        assert_eq!(
            admit(
                &t,
                8080,
                &presented(
                    "localhost:8080",
                    Some("http://localhost:8080"),
                    Some("chaperone_console_8080=abc123"),
                    None
                )
            ),
            Admission::Cookie
        );
    }

    #[test]
    fn generated_tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (Token::generate().unwrap(), Token::generate().unwrap());
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!a.matches(b.as_str()));
    }
}
