//! The HTTP/1.1 server on 127.0.0.1: every connection served on its own task, every request
//! admitted by the token (see [`super::token`]) before [`super::routes`] answers it.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::console::Console;
use crate::console::routes;
use crate::console::token::{Admission, Presented, Refusal, Token, admit};

/// Serves until the process is stopped.
pub async fn serve(
    listener: TcpListener,
    port: u16,
    token: Token,
    console: Arc<Console>,
) -> anyhow::Result<ExitCode> {
    let token = Arc::new(token);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("warning: accepting a connection failed: {e}");
                continue;
            }
        };
        let (token, console) = (Arc::clone(&token), Arc::clone(&console));
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (token, console) = (Arc::clone(&token), Arc::clone(&console));
                async move { Ok::<_, Infallible>(handle(request, port, &token, &console).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    port: u16,
    token: &Token,
    console: &Console,
) -> Response<Full<Bytes>> {
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = Presented {
        host: text(header::HOST),
        origin: text(header::ORIGIN),
        cookie: text(header::COOKIE),
        query: request.uri().query(),
    };
    match admit(token, port, &presented) {
        Admission::Cookie => routes::answer(request, console).await,
        // First load: keep the token in the cookie and take it out of the address bar.
        Admission::Query => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, request.uri().path())
            .header(header::SET_COOKIE, token.set_cookie(port))
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::new()))
            .unwrap_or_default(),
        Admission::Refused(refusal) => refused(&refusal),
    }
}

fn refused(refusal: &Refusal) -> Response<Full<Bytes>> {
    let (status, message) = match refusal {
        Refusal::Token => (
            StatusCode::UNAUTHORIZED,
            "This console needs its token. Open the URL `kubectl chaperone console` printed \
             (http://127.0.0.1:PORT/?token=...); it is valid while that command runs."
                .to_owned(),
        ),
        Refusal::Host(host) => (
            StatusCode::FORBIDDEN,
            format!(
                "Refused: the request was addressed to host {host:?}, not to this console's \
                 127.0.0.1 address. Open the URL `kubectl chaperone console` printed."
            ),
        ),
        Refusal::Origin(origin) => (
            StatusCode::FORBIDDEN,
            format!(
                "Refused: a page from {origin:?} may not call this console. Use the console's \
                 own page, at the URL `kubectl chaperone console` printed."
            ),
        ),
    };
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Chaperone console</title></head>\
         <body><h1>Chaperone console</h1><p id=\"refusal\">{}</p></body></html>",
        routes::escape_html(&message)
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(page)))
        .unwrap_or_default()
}
