//! The AWS clients, built one way: rustls with ring (one TLS stack and one crypto provider in
//! the binary), our own retries (the SDK's are off), and the credentials the config names. The
//! site sync and the certificate source share them.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_async::time::SharedTimeSource;

use crate::config::S3Config;

/// An S3 client for `config`'s region, endpoint and credentials, signing with `clock` when
/// given (a Pi without a real-time clock, in tests) instead of the system clock.
pub async fn s3_client(config: &S3Config, clock: Option<SharedTimeSource>) -> aws_sdk_s3::Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, Region};
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

    // One TLS stack in the binary: the SDK's client uses rustls with ring, as the server.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .http_client(http.clone())
        // One retry layer: ours (see the module doc).
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(config.request_timeout)
                .build(),
        );
    if let Some(file) = &config.credentials_file {
        use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
        let files = EnvConfigFiles::builder()
            .with_file(EnvConfigFileKind::Credentials, file)
            .build();
        // The provider may reach out (role assumption, IMDS for a credential_source):
        // give it the same HTTP client.
        let provider_config = aws_config::provider_config::ProviderConfig::without_region()
            .with_http_client(http.clone())
            .with_region(Some(Region::new(config.region.clone())));
        let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .configure(&provider_config)
            .profile_files(files)
            .profile_name(&config.profile)
            .build();
        loader = loader.credentials_provider(provider);
    }
    if let Some(clock) = clock {
        loader = loader.time_source(clock);
    }
    let shared = loader.load().await;
    let mut builder =
        aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

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
