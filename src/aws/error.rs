//! AWS errors in words for the status page and logs. Imports nothing of the appliance, so
//! every layer that talks to AWS (the sync, the certificate sources) can use it.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// A short, useful description for the status page: the HTTP status with the service's
/// code and message, or the transport error with its causes. A bare 5xx from a proxy or
/// load balancer carries no S3 error code, and the SDK's own text for it ("service error")
/// or for a dropped connection ("streaming error") names neither the status nor the cause.
pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = service.raw().status().as_u16();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code} ({message}), HTTP {status}"),
                (Some(code), None) => format!("{code}, HTTP {status}"),
                (None, _) => {
                    let reason = http::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .map_or(String::new(), |r| format!(" {r}"));
                    format!("HTTP {status}{reason}, without an S3 error code")
                }
            }
        }
        other => with_causes(other),
    }
}

/// An error and its chain of causes, `: `-separated (the SDK's outer text alone is often
/// only "dispatch failure" or "streaming error").
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some layers repeat their cause's text in their own.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
