//! The operator console in headless Chromium (Debian's chromium and
//! chromium-driver, installed by `make setup`), against a real PostgreSQL:
//! log in, filter the TSQ, preview and run a bulk retry, cancel with a
//! reason, edit a payload (a schema-violating edit refused with the field
//! named, a valid one stored and retried), read the audit timeline; a
//! viewer gets no buttons; a `<script>` payload is text. Its screenshots
//! are README's (`UPDATE_SCREENSHOTS=1` writes them to docs/screenshots).

#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;

use cmdbus::CommandStatus;
use cmdbus_web::Console;
use payments::{Payment, payments, run_worker, users, wait_status};
use webdriver::Browser;

#[path = "support/payments.rs"]
mod payments;

fn screenshot(name: &str) -> PathBuf {
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/screenshots"))
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/screenshots"))
    };
    dir.join(format!("{name}.png"))
}

/// Fills in and sends the login form the browser shows.
async fn log_in(browser: &Browser, name: &str) {
    browser.find("input[name=name]").await.fill(name).await;
    browser.find("input[name=password]").await.fill("s3cret").await;
    browser.find("button[type=submit]").await.submit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_triages_the_tsq_in_a_browser() {
    let bus = cmdbus_tests::pg_bus().await;
    let accounts =
        ["closed-1", "closed-2", "frozen-1", "frozen-2", "closed<script>alert(1)</script>", "ok-1"];
    let ids = payments(&bus, &accounts).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("port");
    let port = listener.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cmdbus_web::serve(
        listener,
        Console::standalone(bus.clone(), users()),
        async {
            let _ = stopped.await;
        },
    ));
    // Browsers treat http://localhost as a secure context: Secure cookies work.
    let site = format!("http://localhost:{port}");
    let browser = Browser::start().await;

    // Log in.
    browser.goto(&format!("{site}/tsq")).await;
    log_in(&browser, "ann").await;
    assert!(browser.text().await.contains("ann · operator"), "{}", browser.text().await);
    assert_eq!(browser.count("#health tbody tr").await, 1);
    browser.screenshot(&screenshot("overview")).await;

    // The TSQ, counted by error code; filter it to one code.
    browser.goto(&format!("{site}/tsq")).await;
    let counts = browser.find("#counts").await.text().await;
    assert!(counts.contains("account_closed") && counts.contains("account_frozen"), "{counts}");
    assert_eq!(browser.count("#items tbody tr").await, 5);
    browser.screenshot(&screenshot("tsq")).await;
    browser.find("input[name=code]").await.fill("account_frozen").await;
    browser.find("form.filters button[type=submit]").await.submit().await;
    assert_eq!(browser.count("#items tbody tr").await, 2);

    // Select both, preview the retry, confirm; each item reported.
    browser.find("#items tbody tr:nth-child(1) input[type=checkbox]").await.click().await;
    browser.find("#items tbody tr:nth-child(2) input[type=checkbox]").await.click().await;
    browser.find("button[value='retry:selected']").await.submit().await;
    let summary = browser.find("#preview-summary").await.text().await;
    assert!(summary.contains("retry 2 item(s)"), "{summary}");
    assert_eq!(browser.count("#preview tbody tr").await, 2);
    browser.screenshot(&screenshot("preview")).await;
    assert_eq!(
        bus.command::<Payment>(ids[2]).await.expect("cmd").status,
        CommandStatus::InTroubleshootingQueue,
        "a preview changes nothing"
    );
    browser.find("#confirm").await.submit().await;
    assert!(
        browser
            .find("#act-summary")
            .await
            .text()
            .await
            .contains("2 of 2 item(s): retry done, as ann")
    );
    for id in &ids[2..4] {
        wait_status(&bus, *id, CommandStatus::Pending).await;
    }

    // Cancel one with a reason.
    browser.goto(&format!("{site}/commands/payments/{}", ids[0])).await;
    browser.find("#cancel-reason").await.fill("customer closed the account on purpose").await;
    browser.find("#cancel").await.submit().await;
    assert!(browser.find("#status").await.text().await.contains("CANCELED"));
    assert!(
        browser
            .find("#audit")
            .await
            .text()
            .await
            .contains("customer closed the account on purpose")
    );

    // Edit a payload: a wrong type is refused with the field named; a valid one is stored and retried.
    browser.goto(&format!("{site}/commands/payments/{}", ids[1])).await;
    browser.find("#edit").await.submit().await;
    browser.find("#payload-editor").await.fill(r#"{ "account": 7, "amount": 25 }"#).await;
    browser.find("#save").await.submit().await;
    let problems = browser.find("#edit-problems").await.text().await;
    assert!(problems.contains("/account"), "{problems}");
    browser.screenshot(&screenshot("edit-refused")).await;
    assert_eq!(
        bus.command::<Payment>(ids[1]).await.expect("cmd").status,
        CommandStatus::InTroubleshootingQueue
    );
    browser.find("#payload-editor").await.fill(r#"{ "account": "open-2", "amount": 25 }"#).await;
    browser.find("#check").await.submit().await;
    assert!(browser.find("#edit-changes").await.text().await.contains("/account"));
    browser.find("#save").await.submit().await;
    assert!(browser.text().await.contains("Payload edited (1 field(s)) and retried."));
    let worker = run_worker(&bus).await;
    wait_status(&bus, ids[1], CommandStatus::Completed).await;
    worker.shutdown().await;
    browser.goto(&format!("{site}/commands/payments/{}", ids[1])).await;
    let audit = browser.find("#audit").await.text().await;
    assert!(audit.contains("OPERATOR_RETRY") && audit.contains("ann"), "{audit}");
    assert!(
        audit.contains("/account")
            && audit.contains("\"closed-2\"")
            && audit.contains("\"open-2\""),
        "{audit}"
    );
    assert!(browser.find("#payload").await.text().await.contains("open-2"));
    browser.screenshot(&screenshot("command")).await;

    // A payload holding a script is text on the page, not a script.
    browser.goto(&format!("{site}/commands/payments/{}", ids[4])).await;
    assert!(
        browser.find("#payload").await.text().await.contains("closed<script>alert(1)</script>")
    );
    assert_eq!(browser.count("script").await, 0);

    // A viewer sees the same pages without a single button that acts.
    browser.find("nav form button").await.submit().await;
    log_in(&browser, "vic").await;
    browser.goto(&format!("{site}/commands/payments/{}", ids[4])).await;
    assert!(browser.text().await.contains("vic · viewer"));
    assert_eq!(browser.count("#retry, #cancel, #edit").await, 0);
    browser.goto(&format!("{site}/tsq")).await;
    assert_eq!(browser.count("#items input[type=checkbox]").await, 0);

    browser.quit().await;
    let _ = stop.send(());
    server.await.expect("server task").expect("served");
}
