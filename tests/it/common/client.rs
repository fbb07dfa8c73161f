//! A typed call to a node's api, built then sent and checked in one expression:
//! `api.delete(url).as_(&admin).expect(204).await`,
//! `api.get(url).as_(&token).expect(200).await.body`,
//! `api.put(url).as_(&admin).body(json!(..)).expect_error(404, "NotFound").await`.
//! It sends what [`Api::call`] sends (a bearer token, a JSON body) and checks what
//! `assert_eq!(answer.status, ..)` and [`assert_error`] check; a failure names the method, the
//! url and the body it got.
//!
//! It owns only building, sending and checking one call; what a test expects of the answer
//! beyond its status and error stays in the test.

use reqwest::Method;
use serde_json::Value;

use super::{assert_error, Answer, Api};

/// One request to send: method, url, and what goes with it.
#[must_use = "a call does nothing until it is sent or expected"]
pub struct Call<'a> {
    api: &'a Api,
    method: Method,
    url: String,
    token: Option<String>,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

impl Api {
    /// A call of `method` to `url`, no token, no body.
    pub fn request(&self, method: Method, url: impl Into<String>) -> Call<'_> {
        Call {
            api: self,
            method,
            url: url.into(),
            token: None,
            query: Vec::new(),
            body: None,
        }
    }

    pub fn get(&self, url: impl Into<String>) -> Call<'_> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: impl Into<String>) -> Call<'_> {
        self.request(Method::POST, url)
    }

    pub fn put(&self, url: impl Into<String>) -> Call<'_> {
        self.request(Method::PUT, url)
    }

    pub fn patch(&self, url: impl Into<String>) -> Call<'_> {
        self.request(Method::PATCH, url)
    }

    pub fn delete(&self, url: impl Into<String>) -> Call<'_> {
        self.request(Method::DELETE, url)
    }
}

impl Call<'_> {
    /// Sent with `token` as its bearer.
    pub fn as_(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// With `pairs` added to the url's query string (encoded).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let added = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        self.query.extend(added);
        self
    }

    /// With `body` as its JSON body.
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// What a failure names: the method and the url, its query included.
    fn what(&self) -> String {
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match query.is_empty() {
            true => format!("{} {}", self.method, self.url),
            false => format!("{} {}?{}", self.method, self.url, query.join("&")),
        }
    }

    /// Sends it and returns the answer, whatever it is.
    pub async fn send(self) -> Answer {
        let mut request = self.api.http.request(self.method, self.url);
        if !self.query.is_empty() {
            request = request.query(&self.query);
        }
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = self.body {
            request = request.json(&body);
        }
        self.api.send(request).await
    }

    /// Sends it and checks that the answer has `status`.
    pub async fn expect(self, status: u16) -> Answer {
        let what = self.what();
        let answer = self.send().await;
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        answer
    }

    /// Sends it and checks that the answer is the contract's error `kind` with `status`
    /// (everything [`assert_error`] checks).
    pub async fn expect_error(self, status: u16, kind: &str) -> Answer {
        let what = self.what();
        let answer = self.send().await;
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        assert_eq!(answer.kind(), kind, "{what}: {}", answer.text);
        assert_error(&answer, status, kind);
        answer
    }
}
