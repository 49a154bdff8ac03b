//! A small W3C WebDriver client over HTTP (reqwest + JSON) driving headless Chromium through
//! chromedriver: what the console's end-to-end test needs, and no more.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::ports::free_port;
use crate::process::ManagedProcess;
use crate::provision::{Chromium, ensure_chromium};

/// The key W3C WebDriver names element references with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver running, with one headless browser session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    _driver: ManagedProcess,
}

/// An element of the page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Provisions Chromium (see [`ensure_chromium`]), starts chromedriver logging to `log`, and
    /// opens a headless window of 1400x1000.
    pub async fn start(log: &Path) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let Chromium { browser, driver } = tokio::task::spawn_blocking(ensure_chromium)
            .await
            .context("provisioning chromium")??;
        let port = free_port()?;
        let mut command = std::process::Command::new(&driver);
        command.arg(format!("--port={port}"));
        let mut process = ManagedProcess::start("chromedriver", command, log)?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            process.ensure_running()?;
            if let Ok(response) = http.get(format!("{base}/status")).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == json!(true)
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("chromedriver did not become ready within 30 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            },
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await?
            .json()
            .await
            .context("chromedriver's answer to a new session")?;
        let session = answer["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("chromedriver opened no session: {answer}"))?
            .to_owned();
        Ok(Self { http, base, session, _driver: process })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let answer: Value =
            response.json().await.with_context(|| format!("{method} {path}: not JSON"))?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", answer["value"]);
        }
        Ok(answer["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await.map(drop)
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        let value = self.call(reqwest::Method::GET, "/url", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Every element matching the CSS `selector`.
    pub async fn find_all(&self, selector: &str) -> anyhow::Result<Vec<Element>> {
        let value = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await?;
        Ok(value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
            .collect())
    }

    /// Waits up to `timeout` for an element matching `selector` whose text contains `text`.
    pub async fn wait_for(
        &self,
        selector: &str,
        text: &str,
        timeout: Duration,
    ) -> anyhow::Result<Element> {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            seen.clear();
            for element in self.find_all(selector).await.unwrap_or_default() {
                // An element replaced between the find and the read is just looked for again.
                if let Ok(found) = self.text(&element).await {
                    if found.contains(text) {
                        return Ok(element);
                    }
                    seen.push(found);
                }
            }
            if started.elapsed() > timeout {
                let body = self.page_text().await.unwrap_or_default();
                bail!(
                    "no {selector:?} containing {text:?} within {} s; matching elements said {seen:?}; the page said:\n{body}",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Clicks the element matching `selector` whose text contains `text`, found afresh until the
    /// click lands (a live page may replace the element between finding and clicking it).
    pub async fn click_on(
        &self,
        selector: &str,
        text: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let element = self.wait_for(selector, text, timeout).await?;
            match self.click(&element).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.to_string().contains("stale element") && started.elapsed() < timeout => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn text(&self, element: &Element) -> anyhow::Result<String> {
        let value =
            self.call(reqwest::Method::GET, &format!("/element/{}/text", element.0), None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The whole page's visible text.
    pub async fn page_text(&self) -> anyhow::Result<String> {
        let body = self.find_all("body").await?;
        match body.first() {
            Some(element) => self.text(element).await,
            None => Ok(String::new()),
        }
    }

    pub async fn click(&self, element: &Element) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", element.0), Some(json!({})))
            .await
            .map(drop)
    }

    /// The first element matching `selector` inside `parent`.
    pub async fn find_in(&self, parent: &Element, selector: &str) -> anyhow::Result<Element> {
        let value = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/element", parent.0),
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await?;
        value[ELEMENT]
            .as_str()
            .map(|id| Element(id.to_owned()))
            .with_context(|| format!("no {selector:?}: {value}"))
    }

    pub async fn type_text(&self, element: &Element, text: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    /// Scrolls the page until `element` is at the top of the window.
    pub async fn scroll_to(&self, element: &Element) -> anyhow::Result<()> {
        let script = json!({
            "script": "arguments[0].scrollIntoView(true);",
            "args": [{ELEMENT: element.0}],
        });
        self.call(reqwest::Method::POST, "/execute/sync", Some(script)).await.map(drop)
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let value = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let encoded = value.as_str().context("a screenshot that is not base64 text")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(encoded)?)
    }
}
