//! Read access to the bucket that holds recordings, with the auditor's own AWS credentials, and
//! errors that say which bucket, which endpoint and which credentials were involved.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_s3::config::{ProvideCredentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::operation::RequestId;

/// How many objects are fetched at once.
const PARALLEL_GETS: usize = 16;

/// Where recordings are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketAddress {
    pub bucket: String,
    /// The RecordingPolicy's prefix: empty or ending with `/`.
    pub prefix: String,
    /// None: the AWS configuration's region (AWS_REGION, the profile), else us-east-1.
    pub region: Option<String>,
    /// An S3-compatible endpoint; addressed path-style.
    pub endpoint: Option<String>,
    /// An AWS profile to take credentials and region from.
    pub profile: Option<String>,
}

/// What went wrong reading the bucket.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error(
        "no AWS credentials were found ({reason}); set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, to your own identity with read access to the recordings"
    )]
    NoCredentials { reason: String },
    #[error(
        "bucket {bucket:?} does not exist at {endpoint}; check --bucket (or the RecordingPolicy's s3.bucket), --region and --endpoint-url"
    )]
    NoSuchBucket { bucket: String, endpoint: String },
    #[error(
        "access denied to {operation} {location} at {endpoint} with {credentials}; reading recordings needs s3:ListBucket on the bucket and s3:GetObject on its objects (the audit API's access log also needs s3:PutObject under <prefix>access-log/)"
    )]
    AccessDenied {
        operation: &'static str,
        location: String,
        endpoint: String,
        credentials: String,
    },
    #[error(
        "{endpoint} refused {credentials} ({code}): the access key is unknown or expired, or its secret is wrong; check AWS_PROFILE / AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    CredentialsRefused { code: String, endpoint: String, credentials: String },
    #[error("{operation} {location} at {endpoint} with {credentials} failed: {detail}")]
    Request {
        operation: &'static str,
        location: String,
        endpoint: String,
        credentials: String,
        detail: String,
    },
    #[error("{location} was listed but could not be read any more: it was deleted while reading")]
    ObjectGone { location: String },
}

/// A bucket of recordings, opened with the caller's credentials.
#[derive(Clone, Debug)]
pub struct RecordingBucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    credentials: String,
}

impl RecordingBucket {
    /// Loads the AWS configuration the way the AWS CLI does (environment, profile, SSO, instance
    /// role) and resolves credentials once, so that a missing identity is reported up front.
    pub async fn open(address: &BucketAddress) -> Result<Self, BucketError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(profile) = &address.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &address.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &address.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared);
        let region = match shared.region() {
            Some(region) => region.to_string(),
            None => {
                config = config.region(Region::new("us-east-1"));
                "us-east-1".to_owned()
            }
        };
        let endpoint = match shared.endpoint_url() {
            Some(url) => {
                config = config.force_path_style(true);
                format!("{url} (region {region})")
            }
            None => format!("AWS S3 in region {region}"),
        };
        let provider = shared.credentials_provider().ok_or_else(|| BucketError::NoCredentials {
            reason: "no credential provider is configured".to_owned(),
        })?;
        let resolved = provider.provide_credentials().await.map_err(|e| {
            BucketError::NoCredentials { reason: DisplayErrorContext(&e).to_string() }
        })?;
        let credentials =
            format!("access key {} from {}", resolved.access_key_id(), credential_source(address));
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: address.bucket.clone(),
            prefix: address.prefix.clone(),
            endpoint,
            credentials,
        })
    }

    /// A bucket reached with a client built elsewhere (the operator builds it from a
    /// RecordingPolicy's credentials). `endpoint` and `credentials` describe them for messages.
    pub fn with_client(
        client: aws_sdk_s3::Client,
        bucket: &str,
        prefix: &str,
        endpoint: &str,
        credentials: &str,
    ) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: endpoint.to_owned(),
            credentials: credentials.to_owned(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The RecordingPolicy prefix recordings live under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `s3://bucket/key`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Names of the folders directly under `prefix` (which ends with `/`), without slashes.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, BucketError> {
        let (folders, _) = self.list(prefix, true, None).await?;
        Ok(folders
            .into_iter()
            .filter_map(|f| f.strip_prefix(prefix).map(|n| n.trim_end_matches('/').to_owned()))
            .filter(|n| !n.is_empty())
            .collect())
    }

    /// Every key under `prefix`, at any depth.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, BucketError> {
        Ok(self.list(prefix, false, None).await?.1)
    }

    /// Keys under `prefix` that sort after `after`, at any depth, in key order.
    pub async fn keys_after(&self, prefix: &str, after: &str) -> Result<Vec<String>, BucketError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .start_after(after)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("list", &format!("{}*", self.url(prefix)), &e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Writes `bytes` at `key` only if no object is there yet (`If-None-Match: *`): true when
    /// written, false when an object already existed (S3 answers 412, or 409 when a concurrent
    /// conditional write of the same key is in flight).
    pub async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<bool, BucketError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) || e
                    .raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error("write", &self.url(key), &e)),
        }
    }

    /// True when at least one object's key starts with `prefix`.
    pub async fn has_objects_under(&self, prefix: &str) -> Result<bool, BucketError> {
        Ok(!self.list(prefix, false, Some(1)).await?.1.is_empty())
    }

    /// Lists under `prefix`: (folders, keys). With `limit`, stops after that many keys.
    async fn list(
        &self,
        prefix: &str,
        by_folder: bool,
        limit: Option<i32>,
    ) -> Result<(Vec<String>, Vec<String>), BucketError> {
        let mut folders = Vec::new();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take());
            if by_folder {
                request = request.delimiter("/");
            }
            if let Some(limit) = limit {
                request = request.max_keys(limit);
            }
            let page = request
                .send()
                .await
                .map_err(|e| self.error("list", &format!("{}*", self.url(prefix)), &e))?;
            folders.extend(
                page.common_prefixes().iter().filter_map(|p| p.prefix()).map(str::to_owned),
            );
            keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() || limit.is_some_and(|l| keys.len() >= l as usize) {
                break;
            }
        }
        Ok((folders, keys))
    }

    /// The bytes of one object.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BucketError> {
        let response = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(response) => response,
            Err(e) if e.code() == Some("NoSuchKey") => {
                return Err(BucketError::ObjectGone { location: self.url(key) });
            }
            Err(e) => return Err(self.error("read", &self.url(key), &e)),
        };
        let body = response.body.collect().await.map_err(|e| BucketError::Request {
            operation: "read",
            location: self.url(key),
            endpoint: self.endpoint.clone(),
            credentials: self.credentials.clone(),
            detail: e.to_string(),
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// The bytes of several objects, fetched in parallel.
    pub async fn get_all(&self, keys: &[String]) -> Result<BTreeMap<String, Vec<u8>>, BucketError> {
        let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL_GETS));
        let mut tasks = tokio::task::JoinSet::new();
        for key in keys {
            let bucket = self.clone();
            let key = key.clone();
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let bytes = bucket.get(&key).await;
                (key, bytes)
            });
        }
        let mut objects = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (key, bytes) = joined.map_err(|e| BucketError::Request {
                operation: "read",
                location: self.url(&self.prefix),
                endpoint: self.endpoint.clone(),
                credentials: self.credentials.clone(),
                detail: format!("a download task failed: {e}"),
            })?;
            objects.insert(key, bytes?);
        }
        Ok(objects)
    }

    fn error<E>(&self, operation: &'static str, location: &str, error: &E) -> BucketError
    where
        E: ProvideErrorMetadata + RequestId + std::error::Error + 'static,
    {
        match error.code() {
            Some("NoSuchBucket") => BucketError::NoSuchBucket {
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
            },
            Some("AccessDenied" | "AllAccessDisabled") => BucketError::AccessDenied {
                operation,
                location: location.to_owned(),
                endpoint: self.endpoint.clone(),
                credentials: self.credentials.clone(),
            },
            Some(
                code @ ("InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"),
            ) => BucketError::CredentialsRefused {
                code: code.to_owned(),
                endpoint: self.endpoint.clone(),
                credentials: self.credentials.clone(),
            },
            _ => BucketError::Request {
                operation,
                location: location.to_owned(),
                endpoint: self.endpoint.clone(),
                credentials: self.credentials.clone(),
                detail: DisplayErrorContext(error).to_string(),
            },
        }
    }
}

/// Where the credentials came from, in words (never the secret).
fn credential_source(address: &BucketAddress) -> String {
    if let Some(profile) = &address.profile {
        return format!("profile {profile:?} (--profile)");
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return "the environment (AWS_ACCESS_KEY_ID)".to_owned();
    }
    match std::env::var("AWS_PROFILE") {
        Ok(profile) => format!("profile {profile:?} (AWS_PROFILE)"),
        Err(_) => "the default AWS credential chain".to_owned(),
    }
}
