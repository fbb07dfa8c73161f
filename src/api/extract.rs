//! Extractors that answer in the contract's error format: JSON bodies, path and query
//! parameters, and the caller's credentials.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;

use super::audit_trail::RequestTrail;
use super::{ApiError, ApiState};
use crate::iam::{Caller, IamError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "RSession";

/// A JSON body; a bad one is a 400 (413 when too large, 415 when not JSON).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// How the caller presented its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    Bearer,
    Cookie,
}

/// The caller's token: `Authorization: Bearer`, else the `RSession` cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<(String, Presented)> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or_default();
        return Some((token.trim().to_string(), Presented::Bearer));
    }
    let jar = CookieJar::from_headers(headers);
    jar.get(SESSION_COOKIE)
        .map(|cookie| (cookie.value().to_string(), Presented::Cookie))
}

fn required_token(parts: &Parts) -> Result<(String, Presented), IamError> {
    match presented_token(&parts.headers) {
        Some((token, presented)) if !token.is_empty() => Ok((token, presented)),
        _ => Err(IamError::MissingCredentials),
    }
}

/// An authenticated caller, with how it presented its token.
pub struct Authenticated {
    pub caller: Caller,
    pub presented: Presented,
}

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let (token, presented) = required_token(parts)?;
        if presented == Presented::Cookie {
            super::csrf::same_origin_parts(&parts.method, &parts.headers)?;
        }
        let caller = state.iam.authenticate(&token).await?;
        note_caller(parts, &caller);
        Ok(Self { caller, presented })
    }
}

/// A caller for a revocation: its session is checked by the revocation's site command when it
/// applies (see `Iam::authenticate_deferred`), not by a read barrier first. Only a handler
/// whose every effect at this site goes through a command carrying `Caller::authority` may
/// take it; calls to other sites confirm it first (see `scatter::Scatter::run`).
pub struct Revoker(pub Caller);

impl FromRequestParts<ApiState> for Revoker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let (token, presented) = required_token(parts)?;
        if presented == Presented::Cookie {
            super::csrf::same_origin_parts(&parts.method, &parts.headers)?;
        }
        let caller = state.iam.authenticate_deferred(&token).await?;
        note_caller(parts, &caller);
        Ok(Self(caller))
    }
}

/// Tells the request's audit trail who calls (a refusal after this names its actor).
fn note_caller(parts: &Parts, caller: &Caller) {
    if let Some(trail) = parts.extensions.get::<RequestTrail>() {
        trail.caller(caller);
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        Ok(Authenticated::from_request_parts(parts, state)
            .await?
            .caller)
    }
}

/// `text` trimmed, when it is one line (no control characters) of `chars` characters; else a
/// 400 naming `what`.
pub(super) fn one_line(
    what: &str,
    text: &str,
    chars: std::ops::RangeInclusive<usize>,
) -> Result<String, ApiError> {
    let text = text.trim();
    let count = text.chars().count();
    if !chars.contains(&count) || text.chars().any(char::is_control) {
        return Err(ApiError::InvalidArgument(format!(
            "{what} is one line of {} to {} characters, without control characters",
            chars.start(),
            chars.end()
        )));
    }
    Ok(text.to_string())
}
