//! Which web pages may use this node's RPC (`gridnode --rpc-cors`, as Substrate's flag).
//!
//! A browser attaches an `Origin` header to every cross-site request, WebSocket upgrades
//! included. Without a check, any web page a node operator visits could drive the RPC on
//! 127.0.0.1 from the operator's browser (submit what it signs, read what the node serves, hold
//! subscriptions open): DNS-rebinding and cross-site WebSocket hijacking. So a request that
//! carries an `Origin` not in the allow-list is refused with 403 before any JSON is parsed;
//! requests without one (curl, the CLI, the agent, every non-browser client) pass. Allowed
//! origins get the CORS headers browsers need, and `OPTIONS` preflights are answered here.
//!
//! Patterns are `scheme://host[:port]`, where the port may be `*`; `all` allows any origin.
//! Default: `all` on development chains, otherwise `http://localhost:*`, `http://127.0.0.1:*`,
//! `https://localhost:*`, `https://127.0.0.1:*` and `https://polkadot.js.org`.

use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

/// The allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    All,
    Only(Arc<Vec<String>>),
}

impl Cors {
    /// `all`, or a comma-separated list of origin patterns.
    pub fn parse(text: &str) -> Result<Cors, String> {
        if text.trim() == "all" {
            return Ok(Cors::All);
        }
        let patterns: Vec<String> = text
            .split(',')
            .map(|p| p.trim().trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        for p in &patterns {
            if !(p.starts_with("http://") || p.starts_with("https://")) || p.contains(' ') {
                return Err(format!(
                    "invalid --rpc-cors origin {p:?}: expected scheme://host[:port|:*] or all"
                ));
            }
        }
        Ok(Cors::Only(Arc::new(patterns)))
    }

    /// See the module docs.
    pub fn default_for(development: bool) -> Cors {
        if development {
            return Cors::All;
        }
        Cors::Only(Arc::new(
            [
                "http://localhost:*",
                "http://127.0.0.1:*",
                "https://localhost:*",
                "https://127.0.0.1:*",
                "https://polkadot.js.org",
            ]
            .map(String::from)
            .to_vec(),
        ))
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Cors::All => true,
            Cors::Only(patterns) => patterns.iter().any(|p| matches(p, origin)),
        }
    }
}

fn matches(pattern: &str, origin: &str) -> bool {
    match pattern.strip_suffix(":*") {
        // `host:*` is the host on any port, or on its scheme's default port.
        Some(base) => {
            origin == base
                || origin
                    .strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    })
        }
        None => origin == pattern,
    }
}

/// The tower layer for jsonrpsee's HTTP middleware.
#[derive(Clone)]
pub struct OriginLayer(pub Cors);

impl<S> tower::Layer<S> for OriginLayer {
    type Service = OriginFilter<S>;
    fn layer(&self, inner: S) -> OriginFilter<S> {
        OriginFilter {
            inner,
            cors: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct OriginFilter<S> {
    inner: S,
    cors: Cors,
}

fn respond(status: u16, body: &'static str) -> HttpResponse {
    HttpResponse::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(HttpBody::from(body))
        .unwrap_or_default()
}

impl<S, B> tower::Service<HttpRequest<B>> for OriginFilter<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        let origin = match request.headers().get("origin").map(|o| o.to_str()) {
            None => None,
            Some(Ok(o)) => Some(o.to_string()),
            Some(Err(_)) => return Box::pin(async { Ok(respond(403, "invalid Origin header\n")) }),
        };
        let Some(origin) = origin else {
            let call = self.inner.call(request);
            return Box::pin(async move { call.await.map_err(Into::into) });
        };
        if !self.cors.allows(&origin) {
            return Box::pin(async { Ok(respond(403, "origin not allowed (see --rpc-cors)\n")) });
        }
        let value = http::HeaderValue::from_str(&origin).ok();
        if request.method() == http::Method::OPTIONS {
            let mut response = respond(204, "");
            let headers = response.headers_mut();
            if let Some(v) = value {
                headers.insert("access-control-allow-origin", v);
            }
            headers.insert(
                "access-control-allow-methods",
                http::HeaderValue::from_static("POST, GET, OPTIONS"),
            );
            headers.insert(
                "access-control-allow-headers",
                http::HeaderValue::from_static("content-type"),
            );
            return Box::pin(async { Ok(response) });
        }
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut response = call.await.map_err(Into::into)?;
            if let Some(v) = value {
                response
                    .headers_mut()
                    .insert("access-control-allow-origin", v);
                response
                    .headers_mut()
                    .insert("vary", http::HeaderValue::from_static("origin"));
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let cors = Cors::default_for(false);
        assert!(cors.allows("http://localhost:3000"));
        assert!(cors.allows("http://127.0.0.1:9944"));
        assert!(cors.allows("http://localhost"));
        assert!(cors.allows("https://polkadot.js.org"));
        assert!(!cors.allows("https://evil.example"));
        assert!(!cors.allows("http://localhost.evil.example"));
        assert!(!cors.allows("http://localhost:3000.evil.example"));
        assert!(!cors.allows("http://127.0.0.1:"));
        assert!(!cors.allows("null"));
        assert!(Cors::default_for(true).allows("https://evil.example"));
        assert_eq!(Cors::parse("all"), Ok(Cors::All));
        let only = Cors::parse("https://a.example, http://b.example:*/").unwrap();
        assert!(only.allows("https://a.example"));
        assert!(only.allows("http://b.example:81"));
        assert!(!only.allows("https://a.example:444"));
        assert!(Cors::parse("a.example").is_err());
    }
}
