//! Just enough of the W3C WebDriver protocol to drive Debian's headless
//! Chromium through chromedriver from a test: open pages, find elements
//! by CSS selector, type, click, read text, take screenshots.

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session; both end on drop.
pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// An element of the current page.
pub(crate) struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    /// Panics with what to install when either is missing.
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Its own process group, so the browsers it starts end with it
        // even when a failing test drops it without quitting.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver runs (`make setup` installs Debian's chromium and chromium-driver)",
            );
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while browser.call("GET", "/status", None).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1360,900", "--force-device-scale-factor=1"]
            }
        } } });
        let created =
            browser.call("POST", "/session", Some(capabilities)).await.expect("a browser session");
        browser.session = created["sessionId"].as_str().expect("session id").to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self.http.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status} {}", value["value"]));
        }
        Ok(value["value"].clone())
    }

    async fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Opens `url` and waits for it to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The element `css` selects, waiting up to 5 s for it; panics (with
    /// the page's text) if none appears.
    pub(crate) async fn find(&self, css: &str) -> Element<'_> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.try_find(css).await {
                Ok(id) => return Element { browser: self, id },
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    panic!("no element {css:?} ({e}) on a page reading:\n{}", self.text().await)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn try_find(&self, css: &str) -> Result<String, String> {
        let path = format!("/session/{}/element", self.session);
        let found = self
            .call("POST", &path, Some(json!({ "using": "css selector", "value": css })))
            .await?;
        found[ELEMENT].as_str().map(str::to_owned).ok_or_else(|| "no element id".to_owned())
    }

    /// How many elements `css` selects.
    pub(crate) async fn count(&self, css: &str) -> usize {
        let found = self
            .session_call(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found.as_array().map_or(0, Vec::len)
    }

    /// The visible text of the page.
    pub(crate) async fn text(&self) -> String {
        let Ok(id) = self.try_find("body").await else { return String::new() };
        self.call("GET", &format!("/session/{}/element/{id}/text", self.session), None)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// A PNG of the viewport, written to `path`.
    pub(crate) async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let png = self.session_call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Ends the session, then chromedriver and its browsers (on drop).
    pub(crate) async fn quit(self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    fn path(&self, action: &str) -> String {
        format!("/element/{}{action}", self.id)
    }

    /// Clicks it (a checkbox, say: nothing is loaded).
    pub(crate) async fn click(&self) {
        self.browser.session_call("POST", &self.path("/click"), Some(json!({}))).await;
    }

    /// Clicks a button or link that loads a page, and waits until the
    /// browser holds the new document (a click does not wait for it).
    pub(crate) async fn submit(&self) {
        let before = self.browser.try_find("html").await.ok();
        self.click().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.browser.try_find("html").await.ok() == before {
            assert!(tokio::time::Instant::now() < deadline, "the click loaded no page");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces its value with `text`.
    pub(crate) async fn fill(&self, text: &str) {
        self.browser.session_call("POST", &self.path("/clear"), Some(json!({}))).await;
        self.browser
            .session_call("POST", &self.path("/value"), Some(json!({ "text": text })))
            .await;
    }

    /// Its visible text.
    pub(crate) async fn text(&self) -> String {
        self.browser
            .session_call("GET", &self.path("/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
