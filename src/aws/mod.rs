//! The AWS clients, built one way: rustls with ring (one TLS stack and one crypto provider in
//! the binary), our own retries (the SDK's are off), and the credentials the config names. The
//! site sync and the certificate source share them.

use std::time::Duration;

use aws_smithy_async::time::SharedTimeSource;

use crate::config::S3Config;

pub mod error;
pub use error::{describe, with_causes};

/// An S3 client for `config`'s region, endpoint and credentials, signing with `clock` when
/// given (a Pi without a real-time clock, in tests) instead of the system clock.
pub async fn s3_client(config: &S3Config, clock: Option<SharedTimeSource>) -> aws_sdk_s3::Client {
    let shared = sdk_config(Some(config), &config.region, clock).await;
    let mut builder =
        aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// A Route 53 client (the `acme` source's DNS-01 challenges) with the site sync's credentials
/// (`[s3]`'s file and profile; the SDK's default chain without `[s3]`), at `endpoint` when
/// given (a test server) instead of AWS's.
pub(crate) async fn route53_client(
    credentials: Option<&S3Config>,
    endpoint: Option<&str>,
) -> aws_sdk_route53::Client {
    // Route 53 is global: its API signs for us-east-1.
    let shared = sdk_config(credentials, "us-east-1", None).await;
    let mut builder = aws_sdk_route53::config::Builder::from(&shared);
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_route53::Client::from_conf(builder.build())
}

/// What every client shares: region, HTTP client, timeouts, no SDK retries, credentials.
async fn sdk_config(
    config: Option<&S3Config>,
    region: &str,
    clock: Option<SharedTimeSource>,
) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, Region};
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

    // One TLS stack in the binary: the SDK's client uses rustls with ring, as the server.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .http_client(http.clone())
        // One retry layer: ours (see the module doc).
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(config.map_or(Duration::from_secs(30), |c| c.request_timeout))
                .build(),
        );
    if let Some((file, profile)) =
        config.and_then(|c| c.credentials_file.as_ref().map(|file| (file, &c.profile)))
    {
        use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
        let files = EnvConfigFiles::builder()
            .with_file(EnvConfigFileKind::Credentials, file)
            .build();
        // The provider may reach out (role assumption, IMDS for a credential_source):
        // give it the same HTTP client.
        let provider_config = aws_config::provider_config::ProviderConfig::without_region()
            .with_http_client(http.clone())
            .with_region(Some(Region::new(region.to_owned())));
        let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .configure(&provider_config)
            .profile_files(files)
            .profile_name(profile)
            .build();
        loader = loader.credentials_provider(provider);
    }
    if let Some(clock) = clock {
        loader = loader.time_source(clock);
    }
    loader.load().await
}
