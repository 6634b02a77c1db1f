//! What the SSO routes read of a request and how they answer, the same for the local host (axum)
//! and Lambda (API Gateway): query and form parameters, cookies, the Bearer token and client
//! credentials; redirects, JSON and HTML answers with the cookie attributes of
//! docs/protocol/decisions.md §19 (`HttpOnly`, `Secure` except on loopback, `SameSite=Lax`).

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

/// One request, as every host hands it over.
pub struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The query's parameters; a parameter given twice is refused by [`Params::one`].
    pub fn query(&self) -> Params {
        Params::parse(self.query.as_bytes())
    }

    /// The form body's parameters (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Params {
        Params::parse(self.body)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }

    pub fn bearer(&self) -> Option<String> {
        let v = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    }

    /// HTTP Basic client credentials (`client_secret_basic`: both parts form-URL-encoded, RFC
    /// 6749 §2.3.1): `Ok(None)` without a Basic `Authorization` header, `Err` when one is sent
    /// that does not decode (a failed authentication, never a reason to look elsewhere).
    pub fn basic(&self) -> Result<Option<(String, String)>, MalformedBasic> {
        let Some(v) = self.headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let Some((scheme, b64)) = v.to_str().ok().and_then(|v| v.split_once(' ')) else {
            return Ok(None);
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Ok(None);
        }
        let decode = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let raw = String::from_utf8(STANDARD.decode(b64.trim()).map_err(|_| MalformedBasic)?)
            .map_err(|_| MalformedBasic)?;
        let (id, secret) = raw.split_once(':').ok_or(MalformedBasic)?;
        match (decode(id), decode(secret)) {
            (Some(id), Some(secret)) => Ok(Some((id, secret))),
            _ => Err(MalformedBasic),
        }
    }
}

/// A Basic `Authorization` header that does not decode.
#[derive(Debug, PartialEq, Eq)]
pub struct MalformedBasic;

/// URL-encoded parameters.
pub struct Params(HashMap<String, Vec<String>>);

impl Params {
    fn parse(bytes: &[u8]) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Self(map)
    }

    /// The parameter's value: `Ok(None)` when absent or empty, `Err` when repeated (OAuth 2.0:
    /// "parameters MUST NOT be included more than once").
    pub fn one(&self, name: &str) -> Result<Option<&str>, String> {
        match self.0.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([v]) => Ok(Some(v.as_str()).filter(|v| !v.is_empty())),
            Some(_) => Err(format!("{name} is given more than once")),
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(header::HeaderName, String)>,
    pub body: String,
}

impl Answer {
    fn new(status: StatusCode, content_type: &str, body: String) -> Self {
        Self {
            status,
            headers: vec![
                (header::CONTENT_TYPE, content_type.to_owned()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            body,
        }
    }

    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }

    /// A public, cacheable JSON document (discovery, JWKS).
    pub fn public_json(body: &serde_json::Value, max_age: u32) -> Self {
        let mut a = Self::json(StatusCode::OK, body);
        a.headers.retain(|(h, _)| h != header::CACHE_CONTROL);
        a.headers
            .push((header::CACHE_CONTROL, format!("public, max-age={max_age}")));
        a
    }

    /// An HTML page, never framed (clickjacking).
    pub fn html(status: StatusCode, body: String) -> Self {
        let mut a = Self::new(status, "text/html; charset=utf-8", body);
        a.headers.push((header::X_FRAME_OPTIONS, "DENY".to_owned()));
        a.headers.push((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
                .to_owned(),
        ));
        a
    }

    pub fn redirect(location: &str) -> Self {
        let mut a = Self::new(
            StatusCode::FOUND,
            "text/plain; charset=utf-8",
            String::new(),
        );
        a.headers.push((header::LOCATION, location.to_owned()));
        a
    }

    /// An OAuth 2.0 error (RFC 6749 §5.2).
    pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({"error": error, "error_description": description}),
        )
    }

    pub fn with_cookie(mut self, cookie: String) -> Self {
        self.headers.push((header::SET_COOKIE, cookie));
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The answer as an `http::Response`; a header value that cannot be one is dropped and logged
    /// (values come from our own settings and encodings).
    pub fn into_http<B: From<String>>(self) -> http::Response<B> {
        let mut resp = http::Response::new(B::from(self.body));
        *resp.status_mut() = self.status;
        for (name, value) in self.headers {
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    resp.headers_mut().append(name, v);
                }
                Err(_) => tracing::error!(header = %name, "header value not sendable; dropped"),
            }
        }
        resp
    }
}

/// A cookie's attributes.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// `Secure`: on, except when the issuer is a loopback `http://` host.
    pub secure: bool,
}

impl CookiePolicy {
    /// `name=value` with `HttpOnly; SameSite=Lax; Path=/` (and `Secure`), for `max_age` seconds.
    pub fn set(&self, name: &str, value: &str, max_age: i64) -> String {
        format!(
            "{name}={value}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax{}",
            max_age.max(0),
            if self.secure { "; Secure" } else { "" }
        )
    }

    pub fn clear(&self, name: &str) -> String {
        self.set(name, "", 0)
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A plain page: a title and a paragraph (escaped).
pub fn page(status: StatusCode, title: &str, text: &str) -> Answer {
    Answer::html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body><h1 id=\"title\">{t}</h1><p id=\"message\">{m}</p></body></html>",
            t = escape(title),
            m = escape(text)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_bearer_basic_and_repeated_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kg_sso=xyz; b=2"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("my%20app:s%3Acret")))
                .unwrap(),
        );
        let req = Request {
            method: &Method::GET,
            path: "/",
            query: "a=1&b=&c=1&c=2",
            headers: &headers,
            body: b"",
        };
        assert_eq!(req.cookie("kg_sso").as_deref(), Some("xyz"));
        assert_eq!(req.cookie("kg"), None);
        assert_eq!(req.basic(), Ok(Some(("my app".into(), "s:cret".into()))));
        for (value, expected) in [
            ("Basic !!!", Err(MalformedBasic)),
            ("Basic bm8tY29sb24=", Err(MalformedBasic)),
            ("Bearer abc", Ok(None)),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            let r = Request {
                method: &Method::POST,
                path: "/",
                query: "",
                headers: &h,
                body: b"",
            };
            assert_eq!(r.basic(), expected, "{value}");
        }
        assert_eq!(req.bearer(), None);
        let q = req.query();
        assert_eq!(q.one("a"), Ok(Some("1")));
        assert_eq!(q.one("b"), Ok(None));
        assert!(q.one("c").is_err());
        let secure = CookiePolicy { secure: true }.set("kg_sso", "v", 60);
        assert_eq!(
            secure,
            "kg_sso=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(
            !CookiePolicy { secure: false }
                .set("k", "v", 1)
                .contains("Secure")
        );
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
