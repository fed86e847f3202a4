//! Headless Chromium driven over the DevTools protocol: a page a test can type into, click
//! and read, as a person would use it. Dialogs (`prompt`, `alert`) are answered with the text
//! the test sets; everything waits with a deadline, never forever.

use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";
const DEADLINE: Duration = Duration::from_secs(30);

/// Debian's Chromium, which `scripts/test` installs.
pub fn chromium() -> &'static str {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run through scripts/test, which installs Debian's chromium"
    );
    CHROMIUM
}

/// One browser with one page.
pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    session: String,
    next: u64,
    /// What a `prompt` is answered with (`None`: dismissed).
    pub prompt_answer: Option<String>,
    /// The messages of the dialogs the page opened.
    pub dialogs: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and opens `url` in a 1280×900 page.
    pub fn open(url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        // Chromium writes its port and the browser's endpoint once it listens.
        let file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + DEADLINE;
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.to_owned(), path.to_owned());
                }
            }
            assert!(Instant::now() < deadline, "chromium did not listen");
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .unwrap_or_else(|e| panic!("the DevTools endpoint: {e}"));
        let mut browser = Self {
            child,
            ws,
            session: String::new(),
            next: 0,
            prompt_answer: None,
            dialogs: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser.call("Page.navigate", json!({"url": url}));
        browser
    }

    /// Sends a command to the page (or to the browser before one is attached) and returns
    /// its result, answering dialogs that open meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        loop {
            let reply = self.receive(method);
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    panic!("{method}: {error}");
                }
                return reply["result"].clone();
            }
            if reply.get("id").is_some() {
                continue; // the reply to a dialog's answer
            }
            // Other events are not needed by the tests.
            if reply["method"] == "Page.javascriptDialogOpening" {
                self.answer_dialog(&reply["params"]);
            }
        }
    }

    fn receive(&mut self, waiting_for: &str) -> Value {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => return serde_json::from_str(text.as_str()).unwrap(),
                Ok(_) => {}
                Err(e) => panic!("waiting for {waiting_for}: {e}"),
            }
        }
    }

    fn answer_dialog(&mut self, dialog: &Value) {
        self.dialogs
            .push(dialog["message"].as_str().unwrap_or_default().to_owned());
        self.next += 1;
        let mut params = json!({"accept": self.prompt_answer.is_some()});
        if let Some(text) = &self.prompt_answer {
            params["promptText"] = json!(text);
        }
        let message = json!({
            "id": self.next,
            "method": "Page.handleJavaScriptDialog",
            "params": params,
            "sessionId": self.session,
        });
        self.ws.send(Message::text(message.to_string())).unwrap();
    }

    /// The value of a JavaScript expression (awaited when it is a promise).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until the console's page says it is complete, and returns its `<main>`.
    pub fn ready(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let done = self.eval(
                "(() => { const m = document.getElementById('main'); \
                 return m && m.dataset.ready === '1' ? m.outerHTML : null; })()",
            );
            if let Some(html) = done.as_str() {
                return html.to_owned();
            }
            if Instant::now() >= deadline {
                let body = self.eval("document.body.outerHTML");
                panic!(
                    "the page did not finish (dialogs: {:?}): {body}",
                    self.dialogs
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Marks the current page as left, so that [`Browser::ready`] waits for the next one.
    pub fn leave(&mut self) {
        self.eval("delete document.getElementById('main').dataset.ready");
    }

    /// Clicks the middle of the element `selector` names, with the mouse.
    pub fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            json!(selector)
        ));
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            panic!("nothing to click at {selector}");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Types `text` where the focus is.
    pub fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Presses Enter.
    pub fn enter(&mut self) {
        for kind in ["keyDown", "keyUp"] {
            let mut key = json!({"type": kind, "key": "Enter", "code": "Enter",
                                 "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13});
            if kind == "keyDown" {
                key["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", key);
        }
    }

    /// Saves a PNG of the whole page (beyond the window's height) to `file`.
    pub fn screenshot(&mut self, file: &Path) {
        use base64::Engine as _;
        let size = self.call("Page.getLayoutMetrics", json!({}))["cssContentSize"].clone();
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true, "clip": {
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(file, png).unwrap();
    }

    /// The page's address.
    pub fn location(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
