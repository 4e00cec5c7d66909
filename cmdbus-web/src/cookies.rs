//! The console's two cookies: the standalone session, and the CSRF token
//! every form carries back (double submit: a cross-site page can make the
//! browser send the cookie but cannot read it to fill in the form).

use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

pub(crate) const SESSION: &str = "cmdbus_session";
pub(crate) const CSRF: &str = "cmdbus_csrf";

/// The value of cookie `name` in a request's headers.
pub(crate) fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to the console's
/// path, Secure unless told otherwise (plain-HTTP development).
pub(crate) fn set(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    // Names and values are ours: hex tokens and fixed names.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A fresh random token (256 bits, hex).
pub(crate) fn token() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the form's CSRF field matches the cookie, in constant time.
pub(crate) fn csrf_matches(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(cookie), Some(field)) => bool::from(cookie.as_bytes().ct_eq(field.as_bytes())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; cmdbus_csrf=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("cmdbus_session="));
        assert_eq!(get(&headers, CSRF), Some("abc"));
        assert_eq!(get(&headers, SESSION), None);
        assert!(csrf_matches(Some("abc"), Some("abc")));
        assert!(!csrf_matches(Some("abc"), Some("abd")));
        assert!(!csrf_matches(None, Some("abc")));
        assert!(!csrf_matches(Some("abc"), None));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_unless_told() {
        let secure = set(SESSION, "t", "/ops", true, Some(60));
        assert_eq!(
            secure.to_str().expect("ascii"),
            "cmdbus_session=t; Path=/ops; HttpOnly; SameSite=Strict; Secure; Max-Age=60"
        );
        assert!(!set(CSRF, "t", "/", false, None).to_str().expect("ascii").contains("Secure"));
        assert_eq!(token().expect("random").len(), 64);
    }
}
