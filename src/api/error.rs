//! Every failure the api answers, mapped to the contract's JSON in one place:
//! `{"statusCode": 400, "type": "InvalidArgument", "message": "...", "cause": "..."}`.
//!
//! `statusCode` is the precise HTTP status; `type` the contract's class of error. Statuses the
//! contract's table does not name (405, 413, 415) answer with the class `InvalidArgument`: the
//! client's request is at fault.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use serde::Serialize;

use crate::iam::IamError;
use crate::state::directory::Rejection;
use crate::state::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    WrongState(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body was read, but what it asks is over the size of one replicated command.
    #[error("{0}")]
    CommandTooLarge(String),
    /// A 400 whose `cause` details what failed where (a certificate reload, node by node).
    #[error("{message}")]
    InvalidArgumentWithCause { message: String, cause: String },
    /// The contract's 400 `notFound`: the request names a TLS listener that does not exist.
    #[error("{0}")]
    NoTlsListener(String),
    /// A selected site could not be reached: each site's outcome, and the task that keeps
    /// trying a write there.
    #[error("{message}")]
    SitesUnavailable {
        message: String,
        sites: BTreeMap<String, String>,
        task_id: Option<uuid::Uuid>,
    },
    /// `GET /tasks/{id}/await` ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// A proxied application's upstream could not be reached or broke off: 502.
    #[error("{0}")]
    BadGateway(String),
    /// A proxied application's upstream did not answer in time: 504.
    #[error("{0}")]
    GatewayTimeout(String),
    /// A containment some selected site did not confirm: its receipt, as far as it goes.
    #[error("{message}")]
    NotContained {
        message: String,
        receipt: Box<serde_json::Value>,
        task_id: Option<uuid::Uuid>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    status_code: u16,
    #[serde(rename = "type")]
    kind: &'a str,
    message: String,
    /// Always present (`null` when there is nothing more to say), as the contract shapes it.
    cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sites: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<&'a serde_json::Value>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidArgument(_)
            | Self::InvalidArgumentWithCause { .. }
            | Self::NoTlsListener(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::WrongState(_) => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) | Self::SitesUnavailable { .. } | Self::NotContained { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) | Self::CommandTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_)
            | Self::InvalidArgumentWithCause { .. }
            | Self::MethodNotAllowed(_)
            | Self::PayloadTooLarge(_)
            | Self::CommandTooLarge(_)
            | Self::UnsupportedMediaType(_) => "InvalidArgument",
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) | Self::NoTlsListener(_) => "notFound",
            Self::WrongState(_) => "WrongState",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::Server(_) => "ServerError",
            Self::Unavailable(_) | Self::SitesUnavailable { .. } | Self::NotContained { .. } => {
                "Unavailable"
            }
            Self::Timeout(_) => "WrongState",
            Self::BadGateway(_) => "BadGateway",
            Self::GatewayTimeout(_) => "GatewayTimeout",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, Self::Server(_)) {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            status_code: self.status().as_u16(),
            kind: self.kind(),
            message: self.to_string(),
            cause: match &self {
                Self::InvalidArgumentWithCause { cause, .. } => Some(cause.clone()),
                Self::SitesUnavailable { sites, .. } => Some(
                    sites
                        .iter()
                        .map(|(site, outcome)| format!("{site}: {outcome}"))
                        .collect::<Vec<_>>()
                        .join(" | "),
                ),
                _ => None,
            },
            sites: match &self {
                Self::SitesUnavailable { sites, .. } => Some(sites),
                _ => None,
            },
            task_id: match &self {
                Self::SitesUnavailable { task_id, .. } | Self::NotContained { task_id, .. } => {
                    *task_id
                }
                _ => None,
            },
            receipt: match &self {
                Self::NotContained { receipt, .. } => Some(&**receipt),
                _ => None,
            },
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            json,
        )
            .into_response();
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if matches!(self, Self::PayloadTooLarge(_)) {
            // The rest of the body was never read, so the server closes this connection after
            // the answer: say so, or a client may pool it and lose its next request on it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Cluster(e) => Self::Unavailable(format!("the cluster cannot answer: {e}")),
            StoreError::Invalid(reason) => Self::InvalidArgument(reason),
            StoreError::TooLarge { .. } => Self::CommandTooLarge(error.to_string()),
            StoreError::DirectoryUnavailable(_) => Self::Unavailable(error.to_string()),
            // The lock's own words, for the user who got the password right.
            StoreError::Locked { message, .. } => Self::Forbidden(message),
        }
    }
}

/// A directory write's refusal, answered as identity's refusals are.
impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        IamError::from(rejection).into()
    }
}

impl From<IamError> for ApiError {
    fn from(error: IamError) -> Self {
        let message = error.to_string();
        match error {
            IamError::BadCredentials
            | IamError::MissingCredentials
            | IamError::BadToken(_)
            | IamError::SessionClosed
            | IamError::OtherSite(_) => Self::Unauthorized(message),
            IamError::Banned { retry_after_secs } => Self::TooManyRequests {
                message,
                retry_after_secs,
            },
            IamError::Forbidden(_) => Self::Forbidden(message),
            IamError::NotFound(_) => Self::NotFound(message),
            IamError::Conflict(_) => Self::WrongState(message),
            IamError::Invalid(_) => Self::InvalidArgument(message),
            IamError::Store(e) => e.into(),
            IamError::Hash(_) | IamError::Token(_) | IamError::Bootstrap(_) => {
                Self::Server(message)
            }
        }
    }
}

/// The body of an error the HTTP server answers itself, before any route (a URI or headers
/// too large, a request that is not HTTP): the contract's, with a null `cause`.
pub fn framework_error_body(status: StatusCode, message: &str) -> Vec<u8> {
    let kind = match status.as_u16() {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "notFound",
        408 | 409 => "WrongState",
        429 => "TooManyRequests",
        503 => "Unavailable",
        500..=599 => "ServerError",
        _ => "InvalidArgument",
    };
    let body = FrameworkError {
        status_code: status.as_u16(),
        kind,
        message,
        cause: None,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The contract's four keys, `cause` null rather than absent.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FrameworkError<'a> {
    status_code: u16,
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
    cause: Option<&'a str>,
}

/// Whether a body failed because its next piece did not come in time.
fn body_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        if body_timed_out(&rejection) {
            return Self::Timeout(format!("the request's body stopped coming: {text}"));
        }
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(text),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(text),
            _ => Self::InvalidArgument(text),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::InvalidArgument(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidArgument(rejection.body_text())
    }
}

impl From<crate::model::NameError> for ApiError {
    fn from(error: crate::model::NameError) -> Self {
        Self::InvalidArgument(error.to_string())
    }
}

impl From<crate::federation::SelectorError> for ApiError {
    fn from(error: crate::federation::SelectorError) -> Self {
        Self::InvalidArgument(error.to_string())
    }
}

impl From<crate::gateway::GatewayError> for ApiError {
    fn from(error: crate::gateway::GatewayError) -> Self {
        match error {
            crate::gateway::GatewayError::SessionClosed => {
                Self::Unauthorized("the token's session is closed".into())
            }
            crate::gateway::GatewayError::Store(e) => e.into(),
        }
    }
}
