//! The operator console over HTTP against a real PostgreSQL: nobody
//! anonymous, operators act and viewers do not, CSRF on every change,
//! throttled logins, escaped data, the mounted mode. The browser test
//! (`browser.rs`) drives the same pages in Chromium.

use std::{collections::HashMap, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use cmdbus::CommandStatus;
use cmdbus_web::{Console, Identify, Role, User};
use http_body_util::BodyExt;
use payments::{Payment, payments, users};
use tower::ServiceExt;
use uuid::Uuid;

#[path = "support/payments.rs"]
mod payments;

/// A browser's worth of HTTP: keeps cookies, reads pages.
struct Client {
    app: Router,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Client {
    fn new(app: Router) -> Self {
        Self { app, cookies: HashMap::new() }
    }

    async fn send(&mut self, request: Request<Body>) -> Page {
        let response = self.app.clone().oneshot(request).await.expect("response");
        for cookie in response.headers().get_all(header::SET_COOKIE) {
            let cookie = cookie.to_str().expect("ascii");
            let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        Page { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn get(&mut self, uri: &str) -> Page {
        let request =
            Request::get(uri).header(header::COOKIE, self.cookie_header()).body(Body::empty());
        self.send(request.expect("request")).await
    }

    /// POSTs `fields`, with this browser's CSRF token unless `csrf` says otherwise.
    async fn post(&mut self, uri: &str, fields: &[(&str, &str)], csrf: Csrf) -> Page {
        let mut form = form_urlencoded::Serializer::new(String::new());
        match csrf {
            Csrf::Right => {
                let token = self
                    .cookies
                    .get("cmdbus_csrf")
                    .cloned()
                    .expect("a CSRF cookie: GET a page first");
                form.append_pair("csrf", &token);
            }
            Csrf::Wrong => {
                form.append_pair("csrf", "forged");
            }
            Csrf::Missing => {}
        }
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        let request = Request::post(uri)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.finish()));
        self.send(request.expect("request")).await
    }

    async fn log_in(&mut self, name: &str, password: &str) -> Page {
        self.get("/login").await;
        self.post("/login", &[("name", name), ("password", password)], Csrf::Right).await
    }
}

#[derive(Clone, Copy)]
enum Csrf {
    Right,
    Wrong,
    Missing,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_anonymous_sees_a_page_and_logins_are_throttled() {
    let bus = cmdbus_tests::pg_bus().await;
    let mut client = Client::new(Console::standalone(bus, users()).router());
    let first = client.get("/").await;
    let csrf_cookie = first.headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(csrf_cookie.starts_with("cmdbus_csrf="), "{csrf_cookie}");
    assert!(
        ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"].iter().all(|a| csrf_cookie.contains(a))
    );
    for page in ["/", "/tsq", "/query", &format!("/commands/payments/{}", Uuid::nil())] {
        let response = client.get(page).await;
        assert_eq!(response.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(response.headers[header::LOCATION], "/login", "{page}");
    }
    let login = client.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    let csp = login.headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    // A login form without the CSRF token is refused before the password is checked.
    let forged =
        client.post("/login", &[("name", "ann"), ("password", "s3cret")], Csrf::Missing).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    for _ in 0..cmdbus_web::MAX_FAILURES {
        let wrong = client.log_in("ann", "guess").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.body.contains("Wrong name or password"), "{}", wrong.body);
    }
    let throttled = client.log_in("ann", "s3cret").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.body.contains("Too many failed logins"), "{}", throttled.body);
    assert!(!client.cookies.contains_key("cmdbus_session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_act_viewers_look_and_every_change_needs_the_csrf_token() {
    let bus = cmdbus_tests::pg_bus().await;
    let ids = payments(&bus, &["closed-1", "closed-2"]).await;
    let app = Console::standalone(bus.clone(), users()).router();
    let detail = format!("/commands/payments/{}", ids[0]);
    let act = format!("{detail}/act");

    let mut viewer = Client::new(app.clone());
    assert_eq!(viewer.log_in("vic", "s3cret").await.status, StatusCode::SEE_OTHER);
    let session = viewer.cookies.get("cmdbus_session").expect("session cookie");
    assert_eq!(session.len(), 64);
    let page = viewer.get(&detail).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("account_closed") && !page.body.contains("id=\"retry\""),
        "a viewer gets no buttons"
    );
    let refused = viewer.post(&act, &[("action", "retry")], Csrf::Right).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("vic is a viewer"), "{}", refused.body);

    let mut operator = Client::new(app);
    assert_eq!(operator.log_in("ann", "s3cret").await.status, StatusCode::SEE_OTHER);
    operator.get(&detail).await;
    for csrf in [Csrf::Missing, Csrf::Wrong] {
        let refused = operator.post(&act, &[("action", "retry")], csrf).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.body.contains("CSRF"), "{}", refused.body);
    }
    assert_eq!(
        bus.command::<Payment>(ids[0]).await.expect("command").status,
        CommandStatus::InTroubleshootingQueue
    );

    let canceled = operator
        .post(&act, &[("action", "cancel"), ("reason", "duplicate <b>payment</b>")], Csrf::Right)
        .await;
    assert_eq!(canceled.status, StatusCode::SEE_OTHER);
    let back = canceled.headers[header::LOCATION].to_str().expect("ascii").to_owned();
    assert!(back.starts_with(&detail), "{back}");
    let page = operator.get(&back).await;
    assert!(page.body.contains("Canceled."), "{}", page.body);
    assert!(page.body.contains("duplicate &lt;b&gt;payment&lt;/b&gt;"), "the reason is escaped");
    let trail = bus.audit_trail::<Payment>(ids[0]).await.expect("audit");
    let last = trail.last().expect("audited");
    assert_eq!(
        (last.event, last.details["operator"].as_str()),
        (cmdbus::AuditEvent::OperatorCancel, Some("ann"))
    );

    // Acting twice is refused in plain words.
    let again = operator.post(&act, &[("action", "retry")], Csrf::Right).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("not in the troubleshooting queue"), "{}", again.body);

    // Logging out ends the session.
    operator.post("/logout", &[], Csrf::Right).await;
    assert_eq!(operator.get(&detail).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_in_a_payload_is_shown_as_text() {
    let bus = cmdbus_tests::pg_bus().await;
    let ids = payments(&bus, &["closed<script>alert('x')</script>"]).await;
    let mut client = Client::new(Console::standalone(bus, users()).router());
    client.log_in("vic", "s3cret").await;
    for page in [format!("/commands/payments/{}", ids[0]), "/tsq".to_owned()] {
        let body = client.get(&page).await.body;
        assert!(!body.contains("<script>"), "{page}: {body}");
        assert!(body.contains("&lt;script&gt;"), "{page}: {body}");
    }
}

/// The host application's authentication, by a header its proxy sets.
struct HostAuth;

impl Identify for HostAuth {
    fn identify(&self, request: &axum::http::request::Parts) -> Option<User> {
        let name = request.headers.get("x-host-user")?.to_str().ok()?;
        Some(User::new(cmdbus::Operator::new(name).ok()?, Role::Operator))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_in_a_host_app_the_host_says_who_acts() {
    let bus = cmdbus_tests::pg_bus().await;
    let ids = payments(&bus, &["closed-9", "open-1"]).await;
    let app = Router::new()
        .nest("/ops", Console::mounted(bus.clone(), HostAuth).base_path("/ops/").router());
    let mut client = Client::new(app);
    assert_eq!(
        client.get("/ops").await.status,
        StatusCode::UNAUTHORIZED,
        "no host identity, no page"
    );

    let as_host = |uri: &str, client: &Client| {
        Request::get(uri)
            .header("x-host-user", "host-admin")
            .header(header::COOKIE, client.cookie_header())
    };
    let overview =
        client.send(as_host("/ops", &client).body(Body::empty()).expect("request")).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("href=\"/ops/tsq\""), "links stay under the mount");
    assert!(overview.body.contains("payments"), "{}", overview.body);
    assert!(!overview.body.contains("Log out"), "the host owns sessions");

    let token = client.cookies.get("cmdbus_csrf").cloned().expect("csrf cookie");
    let form = format!("csrf={token}&do=retry%3Aselected&id=payments%2F{}", ids[0]);
    let request = Request::post("/ops/tsq/act")
        .header("x-host-user", "host-admin")
        .header(header::COOKIE, client.cookie_header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("request");
    let done = client.send(request).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("1 of 1 item(s): retry done, as host-admin"), "{}", done.body);
    let trail = bus.audit_trail::<Payment>(ids[0]).await.expect("audit");
    assert_eq!(trail.last().expect("audited").details["operator"], "host-admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_wide_action_is_previewed_then_done_and_history_is_queried() {
    let bus = cmdbus_tests::pg_bus().await;
    let ids = payments(&bus, &["closed-a", "closed-b", "open-c"]).await;
    let health = bus.overview(Duration::from_secs(3600)).await.expect("overview");
    assert_eq!(health.len(), 1, "{health:?}");
    assert_eq!((health[0].in_tsq, health[0].completed_recently, health[0].due), (2, 1, 0));

    let mut client = Client::new(Console::standalone(bus.clone(), users()).router());
    client.log_in("ann", "s3cret").await;
    let overview = client.get("/").await;
    assert!(overview.body.contains("http-equiv=\"refresh\""), "the overview reloads itself");
    assert!(
        overview.body.contains("href=\"/tsq?domain=payments&amp;type=Payment\""),
        "{}",
        overview.body
    );

    let filter = [("domain", "payments"), ("code", "account_closed")];
    let mut fields = filter.to_vec();
    fields.push(("do", "cancel:filter"));
    let preview = client.post("/tsq/preview", &fields, Csrf::Right).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains("<strong>2</strong> item(s)"), "{}", preview.body);
    assert_eq!(
        bus.command::<Payment>(ids[0]).await.expect("cmd").status,
        CommandStatus::InTroubleshootingQueue
    );
    let no_reason = client.post("/tsq/act", &fields, Csrf::Right).await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST, "a cancellation needs a reason");
    fields.push(("reason", "fraud ring"));
    let done = client.post("/tsq/act", &fields, Csrf::Right).await;
    assert!(done.body.contains("2 of 2 item(s): cancel done, as ann"), "{}", done.body);
    for id in &ids[..2] {
        assert_eq!(bus.command::<Payment>(*id).await.expect("cmd").status, CommandStatus::Canceled);
    }

    let canceled = client.get("/query?status=CANCELED&domain=payments").await;
    assert!(
        canceled.body.contains(&ids[0].to_string()) && !canceled.body.contains(&ids[2].to_string())
    );
    let bad = client.get("/query?type=Payment").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("choose the domain too"), "{}", bad.body);
    let bad_time = client.get("/tsq?since=yesterday").await;
    assert_eq!(bad_time.status, StatusCode::BAD_REQUEST);
    let by_correlation = client.get(&format!("/query?correlation={}", ids[2])).await;
    assert!(by_correlation.body.contains(&ids[2].to_string()));
    let any_domain = client.get(&format!("/commands/_/{}", ids[2])).await;
    assert_eq!(any_domain.status, StatusCode::OK);
    let unknown = client.get(&format!("/commands/_/{}", Uuid::nil())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// Every page's inputs, the unusual ones included: pages of more than 50,
/// time formats, refusals in plain words, JSON that does not parse, a
/// pending command canceled before it starts, pauses on the overview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_takes_its_inputs_and_refuses_bad_ones_in_plain_words() {
    let bus = cmdbus_tests::pg_bus().await;
    let closed: Vec<String> = (0..52).map(|i| format!("closed-{i}")).collect();
    let accounts: Vec<&str> = closed.iter().map(String::as_str).collect();
    let ids = payments(&bus, &accounts).await;
    // One more, never run: pending and due, then the domain paused.
    let pending =
        bus.send(Payment { account: "open-9".into(), amount: 1 }).await.expect("send").command_id();
    let ops = cmdbus::Operator::new("ops").expect("operator");
    let target = cmdbus::FlowTarget::domain("payments").expect("target");
    bus.pause(&target, &ops, "bank holiday").await.expect("pause");

    let mut client = Client::new(Console::standalone(bus.clone(), users()).router());
    client.log_in("ann", "s3cret").await;
    let overview = client.get("/").await.body;
    assert!(overview.contains("bank holiday"), "{overview}");
    assert!(overview.contains("<td>0 s</td>"), "the oldest due: {overview}");

    // The TSQ in pages of 50, filtered by time in every accepted form.
    let first = client.get("/tsq?domain=payments&type=Payment&since=2000-01-01").await.body;
    assert_eq!(first.matches("type=\"checkbox\"").count(), 50);
    let next = first.split("id=\"next\" href=\"").nth(1).and_then(|r| r.split('"').next());
    let next = next.expect("a next page").replace("&amp;", "&");
    let second = client.get(&next).await.body;
    assert_eq!(second.matches("type=\"checkbox\"").count(), 2, "{second}");
    for since in ["2000-01-01T00:00", "2000-01-01T00:00:00", "2000-01-01T00:00:00Z"] {
        let page = client.get(&format!("/tsq?since={since}&until=2999-01-01")).await;
        assert_eq!(page.status, StatusCode::OK, "{since}");
    }
    for (bad, says) in [
        ("/tsq?type=Payment", "choose the domain too"),
        ("/tsq?after=garbage", "malformed"),
        ("/tsq?domain=no%20spaces", "domain"),
        ("/query?status=LOST", "LOST"),
        ("/query?correlation=42", "not a correlation id"),
        ("/commands/payments/not-a-uuid", "not a command id"),
    ] {
        let page = client.get(bad).await;
        assert!(page.status.is_client_error(), "{bad}: {}", page.status);
        assert!(page.body.contains(says), "{bad}: {}", page.body);
    }
    let query = client.get("/query?status=IN_TROUBLESHOOTING_QUEUE&status=PENDING&domain=payments&type=Payment&from=2000-01-01&until=2999-01-01").await.body;
    let next = query.split("id=\"next\" href=\"").nth(1).and_then(|r| r.split('"').next());
    let second = client.get(&next.expect("a next page").replace("&amp;", "&")).await.body;
    assert!(second.contains(&pending.to_string()) || query.contains(&pending.to_string()));
    assert!(client.get("/query?domain=nothing-here").await.body.contains("No command matches"));

    // Bulk forms that make no sense are refused before anything happens.
    for (fields, says) in [
        (vec![("do", "retry:selected")], "no item is selected"),
        (vec![("do", "explode:selected"), ("id", "payments/x")], "unknown action"),
        (vec![("do", "retry:everything")], "unknown scope"),
        (vec![("do", "retry")], "names no action"),
        (vec![("do", "retry:selected"), ("id", "payments/not-a-uuid")], "is not a command"),
    ] {
        let page = client.post("/tsq/preview", &fields, Csrf::Right).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(page.body.contains(says), "{fields:?}: {}", page.body);
    }
    let item = format!("payments/{}", ids[0]);
    let complete = [("do", "complete:selected"), ("id", item.as_str())];
    let preview = client.post("/tsq/preview", &complete, Csrf::Right).await.body;
    assert!(preview.contains("name=\"result\""), "{preview}");
    let mut not_json = complete.to_vec();
    not_json.push(("result", "{oops"));
    let refused = client.post("/tsq/act", &not_json, Csrf::Right).await;
    assert!(refused.body.contains("the result is not JSON"), "{}", refused.body);
    let mut wrong = complete.to_vec();
    wrong.push(("result", "{\"x\": 1}"));
    let per_item = client.post("/tsq/act", &wrong, Csrf::Right).await.body;
    assert!(
        per_item.contains("0 of 1 item(s)") && per_item.contains("does not match"),
        "{per_item}"
    );
    let mut right = complete.to_vec();
    right.push(("result", "null"));
    assert!(client.post("/tsq/act", &right, Csrf::Right).await.body.contains("1 of 1 item(s)"));
    let all = [("do", "complete:filter"), ("domain", "payments"), ("result", "null")];
    let done = client.post("/tsq/act", &all, Csrf::Right).await.body;
    assert!(done.contains("51 of 51 item(s): complete done"), "{done}");

    // One command's page: a pending one is canceled before it starts.
    let page = format!("/commands/payments/{pending}");
    let shown = client.get(&page).await.body;
    assert!(shown.contains("Cancel before it starts") && shown.contains("No reply yet"), "{shown}");
    let act = format!("{page}/act");
    for (fields, says) in [
        (vec![("action", "cancel_pending")], "needs a reason"),
        (vec![("action", "complete"), ("result", "{")], "not JSON"),
        (vec![("action", "fly")], "unknown action"),
    ] {
        let refused = client.post(&act, &fields, Csrf::Right).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(refused.body.contains(says), "{fields:?}: {}", refused.body);
    }
    let fields = [("action", "cancel_pending"), ("reason", "duplicate")];
    let canceled = client.post(&act, &fields, Csrf::Right).await;
    assert_eq!(canceled.status, StatusCode::SEE_OTHER);
    assert_eq!(bus.command::<Payment>(pending).await.expect("cmd").status, CommandStatus::Canceled);

    // The editor: not JSON, no change, and a command no longer in the TSQ.
    let edit = format!("/commands/payments/{}/edit", ids[0]);
    let form = client.get(&edit).await.body;
    assert!(form.contains("Payload schema"), "{form}");
    let not_json = client.post(&edit, &[("payload", "{"), ("step", "save")], Csrf::Right).await;
    assert!(not_json.body.contains("The payload is not JSON"), "{}", not_json.body);
    let payload = "{\"account\": \"x\", \"amount\": 1}";
    let ended = client.post(&edit, &[("payload", payload), ("step", "check")], Csrf::Right).await;
    assert_eq!(ended.status, StatusCode::CONFLICT, "{}", ended.body);
    assert!(ended.body.contains("not in the troubleshooting queue"), "{}", ended.body);
}
