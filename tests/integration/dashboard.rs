//! The dashboard end to end: its auth rules over plain HTTP, and a real headless
//! Chromium (driven through chromedriver with the W3C WebDriver protocol, spoken
//! directly as HTTP + JSON) logging in, watching a deploy's log grow without a reload,
//! and rolling back with a click.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::browser::{Browser, Chromedriver, have_chromedriver};
use crate::support::*;
use serde_json::json;

#[actix_web::test]
async fn login_cookie_csrf_and_escaping_over_plain_http() {
    let b = Harness::builder();
    git(b.repo(), &["tag", "v1.2.3"]);
    let server = b.without_runner().start().await;
    let url = server.url.clone();
    let session = session_value();
    let csrf = csrf_value();

    // Without a cookie: the login form, 401 from the API, 303 from deeper pages.
    let home = dashboard_request("GET", &format!("{url}/"), None, &[], None).await;
    assert_eq!(home.status, 200);
    assert!(
        home.text.contains(r#"action="/login""#) && home.text.contains(r#"name="token""#),
        "{}",
        home.text
    );
    let api = dashboard_request("GET", &format!("{url}/api/apps"), None, &[], None).await;
    assert_eq!(api.status, 401, "{}", api.text);
    for page in ["/deploys/1", "/environments/shop/staging"] {
        let answer = dashboard_request("GET", &format!("{url}{page}"), None, &[], None).await;
        assert_eq!(
            (answer.status, answer.header("location")),
            (303, "/".into())
        );
    }
    let stale = dashboard_request("GET", &format!("{url}/api/apps"), Some("00"), &[], None).await;
    assert_eq!(stale.status, 401, "{}", stale.text);

    // Logging in: a wrong token re-renders the form with 401; the right one sets the
    // derived cookie (never the token itself).
    let wrong = dashboard_request(
        "POST",
        &format!("{url}/login"),
        None,
        &[],
        Some("token=nope"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("not the API token"), "{}", wrong.text);
    assert!(wrong.header("set-cookie").is_empty());
    let form = format!("token={TOKEN}");
    let login = dashboard_request("POST", &format!("{url}/login"), None, &[], Some(&form)).await;
    assert_eq!((login.status, login.header("location")), (303, "/".into()));
    assert_eq!(
        login.header("set-cookie"),
        format!("stagehand_session={session}; HttpOnly; SameSite=Strict; Path=/")
    );
    assert!(!login.header("set-cookie").contains(TOKEN));

    // Logged in: the overview, with a CSRF token in every form and strict headers.
    let home = dashboard_request("GET", &format!("{url}/"), Some(&session), &[], None).await;
    assert_eq!(home.status, 200);
    assert!(
        home.text.contains(r#"data-environment="staging""#),
        "{}",
        home.text
    );
    assert!(
        home.text
            .contains(&format!(r#"name="csrf" value="{csrf}""#)),
        "{}",
        home.text
    );
    assert!(
        home.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(home.header("x-frame-options"), "DENY");
    assert_eq!(home.header("cache-control"), "no-store");
    let api = dashboard_request("GET", &format!("{url}/api/apps"), Some(&session), &[], None).await;
    assert_eq!(api.status, 200, "{}", api.text);

    // Dashboard posts: the cookie alone is not enough, the CSRF field must match.
    let deploy = format!("{url}/environments/shop/staging/deploy");
    for form in ["", "csrf=", "csrf=0123abcd"] {
        let answer = dashboard_request("POST", &deploy, Some(&session), &[], Some(form)).await;
        assert_eq!(answer.status, 403, "{form:?}: {}", answer.text);
        assert!(answer.text.contains("CSRF"), "{}", answer.text);
    }
    let with_csrf = format!("csrf={csrf}");
    let answer = dashboard_request("POST", &deploy, None, &[], Some(&with_csrf)).await;
    assert_eq!(
        (answer.status, answer.header("location")),
        (303, "/".into())
    );
    let answer = dashboard_request("POST", &deploy, Some(&session), &[], Some(&with_csrf)).await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    let location = answer.header("location");
    let id = location.strip_prefix("/deploys/").unwrap().to_owned();
    let (_, made) = server.get(&format!("/api/deploys/{id}")).await;
    assert_eq!(
        (&made["trigger"], &made["ref"], &made["status"]),
        (
            &json!("manual"),
            &json!("refs/heads/develop"),
            &json!("queued")
        )
    );
    // The same rule on the JSON API: a write by cookie needs X-CSRF-Token; by bearer not.
    let api_deploy = format!("{url}/api/apps/shop/environments/staging/deploy");
    let answer = dashboard_request("POST", &api_deploy, Some(&session), &[], None).await;
    assert_eq!(answer.status, 403, "{}", answer.text);
    let header = [("X-CSRF-Token", csrf.as_str())];
    let answer = dashboard_request("POST", &api_deploy, Some(&session), &header, None).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let bearer = format!("Bearer {TOKEN}");
    let answer = dashboard_request(
        "POST",
        &api_deploy,
        None,
        &[("Authorization", bearer.as_str())],
        None,
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    // A tag-following environment asks for its tag instead of failing on a click.
    let tags = dashboard_request(
        "POST",
        &format!("{url}/environments/shop/releases/deploy"),
        Some(&session),
        &[],
        Some(&format!("csrf={csrf}&ref=v1.2.3")),
    )
    .await;
    assert_eq!(tags.status, 303, "{}", tags.text);
    assert!(home.text.contains(r#"name="ref""#), "{}", home.text);
    // A tag the repository does not have is refused there and then (issue 16 item 7).
    let missing = dashboard_request(
        "POST",
        &format!("{url}/environments/shop/releases/deploy"),
        Some(&session),
        &[],
        Some(&format!("csrf={csrf}&ref=v9.9.9")),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(
        missing.text.contains("no branch, tag or commit"),
        "{}",
        missing.text
    );

    // Branch names are attacker-controlled: a temporary environment made from one
    // shows it escaped, on the overview and on the deploy page.
    let branch = "feature/<b>bold&\"onmouseover=\"alert(1)";
    let mut body = sample("push.json");
    body["ref"] = json!(format!("refs/heads/{branch}"));
    let (status, pushed) = server.send(&Delivery::json("push", &body)).await;
    assert_eq!(status, 202, "{pushed}");
    let home = dashboard_request("GET", &format!("{url}/"), Some(&session), &[], None).await;
    assert!(
        home.text
            .contains("&lt;b&gt;bold&amp;&quot;onmouseover=&quot;"),
        "{}",
        home.text
    );
    assert!(!home.text.contains("<b>bold"), "{}", home.text);
    assert!(home.text.contains(">temporary<"), "{}", home.text);
    let id = pushed["deploy"]["id"].as_str().unwrap();
    let page = dashboard_request(
        "GET",
        &format!("{url}/deploys/{id}"),
        Some(&session),
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("&lt;b&gt;bold"), "{}", page.text);
    assert!(!page.text.contains("<b>bold"), "{}", page.text);

    // The environment's history links each deploy; unknown things are 404 pages.
    let history = dashboard_request(
        "GET",
        &format!("{url}/environments/shop/staging"),
        Some(&session),
        &[],
        None,
    )
    .await;
    assert_eq!(history.status, 200);
    assert!(
        history.text.contains(&format!(r#"href="{location}""#)),
        "{}",
        history.text
    );
    for missing in [
        "/deploys/999",
        "/deploys/x",
        "/environments/shop/nope",
        "/environments/nope/staging",
    ] {
        let answer =
            dashboard_request("GET", &format!("{url}{missing}"), Some(&session), &[], None).await;
        assert_eq!(answer.status, 404, "{missing}");
        assert!(
            answer.header("content-type").starts_with("text/html"),
            "{missing}"
        );
    }

    // Logging out needs the CSRF token too, and clears the cookie.
    let out = dashboard_request(
        "POST",
        &format!("{url}/logout"),
        Some(&session),
        &[],
        Some(""),
    )
    .await;
    assert_eq!(out.status, 403);
    let out = dashboard_request(
        "POST",
        &format!("{url}/logout"),
        Some(&session),
        &[],
        Some(&with_csrf),
    )
    .await;
    assert_eq!(out.status, 303);
    assert!(
        out.header("set-cookie").starts_with("stagehand_session=;"),
        "{}",
        out.header("set-cookie")
    );
    assert!(out.header("set-cookie").contains("Max-Age=0"));

    // /hooks, /healthz and /metrics are untouched.
    let (status, _, text) = server.get_with("/healthz", None).await;
    assert_eq!((status, text.as_str()), (200, "ok"));
    server.stop().await;
}

#[actix_web::test]
async fn the_cookie_is_secure_behind_https() {
    let b = Harness::builder();
    let toml = config_toml(b.dir()).replace(
        "[server]\n",
        "[server]\npublic_url = \"https://deploy.example.com\"\n",
    );
    let server = b.toml(&toml).without_runner().start().await;
    let form = format!("token={TOKEN}");
    let login = dashboard_request(
        "POST",
        &format!("{}/login", server.url),
        None,
        &[],
        Some(&form),
    )
    .await;
    assert_eq!(login.status, 303);
    assert!(
        // Attribute order is the `cookie` crate's (Secure before Path); where it sits
        // does not matter to a browser, that it is an attribute does.
        login
            .header("set-cookie")
            .split("; ")
            .any(|a| a == "Secure"),
        "{}",
        login.header("set-cookie")
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------
// The browser.

fn browser_toml(dir: &Path, repo: &Path) -> String {
    shop_toml(dir, repo, FIRST_THEN_SECOND)
}

fn live(root: &Path) -> String {
    std::fs::read_link(root.join("staging/current"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

const LOG_TEXT: &str = "return document.getElementById('log').textContent;";
const STATUS_TEXT: &str = "return document.getElementById('status').textContent;";

#[actix_web::test]
async fn a_browser_logs_in_watches_a_deploy_live_and_rolls_back() {
    if !have_chromedriver() {
        return;
    }
    let b = Harness::builder();
    let repo = b.repo().to_owned();
    let root = b.root();
    let marker = root.join("staging/shared/second-written");
    let full = b.config(browser_toml).start().await;
    let api = full.client();
    let url = api.url.clone();

    let driver = Chromedriver::start().await;
    let browser = Browser::open(&driver).await;

    // Log in through the form.
    browser.log_in(&url).await;
    let table = browser
        .wait_for(
            "the environments table",
            "const t = document.querySelector('table.environments'); return t && t.innerText;",
            20,
        )
        .await;
    assert!(table.as_str().unwrap().contains("staging"), "{table}");
    let row = browser.text("tr[data-environment=staging]").await;
    assert!(row.contains("never deployed"));

    // Push, open the deploy page while it runs, and watch the log grow.
    let sha = git(&repo, &["rev-parse", "develop"]);
    let (status, answer) = api.push(&push_body("refs/heads/develop", &sha)).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["deploy"]["id"].as_str().unwrap().to_owned();
    browser.goto(&format!("{url}/deploys/{id}")).await;
    browser.run("window.__marker = 1;").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = browser.run(LOG_TEXT).await;
        if log.as_str().unwrap().contains("out  first") {
            let (_, deploy) = api.get(&format!("/api/deploys/{id}")).await;
            assert!(
                !marker.exists(),
                "`first` showed only after `second` was written"
            );
            assert_eq!(deploy["status"], "running", "{deploy}");
            break;
        }
        assert!(Instant::now() < deadline, "`first` never showed: {log}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    browser
        .wait_for(
            "`second` and the final status",
            "return document.getElementById('log').textContent.includes('out  second') \
             && document.getElementById('status').textContent === 'succeeded';",
            60,
        )
        .await;
    assert_eq!(
        browser.run("return window.__marker;").await,
        1,
        "the page was reloaded"
    );
    // Every line exactly once: the rendered lines plus the streamed ones are the file.
    let shown = browser.run(LOG_TEXT).await;
    assert_eq!(shown.as_str().unwrap(), api.log(&json!(id)).await);
    let build = browser
        .run("return document.querySelector('#stages tr[data-stage=build] .badge').textContent;")
        .await;
    assert_eq!(build, "succeeded");
    // The row updated live shows the server's text for its duration, as a rendered row
    // does: the page has no duration formatter of its own.
    let (_, deploy) = api.get(&format!("/api/deploys/{id}")).await;
    let build_ms = deploy["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["name"] == "build"))
        .and_then(|s| s["duration_ms"].as_i64())
        .unwrap_or_else(|| panic!("no build duration in {deploy}"));
    let shown = browser
        .run("return document.querySelector('#stages tr[data-stage=build] .duration').textContent;")
        .await;
    assert_eq!(
        shown,
        stagehand::core::duration::format_elapsed(build_ms).as_str()
    );
    let first_release = live(&root);
    // Fields the events do not carry are refreshed from the API without a reload.
    let script = format!(
        "return document.querySelector('dd[data-field=release]').textContent === '{first_release}';"
    );
    browser.wait_for("the release field", &script, 10).await;

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot of the deploy page: {}", shot.display());

    // The event stream honours ?after=N with the cookie alone (what the page uses).
    let events = dashboard_request(
        "GET",
        &format!("{url}/api/deploys/{id}/events?after=2"),
        Some(&session_value()),
        &[],
        None,
    )
    .await;
    assert_eq!(events.status, 200);
    let first_id = events.text.lines().find_map(|l| l.strip_prefix("id: "));
    assert_eq!(first_id, Some("3"), "{}", events.text);

    // A second release, then Rollback from the overview: back to the first one.
    git(&repo, &["checkout", "-q", "develop"]);
    let second = commit(&repo, "Second release", &[("index.html", "<h1>v2</h1>\n")]);
    let (_, answer) = api.push(&push_body("refs/heads/develop", &second)).await;
    let deploy = api.wait(&answer["deploy"]["id"], 60).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}");
    assert_ne!(live(&root), first_release);
    browser.goto(&format!("{url}/")).await;
    browser
        .click("form[action='/environments/shop/staging/rollback'] button")
        .await;
    browser.accept_alert().await;
    browser
        .wait_for(
            "the rollback's page to say succeeded",
            "return location.pathname.startsWith('/deploys/') \
             && document.getElementById('status').textContent === 'succeeded';",
            60,
        )
        .await;
    let trigger = browser
        .run("return document.querySelector('dl.fields').innerText;")
        .await;
    assert!(trigger.as_str().unwrap().contains("rollback"), "{trigger}");
    assert_eq!(live(&root), first_release);
    assert_eq!(browser.run(STATUS_TEXT).await, "succeeded");

    drop(browser);
    drop(driver);
    full.stop().await;
}

#[actix_web::test]
async fn promote_from_the_dashboard_puts_the_source_commit_live() {
    let s = Harness::builder()
        .app(
            r#"[apps.shop.environments.production]
branch = "main"
auto_deploy = false
[apps.shop.environments.staging]
branch = "develop"
"#,
        )
        .start()
        .await;
    let staged = s.push_and_wait("develop").await;
    assert_eq!(staged["status"], "succeeded", "{staged}");
    let (session, csrf) = (session_value(), csrf_value());
    let url = s.url.clone();

    let page = dashboard_request("GET", &format!("{url}/"), Some(&session), &[], None).await;
    assert!(
        page.text
            .contains(r#"action="/environments/shop/production/promote""#),
        "no promote form: {}",
        page.text
    );
    assert!(
        page.text.contains(r#"<option value="staging">"#),
        "{}",
        page.text
    );

    let promote = format!("{url}/environments/shop/production/promote");
    let refused =
        dashboard_request("POST", &promote, Some(&session), &[], Some("from=staging")).await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.text);
    let answer = dashboard_request(
        "POST",
        &promote,
        Some(&session),
        &[],
        Some(&format!("csrf={csrf}&from=staging")),
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    let id = answer
        .header("location")
        .strip_prefix("/deploys/")
        .unwrap()
        .to_owned();
    let promoted = s.wait(&json!(id), 60).await;
    assert_eq!(promoted["status"], "succeeded", "{promoted}");
    assert_eq!(promoted["trigger"], "promote");
    assert_eq!(
        s.revision("production"),
        staged["commit"].as_str().map(str::to_owned)
    );
    // Issue 16 items 6 and 7: the environment page says which deploy made the live
    // release, with its commit message and author.
    let page = dashboard_request(
        "GET",
        &format!("{url}/environments/shop/production"),
        Some(&session),
        &[],
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Live since"), "{}", page.text);
    assert!(page.text.contains(&format!("#{id}")), "{}", page.text);
    assert!(page.text.contains("by Ada"), "{}", page.text);
    s.stop().await;
}

/// How wide the page, the window, the table and its section are, and the tallest
/// "Last deploy" cell in lines of its own text, with and without a tag (issue 16 item 18).
const HOME_WIDTHS: &str = "
const cells = [...document.querySelectorAll('table.environments tbody tr td:nth-child(5)')];
const line = (c) => parseFloat(getComputedStyle(c).lineHeight) || 20;
const pad = (c) => parseFloat(getComputedStyle(c).paddingTop) + parseFloat(getComputedStyle(c).paddingBottom);
const lines = (c) => (c.getBoundingClientRect().height - pad(c)) / line(c);
const section = document.querySelector('section.app');
return { page: document.documentElement.scrollWidth, window: window.innerWidth,
         table: section.scrollWidth, room: section.clientWidth,
         lines: Math.max(...cells.map(lines)),
         untagged: Math.max(...cells.filter((c) => !c.querySelector('.tag')).map(lines)),
         cells: cells.length };";

/// Issue 16 item 18: at 1280 px the home fits the window and "Last deploy" keeps to
/// two lines, three with a tag (it took 4–5 when the table was 1300–1550 px wide); at 390 px (a phone)
/// the page itself does not scroll sideways, only the table within its section.
#[actix_web::test]
async fn the_home_fits_a_1280_px_window_and_a_phone() {
    if !have_chromedriver() {
        return;
    }
    let s = Harness::builder()
        .app(
            r#"[apps.shop.environments.production]
branch = "main"
auto_deploy = false
[apps.shop.environments.staging]
branch = "develop"
"#,
        )
        .start()
        .await;
    git(&s.repo, &["checkout", "-q", "develop"]);
    commit(
        &s.repo,
        "Make the checkout page remember the basket across sessions and devices",
        &[("basket.txt", "kept\n")],
    );
    let staged = s.push_and_wait("develop").await;
    assert_eq!(staged["status"], "succeeded", "{staged}");
    // A push to the manual environment: a skipped deploy and the "pending" tag, the
    // widest "Last deploy" cell there is.
    let pending = s.push_and_wait("main").await;
    assert_eq!(pending["status"], "skipped", "{pending}");
    let url = s.url.clone();

    let driver = Chromedriver::start().await;
    let browser = Browser::open(&driver).await;
    browser.log_in(&url).await;
    browser
        .wait_for(
            "the environments table",
            "return document.querySelector('table.environments .tag.pending') !== null;",
            20,
        )
        .await;

    let wide = browser.run(HOME_WIDTHS).await;
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-home-1280.png");
    std::fs::write(&shot, browser.screenshot().await).unwrap();
    assert_eq!(wide["cells"], 2, "{wide}");
    assert_eq!(wide["window"], 1280, "{wide}");
    assert!(
        wide["page"].as_f64() <= wide["window"].as_f64(),
        "the home overflows 1280 px: {wide}"
    );
    assert!(
        wide["table"].as_f64() <= wide["room"].as_f64(),
        "the table scrolls sideways at 1280 px: {wide}"
    );
    assert!(
        wide["untagged"].as_f64().is_some_and(|l| l < 2.5),
        "\"Last deploy\" wraps past two lines: {wide}"
    );
    assert!(
        wide["lines"].as_f64().is_some_and(|l| l < 3.5),
        "\"Last deploy\" with a tag wraps past three lines: {wide}"
    );

    browser.resize(390, 844).await;
    let narrow = browser.run(HOME_WIDTHS).await;
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-home-390.png");
    std::fs::write(&shot, browser.screenshot().await).unwrap();
    assert!(
        narrow["window"].as_f64().is_some_and(|w| w <= 500.0),
        "{narrow}"
    );
    assert!(
        narrow["page"].as_f64() <= narrow["window"].as_f64(),
        "the home overflows a phone: {narrow}"
    );

    drop(browser);
    drop(driver);
    s.stop().await;
}

#[actix_web::test]
async fn a_preview_is_pinned_and_unpinned_from_the_dashboard() {
    let s = Harness::builder()
        .app(
            r#"[apps.shop.environments.preview]
branch = "feature/*"
expire_after = "7d"
"#,
        )
        .start()
        .await;
    git(&s.repo, &["checkout", "-q", "-b", "feature/New_Cart!"]);
    commit(&s.repo, "preview", &[("cart.txt", "1")]);
    assert_eq!(
        s.push_and_wait("feature/New_Cart!").await["status"],
        "succeeded"
    );
    let (session, csrf) = (session_value(), csrf_value());
    let url = s.url.clone();
    let base = "/environments/shop/preview-feature-new-cart";
    let pinned = || async {
        let (_, apps) = s.get("/api/apps").await;
        apps["apps"][0]["environments"][0]["pinned"].clone()
    };

    let page = dashboard_request("GET", &format!("{url}/"), Some(&session), &[], None).await;
    assert!(
        page.text.contains(&format!(r#"action="{base}/pin""#)),
        "{}",
        page.text
    );
    let refused = dashboard_request(
        "POST",
        &format!("{url}{base}/pin"),
        Some(&session),
        &[],
        Some(""),
    )
    .await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.text);
    assert_eq!(pinned().await, json!(false));

    let form = format!("csrf={csrf}");
    let answer = dashboard_request(
        "POST",
        &format!("{url}{base}/pin"),
        Some(&session),
        &[],
        Some(&form),
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    assert_eq!(pinned().await, json!(true));
    let page = dashboard_request("GET", &format!("{url}/"), Some(&session), &[], None).await;
    assert!(
        page.text.contains(&format!(r#"action="{base}/unpin""#)),
        "{}",
        page.text
    );

    let answer = dashboard_request(
        "POST",
        &format!("{url}{base}/unpin"),
        Some(&session),
        &[],
        Some(&form),
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    assert_eq!(pinned().await, json!(false));
    s.stop().await;
}
